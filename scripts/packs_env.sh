#!/usr/bin/env bash
# Prepare the third-party custom-node packs the host tests load beside this extension.
#
#   scripts/packs_env.sh        -> prints the ComfyUI-GGUF export directory on its last line (CA_GGUF_DIR)
#
# ComfyUI-GGUF (city96), whose Unet Loader (GGUF) tests/host/test_gguf.py loads quantized Flux files
# with, is exported whole at a pinned commit. Where it comes from, in order:
#   1. the cache folder $CA_CACHE/packs/ComfyUI-GGUF (default ~/.cache/comfyui-concept-attention),
#      when its stamp names the pinned commit;
#   2. a git clone of https://github.com/city96/ComfyUI-GGUF, where a network allows;
#   3. a local mirror: $CA_GGUF_MIRROR, a git directory holding the pinned commit.
# Otherwise it prints MISSING and exits 3. Nothing of that code is ever copied into this repository.
# The pack needs the gguf package at run time, which requirements-dev.txt gives the host venvs.
set -euo pipefail

commit=795e45156ece99afbc3efef911e63fcb46e6a20d  # city96/ComfyUI-GGUF: use int64 for index in dequant
url=https://github.com/city96/ComfyUI-GGUF
paths=(__init__.py nodes.py loader.py ops.py dequant.py tools/convert.py)
cache=${CA_CACHE:-$HOME/.cache/comfyui-concept-attention}
dest=$cache/packs/ComfyUI-GGUF
stamp=$dest/.ca-pack-commit

complete() {  # the export in $1 holds the files the loader imports
  local p
  for p in "${paths[@]}"; do [ -f "$1/$p" ] || return 1; done
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$commit" ] && complete "$dest"; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache/packs"
stage=$(mktemp -d "$cache/packs/.export.XXXXXX")
clone=$(mktemp -d "$cache/packs/.clone.XXXXXX")
trap 'rm -rf "$stage" "$clone"' EXIT

export_from() {  # export_from GIT_DIR: the pinned commit's whole tree into $stage
  git --git-dir="$1" cat-file -e "$commit^{commit}" 2>/dev/null || return 1
  git --git-dir="$1" archive "$commit" | tar -x -C "$stage" && complete "$stage"
}

source=""
echo "packs_env: ComfyUI-GGUF@${commit:0:7} not in $dest; trying a clone of $url" >&2
if GIT_TERMINAL_PROMPT=0 timeout 300 git clone --quiet --bare "$url" "$clone/repo.git" 2>/dev/null \
   && export_from "$clone/repo.git"; then
  source=$url
elif [ -n "${CA_GGUF_MIRROR:-}" ]; then
  echo "packs_env: no clone; exporting from the mirror \$CA_GGUF_MIRROR=$CA_GGUF_MIRROR" >&2
  rm -rf "${stage:?}"/*
  if export_from "$CA_GGUF_MIRROR"; then
    source=$CA_GGUF_MIRROR
  else
    echo "packs_env: $CA_GGUF_MIRROR lacks commit $commit or some of its files" >&2
  fi
fi
if [ -z "$source" ]; then
  echo "packs_env: MISSING ComfyUI-GGUF (commit $commit): no network reached GitHub and no usable" >&2
  echo "           mirror. Set CA_GGUF_MIRROR to a git directory of $url that holds the" >&2
  echo "           commit, or export its tree into $dest." >&2
  exit 3
fi

echo "$commit" > "$stage/.ca-pack-commit"
echo "$source" > "$stage/.ca-pack-source"
chmod 755 "$stage"  # mktemp -d makes it private
rm -rf "$dest"
mv "$stage" "$dest"
echo "packs_env: exported ComfyUI-GGUF@${commit:0:7} from $source" >&2
echo "$dest"
