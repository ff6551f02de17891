#!/usr/bin/env bash
# Train the demo model on a GPU machine: continue from the shipped weights (or START=<weights file>,
# or START=scratch with a DESIGN) for MINUTES, then write the exported weights (float16), the loss
# log and the training log to OUT (default research/gpu-run/, which git ignores).
#
#   scripts/train_demo_on_gpu.sh                                  # 7.5 minutes from the shipped weights
#   START=scratch DESIGN=hidden_size=160,num_heads=5 MINUTES=60 scripts/train_demo_on_gpu.sh
#   python research/semantic.py --weights research/gpu-run/demo_model.safetensors   # measure them
#
# Needs a CUDA build of torch, and numpy, opencv, einops and safetensors. Drawing scenes (~3 ms each
# on one core) is the limit, so all but two cores draw (WORKERS); one H200 with 16 cores trains on
# about 2,500 scenes a second. FIRST_SEED must lie past the training seeds the weights have already
# seen (research/training_record/lineage.json) and below the held-out seeds. DESIGN's fields:
# python -m research.train --help; its first line prints the design's size as shipped. Each
# checkpoint is also exported as it goes (demo_model_partial.safetensors), so a run stopped early
# still leaves weights. Check the script on a CPU:
#   OUT=/tmp/out DEVICE=cpu MINUTES=0.2 WORKERS=2 BATCH=8 scripts/train_demo_on_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-research/gpu-run}
mkdir -p "$OUT"
MINUTES=${MINUTES:-7.5}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}
BATCH=${BATCH:-256}
LR=${LR:-8e-4}
FIRST_SEED=${FIRST_SEED:-5000000}
WARMUP=${WARMUP:-300}
START=${START:-demo_model/weights/demo_model.safetensors}
# a new run's training mix, e.g. MIX="--without-colours 0.55 --same-colour-objects 0.3" (default: the current design)
MIX=${MIX:-}
# a new run's transformer, e.g. DESIGN=hidden_size=160,num_heads=5 (default: the current design)
DESIGN=${DESIGN:-}
PYTHON=${PYTHON:-python3}
start_from=()
if [ "$START" != scratch ]; then
  [ -f "$START" ] || { echo "train_demo_on_gpu: no starting weights at $START; name a weights file, or START=scratch to train from scratch" >&2; exit 2; }
  start_from=(--init-from "$START")
fi
design=()
[ -z "$DESIGN" ] || design=(--design "$DESIGN")
run_dir=$(mktemp -d)
# Every checkpoint is also exported to $OUT, so a run cut short (by a time limit, say)
# still leaves its last weights; written beside and renamed, so a cut never leaves half a file.
# It ticks each second (exporting every 70th), so once killed it holds nobody's output open for long.
( tick=0
  while sleep 1; do
    (( ++tick % 70 )) && continue
    "$PYTHON" -m research.export --run "$run_dir" --out "$OUT/partial.tmp" --half >/dev/null 2>&1 \
      && mv "$OUT/partial.tmp" "$OUT/demo_model_partial.safetensors"
    cp "$run_dir/loss.jsonl" "$OUT/loss.jsonl" 2>/dev/null || true
  done ) &
exporter=$!
# A failed training (say, a design the parser refuses) must not leave the exporter running.
trap 'kill "$exporter" 2>/dev/null || true' EXIT
"$PYTHON" -m research.train --out "$run_dir" --minutes "$MINUTES" --device "$DEVICE" --workers "$WORKERS" \
  --batch "$BATCH" --lr "$LR" --warmup-steps "$WARMUP" --first-seed "$FIRST_SEED" "${start_from[@]}" \
  "${design[@]}" --save-every 1 $MIX 2>&1 | tee "$OUT/train.log"
kill "$exporter" 2>/dev/null || true
wait "$exporter" 2>/dev/null || true
rm -f "$OUT/partial.tmp"
"$PYTHON" -m research.export --run "$run_dir" --out "$OUT/demo_model.safetensors" --half
cp "$run_dir/loss.jsonl" "$OUT/loss.jsonl"
echo "train_demo_on_gpu: $(tail -n 1 "$OUT/loss.jsonl")"
