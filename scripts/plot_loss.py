#!/usr/bin/python3
"""Plots the training and validation loss of a run directory against tokens seen.

Usage: scripts/plot_loss.py RUN_DIR OUT.png [--title TEXT]

Reads RUN_DIR/metrics.jsonl (training rows: "lm_loss"; validation rows: "valid_loss") and
RUN_DIR/config.toml (tokens per step = global batch x seq_len). Needs Debian's python3-matplotlib.
"""
import argparse
import json
import os
import sys
import tomllib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def tokens_per_step(run_dir):
    with open(os.path.join(run_dir, "config.toml"), "rb") as f:
        cfg = tomllib.load(f)
    t = cfg["train"]
    gbs = t["global_batch"] if t["global_batch"] > 0 else t["micro_batch"] * t["micro_batches"]
    return gbs * t["seq_len"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("out")
    ap.add_argument("--title", default=None)
    a = ap.parse_args()
    rows = []
    with open(os.path.join(a.run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    per_step = tokens_per_step(a.run_dir)
    train = [(r["step"] * per_step, r["lm_loss"]) for r in rows if "lm_loss" in r]
    valid = [(r["step"] * per_step, r["valid_loss"]) for r in rows if "valid_loss" in r]
    if not train:
        sys.exit(f"plot_loss: {a.run_dir}/metrics.jsonl has no training rows")
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot([x for x, _ in train], [y for _, y in train], lw=0.8, alpha=0.7, label="train loss")
    if valid:
        ax.plot([x for x, _ in valid], [y for _, y in valid], "o-", lw=1.6, ms=4, label="validation loss")
    ax.set_xlabel("tokens")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(a.title or os.path.basename(os.path.normpath(a.run_dir)))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out)
    print(f"plot_loss: wrote {a.out} ({len(train)} training, {len(valid)} validation points)")


if __name__ == "__main__":
    main()
