#!/usr/bin/env bash
# Train the demo model for a few minutes on a GPU machine; the exported weights, the loss log and
# the training output land in $OUT. One prepared command for a remote GPU machine:
#
#   locally: mkdir -p .device_run && cp demo_model/weights/demo_model.safetensors .device_run/start.safetensors
#   remote:  copy the working tree with .device_run, then OUT=<dir> timeout 600 bash scripts/train_on_device.sh
#   here:   python -m demo_model.train --out <new run dir> --init-from <files_at>/demo_model.safetensors ...
#
# The device machine's python3 has everything demo_model needs (torch, numpy, opencv, einops,
# safetensors). Drawing scenes (~3 ms each on one core) is the limit there, so all but two cores
# draw. The run starts past the seeds earlier runs used, below the held-out seeds: FIRST_SEED must
# move past each earlier device run's last seed (its loss.jsonl's "images" + its FIRST_SEED).
# Seen on an H200 (2026-11-27, 16 cores, torch 2.11): about 2,500 scenes a second, 1.19M scenes in
# 8 minutes; the machine starts in about 30 s. Carry the newest device run's weights, not the
# shipped ones, while those are not shipped (they wait in ~/.cache/comfyui-concept-attention/train).
# A new design trains from scratch: START=scratch DESIGN=hidden_size=160,num_heads=5 (python -m
# demo_model.train --help lists the fields; its first line prints the design's size as shipped).
# On the CPU, for a check of this script: OUT=/tmp/out DEVICE=cpu MINUTES=0.2 WORKERS=2 BATCH=8 bash scripts/train_on_device.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that comes back}"
MINUTES=${MINUTES:-7.5}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}
BATCH=${BATCH:-256}
LR=${LR:-8e-4}
FIRST_SEED=${FIRST_SEED:-5000000}
WARMUP=${WARMUP:-300}
START=${START:-.device_run/start.safetensors}
# a new run's training mix, e.g. MIX="--without-colours 0.55 --same-colour-objects 0.3" (default: the current design)
MIX=${MIX:-}
# a new run's transformer, e.g. DESIGN=hidden_size=160,num_heads=5 (default: the current design)
DESIGN=${DESIGN:-}
PYTHON=${PYTHON:-python3}
start_from=()
if [ "$START" != scratch ]; then
  [ -f "$START" ] || { echo "train_on_device: no starting weights at $START (see the comment at the top; START=scratch trains from scratch)" >&2; exit 2; }
  start_from=(--init-from "$START")
fi
design=()
[ -z "$DESIGN" ] || design=(--design "$DESIGN")
run_dir=$(mktemp -d)
# Every checkpoint is also exported to $OUT, so a run cut short (the machine's time limit ran out)
# still brings back its last weights; written beside and renamed, so a cut never leaves half a file.
# It ticks each second (exporting every 70th), so once killed it holds nobody's output open for long.
( tick=0
  while sleep 1; do
    (( ++tick % 70 )) && continue
    "$PYTHON" -m demo_model.export --run "$run_dir" --out "$OUT/partial.tmp" --half >/dev/null 2>&1 \
      && mv "$OUT/partial.tmp" "$OUT/demo_model_partial.safetensors"
    cp "$run_dir/loss.jsonl" "$OUT/loss.jsonl" 2>/dev/null || true
  done ) &
exporter=$!
# A failed training (say, a design the parser refuses) must not leave the exporter running.
trap 'kill "$exporter" 2>/dev/null || true' EXIT
"$PYTHON" -m demo_model.train --out "$run_dir" --minutes "$MINUTES" --device "$DEVICE" --workers "$WORKERS" \
  --batch "$BATCH" --lr "$LR" --warmup-steps "$WARMUP" --first-seed "$FIRST_SEED" "${start_from[@]}" \
  "${design[@]}" --save-every 1 $MIX 2>&1 | tee "$OUT/train.log"
kill "$exporter" 2>/dev/null || true
wait "$exporter" 2>/dev/null || true
rm -f "$OUT/partial.tmp"
"$PYTHON" -m demo_model.export --run "$run_dir" --out "$OUT/demo_model.safetensors" --half
cp "$run_dir/loss.jsonl" "$OUT/loss.jsonl"
echo "train_on_device: $(tail -n 1 "$OUT/loss.jsonl")"
