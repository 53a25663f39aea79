#!/usr/bin/python3
"""GRPO vs DAPO vs HAPO, and HAPO with each of its four parts off, on the laptop pipeline
(README "RL post-training", docs/rl.md §7.2).

Pretrains once (configs/rl-pretrain.toml on the task mix --tasks, by default add + word: a start
that solves 30-60%), then runs every method from the same checkpoint with the same budget (RL
steps, prompts, group size, updates per step) over several seeds, and writes
  experiments/results/rl_compare.md    per-method gains with 95% t-intervals over seeds, and the
                                       paired (same seed) differences HAPO - DAPO, DAPO - GRPO and
                                       each ablation - HAPO with 95% t-intervals
  experiments/results/rl_compare.json  everything, including every run's metrics
  experiments/results/rl_compare.png   held-out accuracy and mean token entropy per step, and the
                                       paired differences with their intervals
and replaces the README's generated block (between the rl_compare.py markers) with the tables.
Methods: grpo, dapo, hapo (configs/rl-{grpo,dapo,hapo}.toml) and the ablations hapo-no-ats
(adaptive temperature off), hapo-no-tlga (GRPO advantage instead of TLGA), hapo-no-dar and
hapo-no-aac (the hapo config with one flag).
Usage: experiments/rl_compare.py [--bin build/foldmoe] [--seeds 1 2 3 4 5] [--steps N]
       [--methods ...] [--jobs K] [--out runs/rl-compare]
Every run is single-threaded (OPENBLAS_NUM_THREADS=1); --jobs runs K of them at a time.
Finished runs (a metrics.jsonl ending in the final evaluation) are reused on a rerun.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# method -> (config, extra flags): the ablations are the hapo preset with one part switched off.
METHODS = {
    "grpo": ("configs/rl-grpo.toml", []),
    "dapo": ("configs/rl-dapo.toml", []),
    "hapo": ("configs/rl-hapo.toml", []),
    "hapo-no-ats": ("configs/rl-hapo.toml", ["--rl.hapo.ats.enabled=false"]),
    "hapo-no-tlga": ("configs/rl-hapo.toml", ["--rl.advantage.estimator=grpo"]),
    "hapo-no-dar": ("configs/rl-hapo.toml", ["--rl.hapo.dar.enabled=false"]),
    "hapo-no-aac": ("configs/rl-hapo.toml", ["--rl.hapo.aac.enabled=false"]),
}
# Two-sided 95% Student t quantiles t_{0.975, df} (no scipy needed); beyond the table, the normal.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(df):
    if df in T975:
        return T975[df]
    below = [d for d in T975 if d < df]
    return T975[max(below)] if df <= 30 else 1.960  # conservative between table entries


def ci95(xs):
    """Mean and half-width of the 95% t-interval of the mean (nan half-width for one value)."""
    m = statistics.mean(xs)
    if len(xs) < 2:
        return m, float("nan")
    return m, t975(len(xs) - 1) * statistics.stdev(xs) / math.sqrt(len(xs))


def fmt_ci(xs):
    m, h = ci95(xs)
    lo, hi = m - h, m + h
    return f"{m:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def verdict(xs):
    m, h = ci95(xs)
    if not h == h:  # nan
        return "one seed"
    if m - h > 0:
        return "> 0"
    if m + h < 0:
        return "< 0"
    return "0 inside"


def sh(args, log):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    with open(log, "w") as f:
        p = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(args)}; see {log}")


def records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(x) for x in f if x.strip()]


def evals(recs):
    return [r for r in recs if r["type"] == "eval"]


def seconds(path, value=None):
    """Writes or reads the wall time a run took (kept beside it, so a rerun that reuses it can report it)."""
    f = os.path.join(path, "wall_seconds.txt")
    if value is not None:
        with open(f, "w") as out:
            out.write(f"{value:.1f}\n")
        return value
    try:
        with open(f) as inp:
            return float(inp.read())
    except (OSError, ValueError):
        return 0.0


def finished(run_dir, steps):
    try:
        ev = evals(records(run_dir))
    except (OSError, ValueError):
        return False
    return bool(ev) and ev[-1]["step"] == steps


README_BEGIN = "<!-- experiments/rl_compare.py writes this block: begin -->"
README_END = "<!-- experiments/rl_compare.py writes this block: end -->"


def replace_readme_block(path, lines):
    """The README shows the tables the script wrote, not a hand copy that can drift from them."""
    with open(path) as f:
        text = f.read()
    if README_BEGIN not in text or README_END not in text:
        print(f"{path}: no rl_compare.py markers, README not updated")
        return
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    # The block sits under the README's "### Results" heading: its own headings go one level down.
    body = "\n".join("##" + l if l.startswith("## ") else l for l in lines)
    body = body.replace("(docs/rl.md §8", "([docs/rl.md](docs/rl.md) §8").strip()
    with open(path, "w") as f:
        f.write(head + README_BEGIN + "\n\n" + body + "\n\n" + README_END + tail)
    print("updated", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "foldmoe"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--tasks", default="add,word", help="task mix of pretraining and RL (comma-separated)")
    ap.add_argument("--steps", type=int, default=200, help="RL steps per run (the configs' 200 by default)")
    ap.add_argument("--eval-every", type=int, default=None, help="held-out evaluation interval (default: the configs')")
    ap.add_argument("--jobs", type=int, default=1, help="RL runs at a time (each on one thread)")
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "rl-compare"))
    ap.add_argument("--results", default=os.path.join(ROOT, "experiments", "results"))
    ap.add_argument("--extra", nargs="*", default=[], help="extra --section.key=value flags for every RL run")
    ap.add_argument("--readme", default=os.path.join(ROOT, "README.md"),
                    help="README whose block between the rl_compare.py markers is replaced ('' = none)")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: tabulate the finished runs (seeds where every method finished)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.results, exist_ok=True)
    t0 = time.time()

    pt_dir = os.path.join(a.out, "pretrain")
    ckpts = os.path.join(pt_dir, "checkpoints")
    pretrain_s = None
    if not a.report_only and not (os.path.isdir(ckpts) and any(os.path.exists(os.path.join(ckpts, c, "COMPLETE")) for c in os.listdir(ckpts))):
        print(f"pretraining (configs/rl-pretrain.toml, tasks {a.tasks}) ...", flush=True)
        shutil.rmtree(pt_dir, ignore_errors=True)
        sh([a.bin, "train", "--config", "configs/rl-pretrain.toml", f"--data.tasks={a.tasks}",
            f"--train.run_dir={pt_dir}"], os.path.join(a.out, "pretrain.log"))
        seconds(pt_dir, time.time() - t0)
    pretrain_s = seconds(pt_dir)
    ckpt = os.path.join(ckpts, sorted(os.listdir(ckpts))[-1])
    sh([a.bin, "eval", "--checkpoint", ckpt], os.path.join(a.out, "pretrain-eval.log"))
    with open(os.path.join(a.out, "pretrain-eval.log")) as f:
        greedy = json.loads(f.read().strip().splitlines()[-1])
    print(f"pretrained {ckpt}: greedy exact-answer accuracy {greedy['accuracy']} ({time.time() - t0:.0f}s)", flush=True)

    def run(key):
        m, s = key
        d = os.path.join(a.out, f"{m}-seed{s}")
        if not finished(d, a.steps):
            shutil.rmtree(d, ignore_errors=True)
            cfg, flags = METHODS[m]
            args = [a.bin, "rl", "--config", cfg, "--init", ckpt, f"--rl.seed={s}", f"--rl.tasks={a.tasks}",
                    f"--rl.steps={a.steps}", f"--train.run_dir={d}", "--log.interval=10", *flags, *a.extra]
            if a.eval_every:
                args.append(f"--rl.eval.every={a.eval_every}")
            t = time.time()
            sh(args, os.path.join(a.out, f"{m}-seed{s}.log"))
            seconds(d, time.time() - t)
        took = seconds(d)
        ev = evals(records(d))
        print(f"{m} seed {s}: held-out {100 * ev[0]['accuracy']:.1f}% -> {100 * ev[-1]['accuracy']:.1f}% "
              f"(best {100 * max(e['accuracy'] for e in ev):.1f}%) in {took:.0f}s", flush=True)
        return key, records(d), took

    if a.report_only:
        done = [s for s in a.seeds if all(finished(os.path.join(a.out, f"{m}-seed{s}"), a.steps) for m in a.methods)]
        print(f"--report-only: seeds {done} have every method finished (of {a.seeds})", flush=True)
        a.seeds = done
    keys = [(m, s) for s in a.seeds for m in a.methods]  # seed-major: an interrupted set stays paired
    runs, secs = {}, {}
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        for key, recs, took in pool.map(run, keys):
            runs[key], secs[key] = recs, took

    # ---- numbers ----
    first = runs[keys[0]]
    tasks = [k[len("accuracy_"):] for k in evals(first)[0] if k.startswith("accuracy_")]
    start = evals(first)[0]
    steps = max(r["step"] for r in first)

    def stats(m):
        out = {"final": [], "best": [], "gain_final": [], "gain_best": [], "final_t": {t: [] for t in tasks},
               "gain_final_t": {t: [] for t in tasks}}
        for s in a.seeds:
            ev = evals(runs[(m, s)])
            s0 = 100 * ev[0]["accuracy"]
            fin = 100 * ev[-1]["accuracy"]
            # best = per task maximum over evaluations, then averaged (as the HAPO paper's table)
            best = statistics.mean(max(100 * e["accuracy_" + t] for e in ev) for t in tasks)
            out["final"].append(fin)
            out["best"].append(best)
            out["gain_final"].append(fin - s0)
            out["gain_best"].append(best - s0)
            for t in tasks:
                out["final_t"][t].append(100 * ev[-1]["accuracy_" + t])
                out["gain_final_t"][t].append(100 * (ev[-1]["accuracy_" + t] - ev[0]["accuracy_" + t]))
        return out

    st = {m: stats(m) for m in a.methods}
    pairs = [("hapo", "dapo"), ("dapo", "grpo"), ("hapo", "grpo")] + [(m, "hapo") for m in a.methods if m.startswith("hapo-")]
    pairs = [(x, y) for x, y in pairs if x in st and y in st]
    diffs = {f"{x} - {y}": {k: [p - q for p, q in zip(st[x][k], st[y][k])] for k in ("gain_final", "gain_best")}
             for x, y in pairs}

    # ---- table ----
    n = len(a.seeds)
    lines = ["# GRPO vs DAPO vs HAPO (and HAPO ablations) on the laptop pipeline", "",
             f"Task mix `{a.tasks}` (data/synthetic.h). Pretrained checkpoint: `configs/rl-pretrain.toml` with "
             f"`--data.tasks={a.tasks}` (greedy exact-answer accuracy "
             + ", ".join(f"{t} {100 * v:.1f}%" for t, v in greedy["accuracy"].items()) + "). "
             f"RL: `configs/rl-{{grpo,dapo,hapo}}.toml` with `--rl.tasks={a.tasks}`, **{steps} RL steps** each"
             + (" (the configs say 200: reduced so that 7 methods x 5 seeds fit the time on one core)" if steps < 200 else "")
             + f", seeds {a.seeds}, same prompts per step, group size and updates per step (DAPO's dynamic sampling "
             "generates extra rollouts to fill its batch). Ablations: the hapo config with one part off "
             "(`hapo-no-ats`: --rl.hapo.ats.enabled=false; `hapo-no-tlga`: --rl.advantage.estimator=grpo; "
             "`hapo-no-dar`: --rl.hapo.dar.enabled=false; `hapo-no-aac`: --rl.hapo.aac.enabled=false). "
             "Held-out accuracy = mean over questions of the mean over samples (docs/rl.md §8, scaled down: "
             "samples/temperature/top-p as in the config), in percent; final = last evaluation, best = per-task "
             f"maximum over evaluations, averaged over tasks; evaluations every {a.eval_every or 'N (config)'} steps"
             + (f"; extra flags for every RL run: `{' '.join(a.extra)}`" if a.extra else "") + ".", "",
             f"Starting point (step 0, identical for every method and seed: the evaluation set is fixed): "
             f"avg {100 * start['accuracy']:.1f}%" + "".join(f", {t} {100 * start['accuracy_' + t]:.1f}%" for t in tasks) + ".", "",
             f"Intervals: mean [95% t-interval] over the {n} seeds (t with {n - 1} degrees of freedom); differences are "
             "paired by seed (same RL prompt stream and seed for both methods).", "",
             "## Gain over the start, per method", "",
             "| Method | final avg | gain final (pts) | gain best (pts) | " + " | ".join(f"gain final {t}" for t in tasks)
             + " | gain final per seed |",
             "|---|---|---|---|" + "---|" * len(tasks) + "---|"]
    for m in a.methods:
        o = st[m]
        lines.append(f"| {m} | {statistics.mean(o['final']):.1f} | {fmt_ci(o['gain_final'])} | {fmt_ci(o['gain_best'])} | "
                     + " | ".join(fmt_ci(o["gain_final_t"][t]) for t in tasks) + " | "
                     + ", ".join(f"{d:+.1f}" for d in o["gain_final"]) + " |")
    lines += ["", "## Paired differences (by seed)", "",
              "| Difference | final (pts) | 0 vs interval | best (pts) | 0 vs interval | per seed (final) |",
              "|---|---|---|---|---|---|"]
    for name, d in diffs.items():
        lines.append(f"| {name} | {fmt_ci(d['gain_final'])} | {verdict(d['gain_final'])} | {fmt_ci(d['gain_best'])} | "
                     f"{verdict(d['gain_best'])} | " + ", ".join(f"{x:+.1f}" for x in d["gain_final"]) + " |")
    run_s = [v for v in secs.values() if v > 0]
    lines += ["", f"Wall time: pretraining {pretrain_s:.0f} s, {len(run_s)} RL runs {sum(run_s):.0f} s in all "
              + (f"({min(run_s):.0f}-{max(run_s):.0f} s each)" if run_s else "")
              + f", each run on one thread (OPENBLAS_NUM_THREADS=1) of a 2-core machine shared with other jobs.", ""]
    md = os.path.join(a.results, "rl_compare.md")
    with open(md, "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(a.results, "rl_compare.json"), "w") as f:
        json.dump({"settings": {"tasks": a.tasks, "steps": steps, "seeds": a.seeds, "methods": a.methods},
                   "start": start, "pretrain_greedy": greedy,
                   "summary": {m: {k: v for k, v in st[m].items()} for m in a.methods},
                   "ci95": {m: {k: ci95(st[m][k]) for k in ("gain_final", "gain_best")} for m in a.methods},
                   "paired": {k: {q: {"values": v, "ci95": ci95(v)} for q, v in d.items()} for k, d in diffs.items()},
                   "runs": {f"{m}-seed{s}": r for (m, s), r in runs.items()}}, f)
    print("\n".join(lines))
    if a.readme:
        replace_readme_block(a.readme, lines[2:])

    # ---- plot ----
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (scripts/install-deps.sh installs python3-matplotlib): no plot")
        return
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.2))
    for m in a.methods:
        style = "--" if m.startswith("hapo-") else "-"
        evs = [evals(runs[(m, s)]) for s in a.seeds]
        xs = [e["step"] for e in evs[0]]
        ys = [statistics.mean(100 * ev[i]["accuracy"] for ev in evs) for i in range(len(xs))]
        ax[0].plot(xs, ys, style, marker="o", label=m)
        trs = [[r for r in runs[(m, s)] if r["type"] == "train"] for s in a.seeds]
        xs = [r["step"] for r in trs[0]]
        ys = [statistics.mean(tr[i]["entropy_mean"] for tr in trs) for i in range(len(xs))]
        ax[1].plot(xs, ys, style, label=m)
    names = list(diffs)
    for i, name in enumerate(names):
        mu, h = ci95(diffs[name]["gain_final"])
        ax[2].errorbar(mu, i, xerr=0 if h != h else h, fmt="o", capsize=4)
    ax[2].axvline(0, color="k", lw=0.8)
    ax[2].set_yticks(range(len(names)), names)
    ax[2].invert_yaxis()
    ax[0].set(xlabel="RL step", ylabel="held-out accuracy (%)", title=f"held-out accuracy (mean of {n} seeds)")
    ax[1].set(xlabel="RL step", ylabel="mean token entropy (nats)", title="old-policy token entropy")
    ax[2].set(xlabel="difference of final gain (pts)", title="paired differences, 95% t-interval")
    for x in ax[:2]:
        x.legend(fontsize=7)
    for x in ax:
        x.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(a.results, "rl_compare.png"), dpi=110)
    print("wrote", md, "and rl_compare.png")


if __name__ == "__main__":
    main()
