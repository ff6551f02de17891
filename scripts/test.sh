#!/usr/bin/env bash
# The project's tests: lint, the core and research tiers, then the host and browser tiers on each
# pinned ComfyUI release.
#   scripts/test.sh            core + research + host + browser tiers on every host of scripts/hosts.tsv
#                              (ComfyUI 0.3.64, 0.8.0 and 0.33.0)
#   CA_HOSTS="0.33.0" scripts/test.sh      a subset of hosts;  extra args go to pytest
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
pinned=$(awk -F'\t' '!/^#/ && NF { printf "%s ", $1 }' scripts/hosts.tsv)
hosts=${CA_HOSTS:-$pinned}
status=0

first_host=${hosts%% *}
IFS=$'\t' read -r _ python < <(scripts/host_env.sh "$first_host" | tail -n 1)
echo "== core tier"
"$python" -m ruff check . || status=1
"$python" -m pytest -c tests/pytest.ini --rootdir tests tests/core -q "$@" || status=1
echo "== research tier"
"$python" -m pytest -c tests/pytest.ini --rootdir tests tests/research -q "$@" || status=1

# The browser tier needs Debian's chromium and playwright-core (never a downloaded browser).
scripts/browser_env.sh >/dev/null || echo "browser_env: not ready (see above); the browser tier will skip" >&2

# The paper authors' code for tests/host/test_reference*.py (cache, else a clone, else $CA_REFERENCE_MIRROR).
if reference=$(scripts/third_party_env.sh reference | tail -n 1) && [ -n "$reference" ]; then
  export CA_REFERENCE_DIR=$reference
else
  unset CA_REFERENCE_DIR
  echo "*** third_party_env: NO REFERENCE CODE (see above); the reference-equivalence tests will SKIP ***" >&2
fi

# ComfyUI-GGUF, loaded beside this extension for tests/host/test_gguf.py (cache, else a clone, else
# $CA_GGUF_MIRROR).
if gguf_pack=$(scripts/third_party_env.sh gguf | tail -n 1) && [ -n "$gguf_pack" ]; then
  export CA_GGUF_DIR=$gguf_pack
else
  unset CA_GGUF_DIR
  echo "*** third_party_env: NO ComfyUI-GGUF PACK (see above); the GGUF tests will SKIP ***" >&2
fi

for version in $hosts; do
  IFS=$'\t' read -r comfy python < <(scripts/host_env.sh "$version" | tail -n 1)
  echo "== host tier on ComfyUI $version ($comfy)"
  CA_COMFYUI_DIR=$comfy "$python" -m pytest -c tests/pytest.ini --rootdir tests tests/host -q "$@" || status=1
  echo "== browser tier on ComfyUI $version"
  CA_COMFYUI_DIR=$comfy "$python" -m pytest -c tests/pytest.ini --rootdir tests tests/browser -q "$@" || status=1
done

# Benchmarks are not tests; CI only keeps the script working (ratios come from bench/run.py).
# It runs on the last host tested: the newest, as the pin list is oldest first.
echo "== benchmark smoke (bench/run.py --quick) on ComfyUI $version"
CA_COMFYUI_DIR=$comfy "$python" bench/run.py --quick --out bench/results-quick.json > /dev/null || status=1
exit $status
