"""Rollout speed: foldmoe's batched KV-cache generation against HF transformers' `generate` (KV
cache) on the same tiny HF model, in the same run, one thread each, greedy and sampled, at the
batch shape RL uses (default 64 sequences x 256 new tokens). Also one `foldmoe rl` step at that
shape from the same directory, for the share of an RL step spent in rollout.

usage: .venv/bin/python bench/rollout_vs_hf.py [--foldmoe build/foldmoe] [--model qwen3_moe|llama]
           [--batch 64] [--new 256] [--prompt 16] [--hidden 256] [--layers 4] [--vocab 2048]

Prints one JSON line per mode and a summary line:
  {"mode": "greedy", "foldmoe_tokens_per_s": ..., "hf_tokens_per_s": ..., "ratio": ...}
  {"rl_step": {"rollout_s": ..., "step_s": ..., "rollout_share": ...}}
The timed region of foldmoe is its own generation (prefill + decode; the model load is excluded, as
it is for transformers). Threads: OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=1 and torch.set_num_threads(1).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
from tokenizers import Tokenizer, models  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_model(kind, out, hidden, layers, vocab, max_pos):
    kw = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=8, num_key_value_heads=4,
              intermediate_size=2 * hidden, vocab_size=vocab, max_position_embeddings=max_pos, rms_norm_eps=1e-6,
              tie_word_embeddings=False)
    if kind == "qwen3_moe":
        kw.update(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=hidden, head_dim=hidden // 8,
                  norm_topk_prob=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(kind, **kw), dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    return model.eval()


def openblas_core(binary):
    """The OpenBLAS kernels foldmoe runs with, as scripts/openblas-env.sh picks them: OpenBLAS 0.3.21
    falls back to its generic Prescott kernels on a CPU model it does not know; then the AVX-512
    (SkylakeX) or AVX2 (Haswell) ones the CPU has are named in OPENBLAS_CORETYPE."""
    out = subprocess.run(["bash", "-c", f"source scripts/openblas-env.sh >/dev/null 2>&1; echo $OPENBLAS_CORETYPE"],
                         capture_output=True, text=True, cwd=ROOT).stdout.strip()
    if out:
        os.environ["OPENBLAS_CORETYPE"] = out
    p = subprocess.run([binary, "--version"], capture_output=True, text=True,
                       env=dict(os.environ, OPENBLAS_VERBOSE="2"))
    return next((l.split(":", 1)[1].strip() for l in (p.stdout + p.stderr).splitlines() if l.startswith("Core:")), "?")


def write_char_tokenizer(model_dir, vocab):
    """A tokenizer.json for the RL step: one id per printable ASCII character (BPE without merges),
    <|endoftext|> as eos, the rest of the model's vocabulary unused."""
    chars = [chr(c) for c in range(32, 127)]
    ids = {"<|endoftext|>": 0, **{ch: i + 1 for i, ch in enumerate(chars)}}
    ids.update({f"<unused{i}>": i for i in range(len(ids), vocab)})
    tok = Tokenizer(models.BPE(vocab=ids, merges=[]))
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|endoftext|>", "bos_token": None}, f)


def foldmoe_generate(binary, model_dir, prompt, batch, new, greedy):
    args = [binary, "generate", "--checkpoint", model_dir, "--prompt-ids", ",".join(map(str, prompt)),
            "--samples", str(batch), "--max-new", str(new), "--ignore-eos", "--json",
            "--temperature", "0" if greedy else "1", "--seed", "1"]
    p = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if p.returncode != 0:
        sys.exit(f"foldmoe generate failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    summary = [json.loads(x) for x in p.stdout.splitlines() if x.startswith('{"summary"')]
    if not summary:
        sys.exit(f"foldmoe generate printed no summary line:\n{p.stdout[-2000:]}")
    s = summary[-1]["summary"]
    assert s["generated_tokens"] == batch * new, s
    return s["generated_tokens"] / s["seconds"]


def hf_generate(model, prompt, batch, new, greedy):
    ids = torch.tensor([prompt] * batch)
    kw = dict(max_new_tokens=new, min_new_tokens=new, use_cache=True, pad_token_id=0,
              attention_mask=torch.ones_like(ids))
    kw.update(dict(do_sample=False) if greedy else dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0))
    with torch.no_grad():
        model.generate(ids[:, :4], max_new_tokens=4, do_sample=False, pad_token_id=0)  # warm-up
        t0 = time.perf_counter()
        out = model.generate(ids, **kw)
        dt = time.perf_counter() - t0
    assert out.shape == (batch, len(prompt) + new), out.shape
    return batch * new / dt


