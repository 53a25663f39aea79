#!/usr/bin/env bash
# What a checkpoint save costs the training loop, synchronous vs asynchronous (checkpoint.async),
# on a model whose checkpoint is >= 200 MB (weights + two AdamW moments, 12 bytes per parameter).
#
#   bench/checkpoint_async.sh            env: FOLDMOE_BIN (default ./build/foldmoe), STEPS (40),
#                                             INTERVAL (8), RUNS_DIR (default a temporary directory)
#
# Three runs of the same model and data in one invocation: no interval saves (the peer), sync
# saves, async saves; save_final is off so that only interval saves are counted. From each run's
# metrics.jsonl (docs/observability.md): a "save row" is the row after a save (its time_s.checkpoint
# holds the save's time on the training thread), every other row is a plain step. Per run it prints
# the mean plain step (step_time_s), the mean save row (step_time_s + time_s.checkpoint) and the
# run's wall time from its summary line; the cost of one save as seen by training is
# (wall - wall without saves) / saves. Prints a table on stderr and ONE JSON line on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
FOLDMOE_BIN=${FOLDMOE_BIN:-./build/foldmoe}
STEPS=${STEPS:-40}
INTERVAL=${INTERVAL:-8}
[[ -x "$FOLDMOE_BIN" ]] || { echo "checkpoint_async.sh: error: '$FOLDMOE_BIN' not found; build first (scripts/build.sh release)" >&2; exit 1; }
RUNS_DIR=${RUNS_DIR:-$(mktemp -d -t foldmoe-ckpt-bench-XXXXXX)}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
MODEL=(--model.hidden=512 --model.layers=4 --moe.num_experts=8 --model.ffn=1024 --moe.ffn_hidden_size=256
       --model.vocab=8192 --train.micro_batch=2 --train.seq_len=128 --log.interval=1000 --log.progress=off
       "--train.steps=$STEPS" --checkpoint.save_final=false)

run() {  # name, flags...
  local name=$1; shift
  echo "checkpoint_async.sh: $name run ($STEPS steps) in $RUNS_DIR/$name" >&2
  "$FOLDMOE_BIN" train "--train.run_dir=$RUNS_DIR/$name" "${MODEL[@]}" "$@" > "$RUNS_DIR/$name.out" 2>&1 \
    || { cat "$RUNS_DIR/$name.out" >&2; exit 1; }
}
run none --checkpoint.interval=0
run sync "--checkpoint.interval=$INTERVAL" --checkpoint.async=false
run async "--checkpoint.interval=$INTERVAL" --checkpoint.async=true

python3 - "$RUNS_DIR" "$INTERVAL" <<'PY'
import json, os, re, sys
root, interval = sys.argv[1], int(sys.argv[2])

def summary(name):
    rows = [json.loads(l) for l in open(os.path.join(root, name, "metrics.jsonl")) if l.strip()]
    rows = [r for r in rows if "step_time_s" in r]
    out = open(os.path.join(root, f"{name}.out")).read()
    wall = float(re.search(r"steps \d+\.\.\d+ in ([0-9.]+) s", out).group(1))
    save = [r for r in rows if r["time_s"]["checkpoint"] > 0]
    plain = [r for r in rows[1:] if r["time_s"]["checkpoint"] == 0]  # the first step warms up
    mean = lambda xs: sum(xs) / len(xs) if xs else 0.0
    return {"plain_step_s": mean([r["step_time_s"] for r in plain]),
            "save_row_s": mean([r["step_time_s"] + r["time_s"]["checkpoint"] for r in save]),
            "saves": len(save), "wall_s": wall}

res = {n: summary(n) for n in ("none", "sync", "async")}
ck = os.path.join(root, "sync", "checkpoints")
first = sorted(os.listdir(ck))[0]
size = sum(os.path.getsize(os.path.join(ck, first, f)) for f in os.listdir(os.path.join(ck, first)))
for n in ("sync", "async"):
    r = res[n]
    r["cost_per_save_s"] = (r["wall_s"] - res["none"]["wall_s"]) / max(r["saves"], 1)
    r["save_row_extra_s"] = r["save_row_s"] - r["plain_step_s"]
print(f"checkpoint size {size / 1e6:.0f} MB, {res['sync']['saves']} saves", file=sys.stderr)
print(f"{'run':6} {'plain step s':>12} {'save row s':>11} {'wall s':>8} {'cost/save s':>12}", file=sys.stderr)
for n, r in res.items():
    print(f"{n:6} {r['plain_step_s']:12.3f} {r['save_row_s']:11.3f} {r['wall_s']:8.1f} "
          f"{r.get('cost_per_save_s', 0):12.3f}", file=sys.stderr)
res["checkpoint_bytes"] = size
res["ratio_async_to_sync_cost_per_save"] = res["async"]["cost_per_save_s"] / res["sync"]["cost_per_save_s"]
print(json.dumps(res))
PY
