"""Parity with transformers for the Mixture-of-Experts Hugging Face architectures (tiny random fp32
models made by transformers itself): mixtral, qwen2_moe (gated shared expert), qwen3_moe (a dense
layer among the MoE ones, QK-norm), olmoe. For each model:
  (a) `foldmoe logprobs` on the HF directory equals transformers' fp64 log-probs to 1e-4 relative,
      and so does the mean NLL;
  (b) greedy generation of 20 tokens (eos ignored) is transformers' generate(do_sample=False);
  (c) after a few foldmoe training steps from the directory and an fp32 export (`convert --to hf`),
      transformers on the export reproduces foldmoe's log-probs of the trained checkpoint to 1e-4;
  (d) logprobs under mpirun with TP2, EP2, PP2, DP2, CP2 and the folded TP2xEP2, TP2xDP2xEP4,
      TP2xPP2xEP2 equal one process to 1e-6 (qwen2_moe, qwen3_moe; olmoe and mixtral with TP2,
      TP2xEP2, TP2xPP2xEP2).
Shared helpers: hf_parity.py."""
from e2e_common import main
from hf_parity import (LAYOUTS, check_greedy_parity, check_layouts, check_logprob_parity,
                       check_train_export_parity, make, random_sequences)

VOCAB = 160
SEQS = random_sequences(VOCAB, [17, 5, 32, 2, 24], seed=4)
PROMPT = [3, 17, 99, 42, 7]
MODELS = ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe")
_DIRS = {}


def model_dir(model_type):
    if model_type not in _DIRS:
        _DIRS[model_type] = make(model_type)
    return _DIRS[model_type]


def test_logprobs_equal_transformers():
    for m in MODELS:
        check_logprob_parity(model_dir(m), SEQS, label=m)


def test_greedy_generation_equals_transformers():
    for m in MODELS:
        check_greedy_parity(model_dir(m), PROMPT, label=m)


def test_trained_export_equals_transformers():
    for m in MODELS:
        check_train_export_parity(model_dir(m), SEQS, label=m)


def test_layouts_equal_one_process():
    for m in ("qwen2_moe", "qwen3_moe"):
        check_layouts(model_dir(m), SEQS, LAYOUTS, label=m)
    # OLMoE's QK-norm over the whole projection spans the TP ranks; Mixtral has no shared expert.
    for m in ("olmoe", "mixtral"):
        check_layouts(model_dir(m), SEQS, {k: LAYOUTS[k] for k in ("tp2", "tp2_ep2", "tp2_pp2_ep2")}, label=m)


if __name__ == "__main__":
    main([test_logprobs_equal_transformers, test_greedy_generation_equals_transformers,
          test_trained_export_equals_transformers, test_layouts_equal_one_process])
