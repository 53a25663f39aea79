"""Shared helpers for the end-to-end CLI tests: run the foldmoe binary, read metrics, report."""
import json
import os
import subprocess
import sys
import tempfile
import traceback

BIN = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "build/foldmoe"
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")


def run(*args, check=True, cwd=None):
    """Runs `foldmoe ARGS`; returns CompletedProcess (stdout+stderr text)."""
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env=ENV, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"foldmoe {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def tmpdir():
    return tempfile.mkdtemp(prefix="foldmoe-e2e-")


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PRETRAINED = {}


def pretrained_lookup(steps):
    """A tiny MoE pretrained on the lookup task for `steps` steps (enough to solve some of it), the
    start of the RL tests; made once per process and step count."""
    if steps not in _PRETRAINED:
        d = tmpdir()
        run("train", "--config", os.path.join(ROOT, "configs", "rl-pretrain.toml"), f"--train.run_dir={d}",
            "--data.tasks=lookup", f"--train.steps={steps}", "--train.micro_batch=16", "--model.hidden=64",
            "--model.ffn=128", "--moe.ffn_hidden_size=64")
        _PRETRAINED[steps] = os.path.join(d, "checkpoints", f"step-{steps:08d}")
    return _PRETRAINED[steps]


def main(tests):
    passed = failed = 0
    for t in tests:
        try:
            t()
            passed += 1
            print(f"PASS {t.__name__}", flush=True)
        except Exception:  # noqa: BLE001 - report every failure and keep going
            failed += 1
            print(f"FAIL {t.__name__}\n{traceback.format_exc()}", flush=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
