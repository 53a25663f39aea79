"""RL post-training of a Hugging Face model end to end (issue "RL at scale", item 2): a tiny random
Qwen3-MoE built by transformers, with a byte-level BPE tokenizer trained here by HF tokenizers, the
Qwen2.5 chat template in tokenizer_config.json and <|im_end|> as a stop token in
generation_config.json. `foldmoe rl --init HF_DIR` renders the JSONL math prompts with the model's
template: the prompt ids equal transformers' own `apply_chat_template` on the same directory. It
post-trains two steps (rewards from the `Answer:` extraction on decoded text), then
`convert --to hf` hands the policy back: transformers loads the export, its tensors are the RL
checkpoint's (and no longer the start's), and transformers' forward of the exported model gives the
log-probabilities foldmoe's `eval` path computes for the same tokens."""
import json
import os
import shutil

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, normalizers
from transformers import AutoModelForCausalLM, AutoTokenizer

from e2e_common import ROOT, main, metrics, run, tmpdir
from hf_fixtures import load_tensors, make_model
from test_hf_convert import assert_checkpoint_holds
from test_rl_chat_prompts import dapo_math  # docs/rl.md §6.1, written out independently of foldmoe
from tokenizer_fixtures import QWEN2_REGEX, _bytelevel

FIXTURES = os.path.join(ROOT, "tests", "e2e", "chat_templates")
PROBLEMS = [("What is 2+3?", "5"), ("Compute 7*6.", "42"), ("Half of 18 is?", "9"), ("Solve x+1=4 for x.", "3")]


def qwen3_moe_dir():
    work = tmpdir()
    tok_path = _bytelevel(work, "qwen2", QWEN2_REGEX, normalizer=normalizers.NFC(), vocab=600)
    tok = Tokenizer.from_file(tok_path)
    d = make_model("qwen3_moe", os.path.join(work, "model"), vocab_size=tok.get_vocab_size(),
                   max_position_embeddings=1024)
    shutil.copy(tok_path, os.path.join(d, "tokenizer.json"))
    with open(os.path.join(FIXTURES, "qwen2_5.jinja"), encoding="utf-8") as f:
        template = f.read()
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "chat_template": template, "tokenizer_class": "PreTrainedTokenizerFast"}, f)
    eos, im_end = tok.token_to_id("<|endoftext|>"), tok.token_to_id("<|im_end|>")
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": [im_end, eos]}, f)
    prompts = os.path.join(work, "math.jsonl")
    with open(prompts, "w", encoding="utf-8") as f:
        for p, a in PROBLEMS:
            f.write(json.dumps({"prompt": p, "answer": a}) + "\n")
    return work, d, prompts, eos, im_end


def test_rl_from_hf_qwen3_moe_and_back():
    work, d, prompts, eos, im_end = qwen3_moe_dir()
    common = ["--init", d, f"--rl.data={prompts}", "--rl.chat_template=model", "--rl.max_prompt_tokens=400",
              "--rl.max_response_tokens=6"]
    # 1. The prompts the rollout receives are transformers' chat rendering of the dapo-math turn.
    shown = [json.loads(x) for x in run("rl", *common, "--show-prompts", str(len(PROBLEMS))).stdout.splitlines()]
    assert sorted(set(shown[0]["stop_ids"])) == sorted({eos, im_end}), shown[0]
    hf_tok = AutoTokenizer.from_pretrained(d)
    rows = shown[1:]
    assert len(rows) == len(PROBLEMS), rows
    for row in rows:
        problem = next(p for p, _ in PROBLEMS if dapo_math(p) == row["prompt"])
        want = hf_tok.apply_chat_template([{"role": "user", "content": dapo_math(problem)}], tokenize=True,
                                          add_generation_prompt=True)
        if isinstance(want, dict):  # newer transformers return a BatchEncoding
            want = want["input_ids"]
        assert row["ids"] == list(want), (problem, row["ids"][:12], list(want)[:12])

    # 2. Two HAPO steps straight from the HF directory.
    rl_dir = os.path.join(work, "rl")
    out = run("rl", *common, f"--train.run_dir={rl_dir}", "--rl.steps=2", "--rl.prompts_per_step=2",
              "--rl.group_size=2", "--rl.minibatch_prompts=2", "--rl.reward.overlong.enabled=false",
              # A random model earns the same reward (-1) on every response, so the policy gradient is
              # zero; a large lr makes the decoupled weight decay move every matrix visibly.
              "--rl.optim.lr=1e-3", "--rl.optim.warmup_steps=1",
              "--rl.eval.before_train=false", "--log.progress=off").stdout
    assert "foldmoe rl: done, steps 1..2" in out, out
    rows = [m for m in metrics(rl_dir) if "step" in m]
    assert [m["step"] for m in rows][-1] == 2, rows
    ckpts = sorted(os.listdir(os.path.join(rl_dir, "checkpoints")))
    assert ckpts, "the RL run saved no checkpoint"
    ckpt = os.path.join(rl_dir, "checkpoints", ckpts[-1])

    # 3. Back to HF: transformers loads the export; its tensors are the post-trained policy's.
    export = os.path.join(work, "export")
    run("convert", "--to", "hf", "--input", ckpt, "--output", export, "--dtype", "fp32")
    for name in ("tokenizer.json", "config.json"):
        assert os.path.exists(os.path.join(export, name)), name
    model = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32)
    assert model.config.model_type == "qwen3_moe", model.config.model_type
    loaded = model.state_dict()
    trained = load_file(os.path.join(ckpt, "model.safetensors"))
    assert_checkpoint_holds(trained, loaded)
    start = load_tensors(d)
    changed = [n for n in start if not torch.equal(start[n], loaded[n])]
    assert changed, "RL changed no tensor"
    # The exported tokenizer renders the same chat prompt (it travels with the model).
    again = AutoTokenizer.from_pretrained(export).apply_chat_template(
        [{"role": "user", "content": dapo_math(PROBLEMS[0][0])}], tokenize=True, add_generation_prompt=True)
    if isinstance(again, dict):
        again = again["input_ids"]
    first = next(r["ids"] for r in shown[1:] if r["prompt"] == dapo_math(PROBLEMS[0][0]))
    assert list(again) == first, (list(again)[:12], first[:12])
    # 4. foldmoe's greedy continuation of a rendered prompt from the RL checkpoint equals
    # transformers' greedy continuation with the exported model (the weights mean the same thing).
    text = hf_tok.apply_chat_template([{"role": "user", "content": dapo_math(PROBLEMS[0][0])}], tokenize=False,
                                      add_generation_prompt=True)
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == first
    gen = run("generate", "--checkpoint", ckpt, "--prompt", text, "--max-new", "8", "--temperature", "0",
              "--json").stdout
    ours = [json.loads(x) for x in gen.splitlines() if x.startswith("{")][0]["tokens"]
    with torch.no_grad():  # foldmoe's generate stops at the tokenizer's eos only
        theirs = model.generate(torch.tensor([first]), attention_mask=torch.ones(1, len(first), dtype=torch.long),
                                max_new_tokens=8, do_sample=False, eos_token_id=eos,
                                pad_token_id=eos)[0, len(first):].tolist()
    assert ours == theirs and len(ours) >= 1, (ours, theirs)


if __name__ == "__main__":
    main([test_rl_from_hf_qwen3_moe_and_back])
