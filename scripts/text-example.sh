#!/usr/bin/env bash
# The real-text example (README "Training on your own data"): the King James Bible (Debian's
# bible-kjv) -> one JSON line per chapter -> a SentencePiece BPE model (spm_train) -> a Megatron
# indexed dataset (foldmoe preprocess --append-eod) -> a small MoE trained with validation on the
# held-out chapters (configs/text-moe.toml) -> a loss plot and a sample continuation.
#
# Usage: scripts/text-example.sh [extra `foldmoe train` flags, e.g. --train.steps=20]
# Environment: FOLDMOE (the binary, default build/foldmoe), OUT (default runs/text-example),
# VOCAB (SentencePiece pieces, default 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FOLDMOE:-build/foldmoe}
OUT=${OUT:-runs/text-example}
VOCAB=${VOCAB:-2000}
DATA="$OUT/data"
PY=/usr/bin/python3  # Debian's python3 (json, matplotlib)
mkdir -p "$DATA"
for tool in bible spm_train; do
  command -v "$tool" >/dev/null || { echo "text-example: $tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done

# 1. The text: verse lines "Ge1:1 In the beginning ..." grouped into one document per chapter. No
#    text is held out here: [data] split keeps 3% of the chapters for validation.
if [ ! -s "$DATA/kjv.jsonl" ]; then
  bible -f 'Genesis 1:1-Revelation 22:21' >"$DATA/kjv-verses.txt"
  "$PY" - "$DATA/kjv-verses.txt" "$DATA/kjv.jsonl" "$DATA/kjv.txt" <<'PYEOF'
import json, re, sys
chapters, order = {}, []
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"^(\S+?)(\d+):(\d+) (.*)$", line.rstrip("\n"))
    if not m:
        continue
    key = (m.group(1), m.group(2))
    if key not in chapters:
        chapters[key] = []
        order.append(key)
    chapters[key].append(m.group(4).strip())
with open(sys.argv[2], "w", encoding="utf-8") as js, open(sys.argv[3], "w", encoding="utf-8") as txt:
    for key in order:
        js.write(json.dumps({"text": " ".join(chapters[key])}) + "\n")
        txt.write("\n".join(chapters[key]) + "\n")
print(f"text-example: {len(order)} chapters")
PYEOF
fi

# 2. The tokenizer: SentencePiece BPE (ids: 0 <unk>, 1 <s>, 2 </s> = end of document).
if [ ! -s "$DATA/kjv.model" ]; then
  spm_train --input="$DATA/kjv.txt" --model_prefix="$DATA/kjv" --vocab_size="$VOCAB" --model_type=bpe \
    --character_coverage=1.0 --num_threads=2 >"$DATA/spm_train.log" 2>&1
fi

# 3. The indexed dataset, each chapter ending in </s>.
if [ ! -s "$DATA/kjv_text_document.idx" ]; then
  "$BIN" preprocess --input "$DATA/kjv.jsonl" --tokenizer "$DATA/kjv.model" \
    --output-prefix "$DATA/kjv_text_document" --append-eod --progress off
fi

# 4. Train (validation every [eval] interval steps), 5. plot, 6. a sample.
"$BIN" train --config configs/text-moe.toml --data.paths="$DATA/kjv_text_document" \
  --data.tokenizer="$DATA/kjv.model" --train.run_dir="$OUT/run" --log.progress=off --overwrite "$@"
"$PY" scripts/plot_loss.py "$OUT/run" "$OUT/loss.png" --title "text-moe on the King James Bible"
"$BIN" generate --checkpoint "$OUT/run" --prompt "And God said" --temperature 0 --max-new 40
