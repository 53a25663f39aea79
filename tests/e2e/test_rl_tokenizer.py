"""RL prompts go through the policy's own tokenizer: a model trained on indexed data with a
SentencePiece tokenizer (trained here by the sentencepiece package on text with accents) takes JSONL
prompts with non-ASCII characters, while the character-level synthetic model refuses them naming its
tokenizer and the file line."""
import os
import random

import sentencepiece

from e2e_common import main, pretrained_lookup, run, tmpdir
from megatron_files import write_megatron

WORDS = ["café", "über", "naïve", "señor", "déjà", "vu", "the", "cat", "sat", "on", "a", "mat", "is", "what", "2",
         "3", "5", "+", "=", "answer"]


def test_non_ascii_prompts_with_a_sentencepiece_policy():
    d = tmpdir()
    rng = random.Random(1)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 12))) for _ in range(400)]
    with open(os.path.join(d, "text.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    sentencepiece.SentencePieceTrainer.train(input=os.path.join(d, "text.txt"), model_prefix=os.path.join(d, "sp"),
                                             vocab_size=60, model_type="bpe", character_coverage=1.0,
                                             minloglevel=2)
    model = os.path.join(d, "sp.model")
    sp = sentencepiece.SentencePieceProcessor(model_file=model)
    prefix = os.path.join(d, "corpus")
    write_megatron(prefix, [sp.encode(line) + [sp.eos_id()] for line in lines])
    run_dir = os.path.join(d, "pre")
    run("train", "--data.source=indexed", f"--data.paths={prefix}", f"--data.tokenizer={model}", "--train.steps=2",
        "--train.seq_len=32", "--train.micro_batch=4", f"--train.run_dir={run_dir}", "--log.progress=off")
    prompts = os.path.join(d, "prompts.jsonl")
    with open(prompts, "w", encoding="utf-8") as f:
        f.write('{"prompt": "café über 2+3 =", "answer": "5"}\n{"prompt": "señor naïve 2+2 =", "answer": "4"}\n')
    rl_dir = os.path.join(d, "rl")
    out = run("rl", "--init", run_dir, f"--rl.data={prompts}", f"--train.run_dir={rl_dir}", "--rl.steps=1",
              "--rl.prompts_per_step=2", "--rl.group_size=2", "--rl.minibatch_prompts=2",
              "--rl.max_response_tokens=4", "--rl.reward.overlong.enabled=false", "--rl.eval.before_train=false",
              "--log.progress=off").stdout
    assert "foldmoe rl: done, steps 1..1" in out, out
    # The character-level policy cannot encode them: refused before the run, naming file:line and tokenizer.
    p = run("rl", "--init", pretrained_lookup(20), f"--rl.data={prompts}", f"--train.run_dir={tmpdir()}/x",
            check=False)
    assert p.returncode != 0 and f"{prompts}:1" in p.stderr and "char (98 ids)" in p.stderr, p.stderr


if __name__ == "__main__":
    main([test_non_ascii_prompts_with_a_sentencepiece_policy])
