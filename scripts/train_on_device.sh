#!/usr/bin/env bash
# Train the demo model for a few minutes on a GPU machine; the exported weights, the loss log and
# the training output land in $OUT. One prepared command for the workplace's device `run` tool:
#
#   here:   mkdir -p .device_run && cp demo_model/weights/demo_model.safetensors .device_run/start.safetensors
#   device: run(command="bash scripts/train_on_device.sh", carry=[".device_run"], timeout_s=600)
#   here:   python -m demo_model.train --out <new run dir> --init-from <files_at>/demo_model.safetensors ...
#
# The device machine's python3 has everything demo_model needs (torch, numpy, opencv, einops,
# safetensors). Drawing scenes (~3 ms each on one core) is the limit there, so all but two cores
# draw. The run starts past the seeds earlier runs used, below the held-out seeds: FIRST_SEED must
# move past each earlier device run's last seed (its loss.jsonl's "images" + its FIRST_SEED).
# Seen on an H200 (2026-11-27, 16 cores, torch 2.11): about 2,500 scenes a second, 1.19M scenes in
# 8 minutes; the machine starts in about 30 s. Carry the newest device run's weights, not the
# shipped ones, while those are not shipped (they wait in ~/.cache/comfyui-concept-attention/train).
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
PYTHON=${PYTHON:-python3}
[ -f "$START" ] || { echo "train_on_device: no starting weights at $START (see the comment at the top)" >&2; exit 2; }
run_dir=$(mktemp -d)
# Every checkpoint is also exported to $OUT, so a run cut short (the session's device time ran out)
# still brings back its last weights; written beside and renamed, so a cut never leaves half a file.
( while sleep 70; do
    "$PYTHON" -m demo_model.export --run "$run_dir" --out "$OUT/partial.tmp" --half >/dev/null 2>&1 \
      && mv "$OUT/partial.tmp" "$OUT/demo_model_partial.safetensors"
    cp "$run_dir/loss.jsonl" "$OUT/loss.jsonl" 2>/dev/null || true
  done ) &
exporter=$!
"$PYTHON" -m demo_model.train --out "$run_dir" --minutes "$MINUTES" --device "$DEVICE" --workers "$WORKERS" \
  --batch "$BATCH" --lr "$LR" --warmup-steps "$WARMUP" --first-seed "$FIRST_SEED" --init-from "$START" \
  --save-every 1 $MIX 2>&1 | tee "$OUT/train.log"
kill "$exporter" 2>/dev/null || true
wait "$exporter" 2>/dev/null || true
rm -f "$OUT/partial.tmp"
"$PYTHON" -m demo_model.export --run "$run_dir" --out "$OUT/demo_model.safetensors" --half
cp "$run_dir/loss.jsonl" "$OUT/loss.jsonl"
echo "train_on_device: $(tail -n 1 "$OUT/loss.jsonl")"
