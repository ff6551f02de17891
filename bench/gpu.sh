#!/usr/bin/env bash
# One-shot GPU benchmark: full Flux.1 geometry (19 double + 38 single blocks, hidden 3072, bf16,
# random weights, ~24 GB) at 512^2 and 1024^2, then Chroma and Flux.2 dev at their full geometry at
# 512^2, the same ratios as the CPU run (bench/run.py).
#
# Exact command, from the repository root on the GPU machine:
#
#     bench/gpu.sh              # the runs below
#     bench/gpu.sh families     # instead: bench/run.py --all-families on the GPU (every family x native / fp8
#                               # weights x K = 4, 64), within 9 minutes -> $OUT/results-gpu-all-families.json
#
# Environment it assumes (checked below, with a message naming the fix):
#   - one CUDA GPU with >= 60 GB free (an H100 80 GB): the weights are drawn on the GPU before
#     ComfyUI loads the model, and its loader counts them again, so a smaller card would be
#     pushed into partial (lowvram) loading and measure offloading instead of the stream;
#   - ComfyUI 0.8.0 and a Python that has its requirements and a CUDA build of torch:
#     CA_COMFYUI_DIR + CA_PYTHON if set, else whatever `scripts/host_env.sh 0.8.0` prints (it uses
#     $COMFYUI_PATH or ~/.cache/comfyui-concept-attention/hosts/0.8.0 and the cached venv; it only
#     needs a network when neither exists);
#   - $OUT, when set, receives the JSON and the logs;
#     otherwise they go to bench/.
# Expected run time on one H100: about 3-5 minutes for Flux.1 (three processes, each booting ComfyUI
# (~20 s) and drawing the 12B random weights on the GPU (seconds); ~200 sampler/forward runs of
# 0.1-0.5 s), up to 150 s more per other family; each step has its own timeout, so the script ends
# within 14 minutes whatever happens (CA_BENCH_FAMILIES="" runs Flux.1 alone, within 9).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench}
mkdir -p "$out"

if [ -z "${CA_COMFYUI_DIR:-}" ] || [ -z "${CA_PYTHON:-}" ]; then
  host_version=0.8.0
  [ "${1:-}" = families ] && host_version=0.33.0  # the host that has every family
  env_line=$(scripts/host_env.sh "$host_version" | tail -1)
  CA_COMFYUI_DIR=${CA_COMFYUI_DIR:-$(cut -f1 <<<"$env_line")}
  CA_PYTHON=${CA_PYTHON:-$(cut -f2 <<<"$env_line")}
fi
export CA_COMFYUI_DIR

"$CA_PYTHON" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu.sh: torch {torch.__version__} sees no CUDA device; use a CUDA build of torch on a GPU machine")
free, total = torch.cuda.mem_get_info()
print(f"gpu.sh: {torch.cuda.get_device_name()}, {free / 2**30:.0f} of {total / 2**30:.0f} GiB free, torch {torch.__version__}")
if free < 60 * 2**30:
    sys.exit("gpu.sh: needs >= 60 GB free (24 GB of bf16 weights, counted twice by ComfyUI's loader); use an H100 80 GB")
EOF
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,clocks.max.sm --format=csv > "$out/gpu-nvidia-smi.csv" || true

if [ "${1:-}" = families ]; then
  # A row per family and weights as each finishes, so a timeout keeps the rows measured before it.
  timeout 540 "$CA_PYTHON" bench/run.py --device cuda --all-families --weights-set native fp8 \
    --out "$out/results-gpu-all-families.json" 2>&1 | tee "$out/run-gpu-all-families.log" \
    | sed -n '/^Every family/,$p' || echo "gpu.sh: the family table failed or timed out (see $out/run-gpu-all-families.log)"
  exit 0
fi

# a-d: sampler / KSampler, segment / full forward, scaling, stored maps (19+38, bf16, 512^2 and 1024^2).
timeout 330 "$CA_PYTHON" bench/run.py --device cuda --out "$out/results-gpu.json" 2>&1 | tee "$out/run-gpu.log" \
  | sed -n '/^ConceptAttention benchmark/,$p' || echo "gpu.sh: run.py failed or timed out (see $out/run-gpu.log)"
# Where the sampler's extra time goes (kernel time per concept-stream function), at 512^2 where it is largest.
timeout 90 "$CA_PYTHON" bench/profile_stream.py --device cuda --size 512 --concepts 4 64 \
  --out "$out/profile-gpu.json" 2>&1 | tee "$out/profile-gpu.log" | sed -n '/^Concept stream attribution/,$p' \
  || echo "gpu.sh: profile_stream.py failed or timed out (see $out/profile-gpu.log)"
# The other families at their full geometry, 512^2, K = 4 and 64: Chroma (19 + 38 blocks, ~12B, as
# Flux.1) and Flux.2 dev (8 + 48 blocks at hidden 6144, ~32B: ~64 GB of bf16 weights, so it needs an
# 80 GB card or more free than Flux.1's 60 GB; it is skipped, with a line saying so, when it does not fit).
for family in ${CA_BENCH_FAMILIES:-chroma flux2}; do
  depth=19; single=38
  [ "$family" = flux2 ] && { depth=8; single=48; }
  if [ "$family" = flux2 ] && ! "$CA_PYTHON" -c 'import torch, sys; sys.exit(torch.cuda.mem_get_info()[0] < 130 * 2**30)'; then
    echo "gpu.sh: flux2 at full geometry needs ~130 GB free (64 GB of weights, counted twice by the loader); skipped"
    continue
  fi
  timeout 150 "$CA_PYTHON" bench/run.py --device cuda --family "$family" --depth "$depth" --single "$single" \
    --sizes 512 --concepts 4 64 --rounds 5 --out "$out/results-gpu-$family.json" 2>&1 | tee "$out/run-gpu-$family.log" \
    | sed -n '/^ConceptAttention benchmark/,$p' || echo "gpu.sh: run.py --family $family failed or timed out"
done
# The activation-peak evidence: the retained block-replacement dict, with and without the proposed fix.
timeout 90 "$CA_PYTHON" bench/memory_check.py --device cuda --sizes 512 1024 --concepts 4 64 2>&1 \
  | tee "$out/memory-gpu.log" | sed -n '/^memory:/,$p' || echo "gpu.sh: memory_check.py failed or timed out (see $out/memory-gpu.log)"
