"""Shared helpers of the Hugging Face parity tests (test_hf_parity.py, test_hf_parity_moe.py) and of
test_logprobs.py: `foldmoe logprobs` run in one process or under mpirun and read back, transformers'
log-probs and greedy generation as the independent reference, and the checks that compare them."""
import json
import os
import subprocess

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from e2e_common import BIN, ENV, run, tmpdir
from hf_fixtures import make_model

MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1"]

# Layouts of the parity checks: (world size, flags). tp2_ep2 folds EP over the TP ranks.
LAYOUTS = {
    "tp2": (2, ["--parallel.tp=2"]),
    "ep2": (2, ["--parallel.ep=2"]),
    "pp2": (2, ["--parallel.pp=2"]),
    "dp2": (2, []),
    "cp2": (2, ["--parallel.cp=2"]),
    "tp2_ep2": (2, ["--parallel.tp=2", "--parallel.etp=1", "--parallel.ep=2"]),
    "tp2_dp2_ep4": (4, ["--parallel.tp=2", "--parallel.etp=1", "--parallel.ep=4"]),
    "tp2_pp2_ep2": (4, ["--parallel.tp=2", "--parallel.pp=2", "--parallel.etp=1", "--parallel.ep=2"]),
}
DENSE_LAYOUTS = {k: v for k, v in LAYOUTS.items() if "ep" not in k} | {
    "tp2_pp2": (4, ["--parallel.tp=2", "--parallel.pp=2"]), "tp2_dp2": (4, ["--parallel.tp=2"])}


def random_sequences(vocab, lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def foldmoe_command(np_, *args, check=True):
    """`foldmoe ARGS` in one process (np_ = 1) or under mpirun -np np_."""
    cmd = [BIN, *args] if np_ == 1 else [*MPIRUN, "-np", str(np_), BIN, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def foldmoe_logprobs(model_dir, sequences, np_=1, flags=(), logits=False):
    """Runs `foldmoe logprobs` on `sequences`; returns the output file's tensors and metadata."""
    work = tmpdir()
    inp = write_jsonl(f"{work}/tokens.jsonl", sequences)
    out = f"{work}/out.safetensors"
    foldmoe_command(np_, "logprobs", "--checkpoint", model_dir, "--input", inp, "--output", out,
                    *(["--logits"] if logits else []), *flags)
    return read_output(out)


def read_output(path):
    from safetensors import safe_open
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    return load_file(path), meta


def reference_logprobs(hf_dir, sequences, dtype=torch.float64):
    """transformers' log p(next token) per sequence ([len-1]) and logits ([len-1, V]), in `dtype`."""
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=dtype).eval()
    lps, lgs = [], []
    with torch.no_grad():
        for s in sequences:
            ids = torch.tensor([s])
            lg = model(ids).logits[0, :-1].to(torch.float64)
            lps.append(torch.log_softmax(lg, -1).gather(1, ids[0, 1:, None])[:, 0])
            lgs.append(lg)
    return lps, lgs


def max_rel_err(got, want):
    """max |got − want| / max(|want|, 1e-3) over lists of tensors (float64)."""
    m = 0.0
    for g, w in zip(got, want):
        g, w = g.to(torch.float64), w.to(torch.float64)
        m = max(m, ((g - w).abs() / w.abs().clamp_min(1e-3)).max().item())
    return m


def logprobs_of(out, n):
    return [out[0][f"logprobs.{i}"] for i in range(n)]


def mean_nll(lps):
    return -torch.cat([x.to(torch.float64) for x in lps]).mean().item()


def check_logprob_parity(hf_dir, sequences, tol=1e-4, label=""):
    """(a) foldmoe logprobs on the HF directory equals transformers' fp64 log-probs (and mean loss)."""
    out = foldmoe_logprobs(hf_dir, sequences)
    got = logprobs_of(out, len(sequences))
    want, _ = reference_logprobs(hf_dir, sequences)
    err = max_rel_err(got, want)
    assert err <= tol, f"{label}: log-probs differ from transformers by {err:.3e} relative"
    loss_err = abs(float(out[1]["mean_nll"]) - mean_nll(want)) / mean_nll(want)
    assert loss_err <= tol, f"{label}: mean NLL {out[1]['mean_nll']} vs transformers {mean_nll(want)}"
    print(f"  {label}: logprobs max rel err {err:.2e}, mean NLL rel err {loss_err:.2e}", flush=True)
    return got


def check_greedy_parity(hf_dir, prompt, new=20, label=""):
    """(b) greedy generation of `new` tokens (eos ignored) equals transformers' generate(do_sample=False).
    A divergence is accepted only where transformers' own fp64 top-2 logits tie to 1e-5 (a choice
    that fp32 round-off may flip), and nothing is compared after it."""
    p = run("generate", "--checkpoint", hf_dir, "--prompt-ids", ",".join(map(str, prompt)), "--max-new", str(new),
            "--temperature", "0", "--ignore-eos", "--json")
    got = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")][0]["tokens"]
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        want = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=new, min_new_tokens=new,
                              eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
    assert len(got) == new, (label, got)
    if got != want:
        k = next(i for i in range(new) if got[i] != want[i])
        m64 = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float64).eval()
        with torch.no_grad():
            lg = m64(torch.tensor([prompt + want[:k]])).logits[0, -1]
        gap = abs(lg[got[k]].item() - lg[want[k]].item())
        assert gap < 1e-5, f"{label}: greedy tokens differ at {k}: foldmoe {got} vs transformers {want} (logit gap {gap:.2e})"
        print(f"  {label}: greedy tie at token {k} (gap {gap:.1e}), identical before", flush=True)
    else:
        print(f"  {label}: greedy {new} tokens identical", flush=True)


