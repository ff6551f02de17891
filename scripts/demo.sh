#!/usr/bin/env bash
# The demo: generate with the shipped demo model and write maps, masks and a contact sheet; then
# segment held-out scenes of its shapes dataset and print their masks' IoU against the ground truth.
#   scripts/demo.sh [--out demo-output] [--prompt "a green star and a red cross on a white background"]
#                   [--concepts "star, cross, background"] [--seed 3] [--scenes 6]
#                   [--pack DIR: the node pack from DIR] [--verbose: every host warning]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# the newest pinned ComfyUI (the last row of scripts/hosts.tsv) unless CA_HOST names another
newest=$(awk -F'\t' '!/^#/ && NF { last = $1 } END { print last }' "$here/scripts/hosts.tsv")
IFS=$'\t' read -r comfy python < <("$here/scripts/host_env.sh" "${CA_HOST:-$newest}" | tail -n 1)
CA_COMFYUI_DIR=$comfy exec "$python" "$here/scripts/run_demo.py" "$@"