def rl_step_share(binary, model_dir, work, batch, new):
    prompts = os.path.join(work, "prompts.jsonl")
    with open(prompts, "w") as f:
        for i in range(8):
            f.write(json.dumps({"prompt": f"{i} plus {i} is", "answer": str(2 * i)}) + "\n")
    group = 8
    run_dir = os.path.join(work, "rl")
    args = [binary, "rl", "--init", model_dir, f"--rl.data={prompts}", "--rl.chat_template=plain",
            f"--train.run_dir={run_dir}", "--rl.steps=1", f"--rl.prompts_per_step={batch // group}",
            f"--rl.group_size={group}", f"--rl.minibatch_prompts={batch // group}",
            f"--rl.max_response_tokens={new}", "--rl.max_prompt_tokens=64", "--rl.reward.overlong.enabled=false",
            "--rl.eval.before_train=false", "--log.progress=off", "--checkpoint.save_final=false"]
    p = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    if p.returncode != 0:
        return {"error": (p.stdout + p.stderr)[-1500:]}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        m = [json.loads(x) for x in f if x.strip()][-1]
    rollout_s = m["response_tokens"] / m["rollout_tokens_per_s"]
    return {"rollout_s": rollout_s, "step_s": m["step_time_s"], "rollout_share": rollout_s / m["step_time_s"],
            "rollout_tokens_per_s": m["rollout_tokens_per_s"], "response_tokens": m["response_tokens"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--foldmoe", default=os.path.join(ROOT, "build", "foldmoe"))
    ap.add_argument("--model", default="qwen3_moe", choices=["qwen3_moe", "llama"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--no-rl", action="store_true", help="skip the RL step")
    a = ap.parse_args()
    torch.set_num_threads(1)
    core = openblas_core(a.foldmoe)
    work = tempfile.mkdtemp(prefix="rollout-bench-")
    model_dir = os.path.join(work, "model")
    model = make_model(a.model, model_dir, a.hidden, a.layers, a.vocab, max_pos=2 * (a.prompt + a.new))
    g = torch.Generator().manual_seed(3)
    prompt = torch.randint(1, a.vocab, (a.prompt,), generator=g).tolist()
    shape = dict(model=a.model, hidden=a.hidden, layers=a.layers, vocab=a.vocab, batch=a.batch, new=a.new,
                 prompt=a.prompt, threads=1, openblas_core=core)
    ratios = {}
    for mode in ("greedy", "sampled"):
        ours = foldmoe_generate(a.foldmoe, model_dir, prompt, a.batch, a.new, mode == "greedy")
        theirs = hf_generate(model, prompt, a.batch, a.new, mode == "greedy")
        ratios[mode] = ours / theirs
        print(json.dumps({"mode": mode, **shape, "foldmoe_tokens_per_s": round(ours, 1),
                          "hf_tokens_per_s": round(theirs, 1), "ratio": round(ours / theirs, 2)}), flush=True)
    if not a.no_rl:
        write_char_tokenizer(model_dir, a.vocab)
        print(json.dumps({"rl_step": rl_step_share(a.foldmoe, model_dir, work, a.batch, a.new)}), flush=True)


if __name__ == "__main__":
    main()
