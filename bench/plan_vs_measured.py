#!/usr/bin/env python3
"""`foldmoe plan` against measurement on this machine (docs/planner.md §6): calibrates the CPU
backend (`foldmoe plan --calibrate`), then trains configs/bench-small.toml under mpirun in layouts
covering DP, TP, EP, PP, CP and folding on 1-8 ranks (--oversubscribe, a few short steps), and
prints, per layout, the predicted and measured step time and peak memory per rank.

  .venv/bin/python bench/plan_vs_measured.py [build/foldmoe] [--steps N] [--cluster FILE] [--only NAME,...]

Measured: the median `step_time_s` of metrics.jsonl after the first (warm-up) step, and the largest
`peak_rss_mib` of any rank. On an oversubscribed 2-core machine that other jobs share, timings are
noisy: run it on a quiet machine for figures worth quoting, after `source scripts/openblas-env.sh` (the
AVX-512 kernels on a CPU that OpenBLAS 0.3.21 does not recognise)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "bench-small.toml")
MICRO_BATCH, SEQ = 8, 256
# name: (ranks, tp, cp, pp, ep, etp, micro-batches per replica)
LAYOUTS = {
    "single": (1, 1, 1, 1, 1, 1, 2),
    "dp2": (2, 1, 1, 1, 1, 1, 2),
    "dp4": (4, 1, 1, 1, 1, 1, 2),
    "tp2": (2, 2, 1, 1, 1, 2, 2),
    "ep2": (2, 1, 1, 1, 2, 1, 2),
    "dp4_ep4": (4, 1, 1, 1, 4, 1, 2),
    "pp2": (2, 1, 1, 2, 1, 1, 4),
    "pp4": (4, 1, 1, 4, 1, 1, 4),
    "cp2": (2, 1, 2, 1, 1, 1, 2),
    "tp2_ep2_folded": (2, 2, 1, 1, 2, 1, 2),
    "tp2_cp2_ep4_folded": (4, 2, 2, 1, 4, 1, 2),
    "tp2_pp2_dp2_ep4_folded": (8, 2, 1, 2, 4, 1, 4),
}


def sh(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"plan_vs_measured: {' '.join(cmd)} exited {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default=os.path.join(ROOT, "build", "foldmoe"))
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--cluster", default="")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    work = tempfile.mkdtemp(prefix="foldmoe-plan-bench-")
    cluster = a.cluster
    if not cluster:
        # Under mpirun with as many ranks as cores (at most 2): the collectives are timed too, without
        # oversubscription (the step model accounts for ranks that share cores itself).
        cluster = os.path.join(work, "cluster-cpu.toml")
        n = min(2, os.cpu_count() or 1)
        mpi = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1", "-np", str(n)]
        sh((mpi if n > 1 else []) + [a.binary, "plan", "--calibrate", "--out", cluster], env=env)
    names = a.only.split(",") if a.only else list(LAYOUTS)
    rows = []
    for name in names:
        n, tp, cp, pp, ep, etp, m = LAYOUTS[name]
        dp = n // (tp * cp * pp)
        gb = MICRO_BATCH * dp * m
        run_dir = os.path.join(work, name)
        train = [a.binary, "train", "--config", CONFIG, f"--train.run_dir={run_dir}", f"--train.steps={a.steps}",
                 f"--train.global_batch={gb}", f"--parallel.tp={tp}", f"--parallel.cp={cp}", f"--parallel.pp={pp}",
                 f"--parallel.ep={ep}", f"--parallel.etp={etp}", "--log.progress=off"]
        mpi = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "mpi_yield_when_idle", "1", "-np", str(n)]
        sh((mpi if n > 1 else []) + train, env=env)
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            recs = [json.loads(line) for line in f if line.strip()]
        recs = [r for r in recs if "step_time_s" in r]
        t_meas = statistics.median(r["step_time_s"] for r in recs[1:]) if len(recs) > 1 else recs[0]["step_time_s"]
        rss = max(max(r["peak_rss_mib"]) if isinstance(r["peak_rss_mib"], list) else r["peak_rss_mib"]
                  for r in recs if "peak_rss_mib" in r)
        pred = json.loads(sh([a.binary, "plan", "--format", "json", "--model", CONFIG, "--cluster", cluster, "--gpus",
                              str(n), "--global-batch", str(gb), "--seq", str(SEQ), "--tp", str(tp), "--cp", str(cp),
                              "--pp", str(pp), "--ep", str(ep), "--etp", str(etp), "--micro-batch", str(MICRO_BATCH),
                              "--distributed-optimizer", "false"], env=env))
        p_t, p_mem = pred["step_time_s"], pred["memory_gib_per_gpu"] * 1024
        rows.append({"layout": name, "ranks": n, "predicted_step_s": round(p_t, 4), "measured_step_s": round(t_meas, 4),
                     "step_error": round(p_t / t_meas - 1, 4), "predicted_mib": round(p_mem, 1),
                     "measured_peak_rss_mib": round(rss, 1), "memory_error": round(p_mem / rss - 1, 4)})
        r = rows[-1]
        print(f"{name:<24} {n} ranks  step {r['predicted_step_s']:8.3f} s predicted {r['measured_step_s']:8.3f} s "
              f"measured ({r['step_error']:+.1%})   memory {r['predicted_mib']:8.1f} MiB predicted "
              f"{r['measured_peak_rss_mib']:8.1f} MiB measured ({r['memory_error']:+.1%})", flush=True)
    within_t = sum(abs(r["step_error"]) <= 0.20 for r in rows)
    within_m = sum(abs(r["memory_error"]) <= 0.15 for r in rows)
    print(json.dumps({"layouts": rows, "step_within_20pct": within_t, "memory_within_15pct": within_m,
                      "count": len(rows), "cluster": cluster}))


if __name__ == "__main__":
    main()
