"""Parity with transformers for the dense Hugging Face architectures (tiny random fp32 models made by
transformers itself): llama with rope scalings llama3, yarn and linear, qwen2 (attention biases),
qwen3 (QK-norm), tied embeddings. For each model:
  (a) `foldmoe logprobs` on the HF directory equals transformers' fp64 log-probs to 1e-4 relative,
      and so does the mean NLL;
  (b) greedy generation of 20 tokens (eos ignored) is transformers' generate(do_sample=False);
  (c) after a few foldmoe training steps from the directory and an fp32 export (`convert --to hf`),
      transformers on the export reproduces foldmoe's log-probs of the trained checkpoint to 1e-4;
  (d) logprobs under mpirun with TP2, PP2, DP2, CP2, TP2xPP2 and TP2xDP2 equal one process to 1e-6
      (llama llama3, qwen2; qwen3 and tied llama with TP2, PP2, TP2xPP2).
Shared helpers: hf_parity.py."""
from e2e_common import main
from hf_parity import (DENSE_LAYOUTS, check_greedy_parity, check_layouts, check_logprob_parity,
                       check_train_export_parity, make, random_sequences)

VOCAB = 160
SEQS = random_sequences(VOCAB, [17, 5, 32, 2, 24], seed=3)
PROMPT = [3, 17, 99, 42, 7]

MODELS = {
    "llama_llama3": ("llama", dict(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 32})),
    "llama_yarn": ("llama", dict(rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                               "original_max_position_embeddings": 64})),
    "llama_linear": ("llama", dict(rope_scaling={"rope_type": "linear", "factor": 2.0})),
    "llama_tied": ("llama", dict(tie_word_embeddings=True)),
    "qwen2_bias": ("qwen2", {}),
    "qwen3_qk_norm": ("qwen3", {}),
}


def each_model(check):
    def test():
        for label, (model_type, overrides) in MODELS.items():
            check(label, make(model_type, **overrides))
    test.__name__ = check.__name__
    return test


@each_model
def test_logprobs_equal_transformers(label, d):
    check_logprob_parity(d, SEQS, label=label)


@each_model
def test_greedy_generation_equals_transformers(label, d):
    check_greedy_parity(d, PROMPT, label=label)


def test_trained_export_equals_transformers():
    for label in ("llama_yarn", "qwen2_bias", "qwen3_qk_norm", "llama_tied"):
        model_type, overrides = MODELS[label]
        check_train_export_parity(make(model_type, **overrides), SEQS, label=label)


def test_layouts_equal_one_process():
    for label in ("llama_llama3", "qwen2_bias"):
        model_type, overrides = MODELS[label]
        check_layouts(make(model_type, **overrides), SEQS, DENSE_LAYOUTS, label=label)
    # QK-norm per head under TP; tied embeddings split over the first and last pipeline stage.
    for label in ("qwen3_qk_norm", "llama_tied"):
        model_type, overrides = MODELS[label]
        check_layouts(make(model_type, **overrides), SEQS, {k: DENSE_LAYOUTS[k] for k in ("tp2", "pp2", "tp2_pp2")},
                      label=label)


if __name__ == "__main__":
    main([test_logprobs_equal_transformers, test_greedy_generation_equals_transformers,
          test_trained_export_equals_transformers, test_layouts_equal_one_process])
