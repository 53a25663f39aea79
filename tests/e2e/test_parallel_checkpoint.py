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


if __name__ == "__main__":
    main([test_resume_and_reshard])
