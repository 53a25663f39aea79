#!/usr/bin/env bash
# Conversion throughput and peak resident memory per rank for a >= 1 GB Hugging Face model
# (docs/hf-models.md "Streaming"). Makes a random Mixtral-shaped model with transformers, saved in
# bf16 (about 1.1 GB, 2 GB shards), in a scratch directory (never in the repository), then runs
# `foldmoe convert --from hf --to hf` (streamed load and in-place sharded save) and
# with 1 process and with 4 (TP2 x EP2, so every rank holds a quarter of the experts and half of
# the dense weights). (`convert --from hf` to a foldmoe checkpoint is not run: that format's save
# gathers the whole model on every rank, several times its size in memory per rank.)
#   bench/hf_convert.sh [build/foldmoe] [scratch dir]
set -euo pipefail
BIN=$(realpath "${1:-build/foldmoe}")
WORK=${2:-$(mktemp -d /tmp/foldmoe-hf-bench.XXXX)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"
export OPENBLAS_NUM_THREADS=1
MPI=(mpirun --allow-run-as-root --oversubscribe --mca mpi_yield_when_idle 1)
mkdir -p "$WORK"
if [ ! -f "$WORK/mixtral/config.json" ]; then
  "$PY" - "$WORK/mixtral" <<'PY'
import sys, torch
from transformers import AutoConfig, AutoModelForCausalLM
torch.manual_seed(0)
c = AutoConfig.for_model("mixtral", hidden_size=1024, num_hidden_layers=6, num_attention_heads=16,
                         num_key_value_heads=4, intermediate_size=3072, num_local_experts=8,
                         num_experts_per_tok=2, vocab_size=32000, max_position_embeddings=4096)
m = AutoModelForCausalLM.from_config(c, torch_dtype=torch.bfloat16)
m.save_pretrained(sys.argv[1], safe_serialization=True, max_shard_size="400MB")
print(f"{sum(p.numel() for p in m.parameters()) / 1e6:.0f} M parameters")
PY
fi
du -sh "$WORK/mixtral"
for np in 1 4; do
  layout=()
  [ "$np" = 4 ] && layout=(--parallel.tp=2 --parallel.ep=2)
  rm -rf "$WORK/out-$np" "$WORK/ckpt-$np"
  echo "== np $np: HF -> HF (bf16, streamed both ways)"
  "${MPI[@]}" -np "$np" "$BIN" convert --from hf --to hf --input "$WORK/mixtral" --output "$WORK/out-$np" \
    --dtype bf16 --max-shard-size 400MB --train.skip_memory_check=true "${layout[@]}"
done
for f in "$WORK"/out-1/*; do cmp "$f" "$WORK/out-4/$(basename "$f")"; done
echo "np 1 and np 4 wrote identical files"