def check_train_export_parity(hf_dir, sequences, tol=1e-4, label="", steps=3):
    """(c) foldmoe trains a few steps from the HF directory, exports the checkpoint to HF (fp32), and
    transformers' log-probs of the export equal foldmoe's log-probs of the trained checkpoint."""
    work = tmpdir()
    run_dir = f"{work}/run"
    run("train", f"--checkpoint.load={hf_dir}", f"--train.steps={steps}", "--train.seq_len=32", "--train.micro_batch=2",
        "--optim.lr=0.01", "--optim.warmup_steps=0", f"--train.run_dir={run_dir}", "--log.progress=off",
        "--checkpoint.interval=0")
    ckpt = f"{run_dir}/checkpoints/step-{steps:08d}"
    export = f"{work}/export"
    run("convert", "--to", "hf", "--input", ckpt, "--output", export, "--dtype", "fp32")
    got = logprobs_of(foldmoe_logprobs(ckpt, sequences), len(sequences))
    want, _ = reference_logprobs(export, sequences)
    start, _ = reference_logprobs(hf_dir, sequences)
    moved = max_rel_err(start, want)
    assert moved > 1e-3, f"{label}: training did not change the log-probs ({moved:.2e})"
    err = max_rel_err(got, want)
    assert err <= tol, f"{label}: trained checkpoint's log-probs differ from transformers on its export by {err:.3e}"
    print(f"  {label}: trained {steps} steps, export parity max rel err {err:.2e} (moved {moved:.2e})", flush=True)


def check_layouts(model_dir, sequences, layouts, tol=1e-6, label="", logits=False):
    """(d) every layout gives the one-process values."""
    one = foldmoe_logprobs(model_dir, sequences, logits=logits)[0]
    worst = 0.0
    for name, (np_, flags) in layouts.items():
        out = foldmoe_logprobs(model_dir, sequences, np_, flags, logits=logits)[0]
        assert sorted(out) == sorted(one), (name, sorted(out), sorted(one))
        for k in one:
            if k.startswith("tokens."):
                assert torch.equal(out[k], one[k]), (name, k)
                continue
            # Log-probs relative to themselves, logits relative to the sequence's largest logit.
            err = max_rel_err([out[k]], [one[k]]) if k.startswith("logprobs.") else \
                ((out[k].double() - one[k].double()).abs().max() / one[k].double().abs().max()).item()
            worst = max(worst, err)
            assert err <= tol, f"{label} {name}: {k} differs from one process by {err:.3e}"
    print(f"  {label}: {len(layouts)} layouts equal one process, max rel err {worst:.2e}", flush=True)
    return worst


def make(model_type, **overrides):
    return make_model(model_type, os.path.join(tmpdir(), model_type), **overrides)
