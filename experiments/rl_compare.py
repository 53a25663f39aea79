#!/usr/bin/python3
"""GRPO vs DAPO vs HAPO on the laptop pipeline (README "RL post-training").

Pretrains once (configs/rl-pretrain.toml), then runs each method from the same checkpoint with the
same budget (RL steps, prompts, group size, updates per step) over several seeds, and writes
  experiments/results/rl_compare.md    mean ± std over seeds of final and best held-out accuracy
  experiments/results/rl_compare.png   held-out accuracy and mean token entropy per step
Usage: experiments/rl_compare.py [--bin build/foldmoe] [--seeds 1 2 3] [--steps N] [--out runs/rl-compare]
Runs single-threaded (OPENBLAS_NUM_THREADS=1), one run at a time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ["grpo", "dapo", "hapo"]


def sh(args, log):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    with open(log, "w") as f:
        p = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(args)}; see {log}")


def records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(x) for x in f if x.strip()]


def mean_std(xs):
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "foldmoe"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--steps", type=int, default=None, help="RL steps (default: the configs')")
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "rl-compare"))
    ap.add_argument("--results", default=os.path.join(ROOT, "experiments", "results"))
    ap.add_argument("--extra", nargs="*", default=[], help="extra --section.key=value flags for every RL run")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.results, exist_ok=True)
    t0 = time.time()

    pt_dir = os.path.join(a.out, "pretrain")
    ckpts = os.path.join(pt_dir, "checkpoints")
    if not (os.path.isdir(ckpts) and any(os.path.exists(os.path.join(ckpts, c, "COMPLETE")) for c in os.listdir(ckpts))):
        print("pretraining (configs/rl-pretrain.toml) ...", flush=True)
        sh([a.bin, "train", "--config", "configs/rl-pretrain.toml", f"--train.run_dir={pt_dir}"], os.path.join(a.out, "pretrain.log"))
    ckpt = os.path.join(ckpts, sorted(os.listdir(ckpts))[-1])
    sh([a.bin, "eval", "--checkpoint", ckpt], os.path.join(a.out, "pretrain-eval.log"))
    with open(os.path.join(a.out, "pretrain-eval.log")) as f:
        greedy = json.loads(f.read().strip().splitlines()[-1])
    print(f"pretrained {ckpt}: greedy exact-answer accuracy {greedy['accuracy']} ({time.time() - t0:.0f}s)", flush=True)

    runs = {}
    for m in METHODS:
        for s in a.seeds:
            d = os.path.join(a.out, f"{m}-seed{s}")
            args = [a.bin, "rl", "--config", f"configs/rl-{m}.toml", "--init", ckpt, f"--rl.seed={s}",
                    f"--train.run_dir={d}", "--log.interval=10", *a.extra]
            if a.steps:
                args.append(f"--rl.steps={a.steps}")
            t = time.time()
            sh(args, os.path.join(a.out, f"{m}-seed{s}.log"))
            runs[(m, s)] = records(d)
            ev = [r for r in runs[(m, s)] if r["type"] == "eval"]
            print(f"{m} seed {s}: held-out {100 * ev[0]['accuracy']:.1f}% -> {100 * ev[-1]['accuracy']:.1f}% "
                  f"(best {100 * max(e['accuracy'] for e in ev):.1f}%) in {time.time() - t:.0f}s", flush=True)

    # ---- table ----
    tasks = [k[len("accuracy_"):] for k in runs[(METHODS[0], a.seeds[0])][0] if k.startswith("accuracy_")]
    start = [r for r in runs[(METHODS[0], a.seeds[0])] if r["type"] == "eval"][0]
    steps = max(r["step"] for r in runs[(METHODS[0], a.seeds[0])])
    lines = ["# GRPO vs DAPO vs HAPO on the laptop pipeline", "",
             f"Pretrained checkpoint: `configs/rl-pretrain.toml` (greedy exact-answer accuracy "
             + ", ".join(f"{t} {100 * v:.1f}%" for t, v in greedy["accuracy"].items()) + "). "
             f"RL: `configs/rl-{{grpo,dapo,hapo}}.toml`, {steps} RL steps each, seeds {a.seeds}, same prompts per step, "
             "group size and updates per step (DAPO's dynamic sampling generates extra rollouts to fill its batch). "
             "Held-out accuracy = mean over questions of the mean over samples (docs/rl.md §8, scaled down: "
             "samples/temperature/top-p as in the config), in percent; final = last evaluation, best = maximum over "
             "evaluations (per task, then averaged, as in the HAPO table). mean ± std over seeds.", "",
             f"Starting point (step 0, identical for every method and seed: the evaluation stream is fixed): avg {100 * start['accuracy']:.1f}%"
             + "".join(f", {t} {100 * start['accuracy_' + t]:.1f}%" for t in tasks) + ".", "",
             "| Method | final avg | best avg | " + " | ".join(f"final {t} | best {t}" for t in tasks) + " | Δ final vs step 0 | Δ per seed |",
             "|---|---|---|" + "---|---|" * len(tasks) + "---|---|"]
    summary = {}
    for m in METHODS:
        fin, best, delta = [], [], []
        fin_t = {t: [] for t in tasks}
        best_t = {t: [] for t in tasks}
        for s in a.seeds:
            ev = [r for r in runs[(m, s)] if r["type"] == "eval"]
            fin.append(100 * ev[-1]["accuracy"])
            delta.append(100 * (ev[-1]["accuracy"] - ev[0]["accuracy"]))
            bt = []
            for t in tasks:
                fin_t[t].append(100 * ev[-1]["accuracy_" + t])
                b = max(100 * e["accuracy_" + t] for e in ev)
                best_t[t].append(b)
                bt.append(b)
            best.append(statistics.mean(bt))
        summary[m] = {"final": mean_std(fin), "best": mean_std(best), "delta": mean_std(delta), "delta_per_seed": delta}
        cell = lambda xs: "{:.1f} ± {:.1f}".format(*mean_std(xs))
        lines.append(f"| {m} | {cell(fin)} | {cell(best)} | "
                     + " | ".join(f"{cell(fin_t[t])} | {cell(best_t[t])}" for t in tasks) + f" | {cell(delta)} | " + ", ".join(f"{d:+.1f}" for d in delta) + " |")
    lines += ["", f"Total wall time {time.time() - t0:.0f} s on one core.", ""]
    md = os.path.join(a.results, "rl_compare.md")
    with open(md, "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(a.results, "rl_compare.json"), "w") as f:
        json.dump({"summary": summary, "pretrain_greedy": greedy,
                   "runs": {f"{m}-seed{s}": r for (m, s), r in runs.items()}}, f)
    print("\n".join(lines))

    # ---- plot ----
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (scripts/install-deps.sh installs python3-matplotlib): no plot")
        return
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for m in METHODS:
        evs = [[r for r in runs[(m, s)] if r["type"] == "eval"] for s in a.seeds]
        xs = [e["step"] for e in evs[0]]
        ys = [statistics.mean(100 * ev[i]["accuracy"] for ev in evs) for i in range(len(xs))]
        ax[0].plot(xs, ys, marker="o", label=m)
        trs = [[r for r in runs[(m, s)] if r["type"] == "train"] for s in a.seeds]
        xs = [r["step"] for r in trs[0]]
        ys = [statistics.mean(tr[i]["entropy_mean"] for tr in trs) for i in range(len(xs))]
        ax[1].plot(xs, ys, label=m)
    ax[0].set(xlabel="RL step", ylabel="held-out accuracy (%)", title=f"held-out accuracy (mean of {len(a.seeds)} seeds)")
    ax[1].set(xlabel="RL step", ylabel="mean token entropy (nats)", title="old-policy token entropy")
    for x in ax:
        x.grid(alpha=0.3)
        x.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(a.results, "rl_compare.png"), dpi=110)
    print("wrote", md, "and rl_compare.png")


if __name__ == "__main__":
    main()
