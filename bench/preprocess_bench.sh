#!/usr/bin/env bash
# Throughput of `foldmoe preprocess` against a Python peer (HF tokenizers + a numpy writer,
# bench/preprocess_peer.py) on the King James Bible (Debian's bible-kjv), one verse a JSON line.
#
#   bench/preprocess_bench.sh [WORKERS]      (default 4)
#   env: FOLDMOE_BIN (default ./build/foldmoe), PYTHON (default .venv/bin/python, needs tokenizers),
#        TOKENIZER (default char: foldmoe's character vocabulary, rebuilt as an HF tokenizer for the
#        peer; or a tokenizer.json both can load), REPEAT (copies of the Bible, default 4)
#
# Both write PREFIX.bin/.idx; the script checks that the files are identical (same work), then
# prints ONE JSON line: {"input_mb": ..., "foldmoe": {...}, "python": {...}, "ratio_mb_per_s": ...}.
# Each side is timed from start to exit of its process (start-up, reading, tokenising, writing).
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-4}
FOLDMOE_BIN=${FOLDMOE_BIN:-./build/foldmoe}
PYTHON=${PYTHON:-.venv/bin/python}
TOKENIZER=${TOKENIZER:-char}
REPEAT=${REPEAT:-4}
die() { echo "preprocess_bench.sh: error: $*" >&2; exit 1; }
[[ -x "$FOLDMOE_BIN" ]] || die "foldmoe binary '$FOLDMOE_BIN' not found; build it first (scripts/build.sh)"
command -v bible >/dev/null || die "the 'bible' program is missing: apt-get install bible-kjv (scripts/install-deps.sh)"
"$PYTHON" -c "import tokenizers, numpy" 2>/dev/null || die "'$PYTHON' cannot import tokenizers; run scripts/python-env.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bible -f 'Genesis 1:1-Revelation 22:21' > "$work/kjv.txt"
"$PYTHON" - "$work/kjv.txt" "$work/kjv.jsonl" "$REPEAT" <<'PY'
import json, sys
verses = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip()]
with open(sys.argv[2], "w") as f:
    for _ in range(int(sys.argv[3])):
        for v in verses:
            f.write(json.dumps({"text": v}) + "\n")
PY

timed() {  # prints the seconds a command takes; its stdout/stderr go to $work/last.log
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$work/last.log" 2>&1 || { cat "$work/last.log" >&2; die "'$*' failed"; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}
fm_s=$(timed "$FOLDMOE_BIN" preprocess --input "$work/kjv.jsonl" --tokenizer "$TOKENIZER" --append-eod \
  --workers "$WORKERS" --progress off --output-prefix "$work/fm")
fm_line=$(tail -n 1 "$work/last.log")
py_s=$(RAYON_NUM_THREADS="$WORKERS" timed "$PYTHON" bench/preprocess_peer.py --input "$work/kjv.jsonl" \
  --tokenizer "$TOKENIZER" --append-eod --output-prefix "$work/py")
py_json=$(tail -n 1 "$work/last.log")
cmp -s "$work/fm.bin" "$work/py.bin" && cmp -s "$work/fm.idx" "$work/py.idx" ||
  die "foldmoe and the Python peer wrote different files (not the same work)"

"$PYTHON" - "$work/kjv.jsonl" "$WORKERS" "$fm_s" "$py_s" "$fm_line" "$py_json" "$REPEAT" "$TOKENIZER" <<'PY'
import json, os, sys
path, workers, fm_s, py_s, fm_line, py_json, repeat, tokenizer = sys.argv[1:]
mb = os.path.getsize(path) / 1e6
fm_s, py_s = float(fm_s), float(py_s)
print(json.dumps({"input": f"KJV bible x{repeat} as JSON lines", "tokenizer": tokenizer, "input_mb": round(mb, 2), "workers": int(workers),
                  "foldmoe": {"seconds": round(fm_s, 3), "mb_per_s": round(mb / fm_s, 2), "log": fm_line},
                  "python": {"seconds": round(py_s, 3), "mb_per_s": round(mb / py_s, 2), "own": json.loads(py_json)},
                  "ratio_mb_per_s": round(py_s / fm_s, 2)}))
PY
