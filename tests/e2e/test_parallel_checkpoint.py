"""Checkpoints across layouts: a 4-rank run (TP2 x DP2 / EP4, ZeRO-1 with several buckets) resumes
exactly, and its checkpoint loads into one process (resharding) and into another layout, continuing
the same loss curve to fp32 round-off."""
import json
import os

from e2e_common import BIN, ENV, main, tmpdir

import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "tests", "parallel", "configs", "parity-moe.toml")
MPI = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1", "--mca", "btl",
       "self,vader"]


def train(np_, run_dir, *flags):
    cmd = [BIN, "train", "--config", CONFIG, "--train.steps=10", f"--train.run_dir={run_dir}", *flags]
    if np_ > 1:
        cmd = MPI + ["-np", str(np_)] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, f"{' '.join(cmd)}\n{p.stdout}\n{p.stderr}"
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(l)["lm_loss"] for l in f if l.strip()]


LAYOUT = ["--parallel.tp=2", "--parallel.ep=4", "--parallel.etp=1", "--parallel.distributed_optimizer=true",
          "--parallel.bucket_size=1000"]


def test_resume_and_reshard():
    full = tmpdir()
    losses = train(4, full, *LAYOUT, "--checkpoint.interval=5")
    ck = os.path.join(full, "checkpoints", "step-00000005")
    same = train(4, tmpdir(), *LAYOUT, f"--checkpoint.load={ck}")
    assert same == losses[5:], (same, losses[5:])  # same layout: bit-identical
    one = train(1, tmpdir(), f"--checkpoint.load={ck}")
    other = train(2, tmpdir(), "--parallel.ep=2", f"--checkpoint.load={ck}")
    for got in (one, other):
        assert len(got) == 5
        for a, b in zip(got, losses[5:]):
            assert abs(a - b) <= 1e-5 * abs(b), (got, losses[5:])


PIPELINE = ["--model.layers=4", "--parallel.pp=2", "--parallel.ep=2", "--moe.score_function=sigmoid",
            "--moe.enable_expert_bias=true", "--train.recompute=full"]


def test_pipeline_checkpoint_resumes_and_loads_anywhere():
    """A PP2 x DP2 / EP2 run with expert-bias buffers on both stages: resume is bit-identical, and the
    checkpoint (parameters, moments and every stage's buffers) continues on one process and on PP4."""
    full = tmpdir()
    losses = train(4, full, *PIPELINE, "--checkpoint.interval=5")
    ck = os.path.join(full, "checkpoints", "step-00000005")
    same = train(4, tmpdir(), *PIPELINE, f"--checkpoint.load={ck}")
    assert same == losses[5:], (same, losses[5:])
    flat = [f for f in PIPELINE if not f.startswith("--parallel")]
    one = train(1, tmpdir(), *flat, f"--checkpoint.load={ck}")
    pp4 = train(4, tmpdir(), *flat, "--parallel.pp=4", f"--checkpoint.load={ck}")
    for got in (one, pp4):
        assert len(got) == 5
        for a, b in zip(got, losses[5:]):
            assert abs(a - b) <= 1e-5 * abs(b), (got, losses[5:])


HF_TIED = ["--model.tie_embeddings=true", "--model.qk_norm=full", "--model.attention_bias=true",
           "--model.rope_scaling=yarn", "--model.rope_scaling_factor=4.0", "--model.rope_original_max_position=16"]


def test_tied_pipeline_checkpoint_loads_anywhere():
    """Tied embeddings under PP2 x TP2 (a copy of embedding.weight on each end stage) with the HF
    architecture options: the checkpoint holds one embedding.weight (no lm_head.weight) plus the
    biases and QK-norm weights by name, resumes bit-identically and continues on one process."""
    full = tmpdir()
    layout = ["--model.layers=4", "--parallel.pp=2", "--parallel.tp=2", "--parallel.etp=1"]
    losses = train(4, full, *HF_TIED, *layout, "--checkpoint.interval=5")
    ck = os.path.join(full, "checkpoints", "step-00000005")
    names = set()
    for f in os.listdir(ck):
        if f.endswith(".safetensors"):
            with open(os.path.join(ck, f), "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                names |= set(json.loads(fh.read(n))) - {"__metadata__"}
    assert any(n.endswith("embedding.weight") for n in names), sorted(names)
    assert not any("lm_head" in n for n in names), sorted(names)
    for want in ("layers.3.attn.q_norm", "layers.3.attn.k_norm", "layers.0.attn.q_bias", "layers.0.attn.v_bias"):
        assert any(n.endswith(want) for n in names), (want, sorted(names))
    same = train(4, tmpdir(), *HF_TIED, *layout, f"--checkpoint.load={ck}")
    assert same == losses[5:], (same, losses[5:])
    one = train(1, tmpdir(), *HF_TIED, "--model.layers=4", f"--checkpoint.load={ck}")
    assert len(one) == 5
    for a, b in zip(one, losses[5:]):
        assert abs(a - b) <= 1e-5 * abs(b), (one, losses[5:])


def test_folded_example_config_runs():
    run_dir = tmpdir()
    cmd = MPI + ["-np", "8", BIN, "train", "--config", os.path.join(ROOT, "configs", "folded-8rank.toml"),
                 "--train.steps=3", f"--train.run_dir={run_dir}", "--checkpoint.save_final=false"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    assert len(rows) == 3 and all(r["lm_loss"] > 0 for r in rows)


if __name__ == "__main__":
    main([test_resume_and_reshard, test_pipeline_checkpoint_resumes_and_loads_anywhere,
          test_tied_pipeline_checkpoint_loads_anywhere, test_folded_example_config_runs])
