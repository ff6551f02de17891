#!/usr/bin/env bash
# Prepare the paper authors' ConceptAttention code that tests/host/test_reference.py,
# tests/host/test_reference_sd3.py and tests/host/test_reference_cogvideox.py compare against.
#
#   scripts/reference_env.sh        -> prints the export directory on its last line (CA_REFERENCE_DIR)
#
# Only the files those tests need are exported, at a pinned commit: the authors' Flux.1 and Flux.2
# concept-attention DiT and double blocks, the Black Forest Labs layers/math/model modules those
# import, and their SD3 and CogVideoX concept-attention transformers (built on diffusers, which
# requirements-dev.txt gives the host venvs). Where they come from, in order:
#   1. the cache folder $CA_CACHE/reference/ConceptAttention (default ~/.cache/comfyui-concept-attention),
#      when its stamp names the pinned commit;
#   2. a git clone of https://github.com/helblazer811/ConceptAttention, where a network allows;
#   3. a local mirror: $CA_REFERENCE_MIRROR, a git directory holding the pinned commit.
# Otherwise it prints MISSING and exits 3. Nothing of that code is ever copied into this repository.
set -euo pipefail

commit=db30c4dcee01184c4d3f9fc9e46477eeb4e3eef3  # helblazer811/ConceptAttention: Flux.2 concept attention
url=https://github.com/helblazer811/ConceptAttention
paths=(
  concept_attention/flux/dit.py
  concept_attention/flux/dit_block.py
  concept_attention/flux/dit_block_single.py
  concept_attention/flux/flux/src/flux/math.py
  concept_attention/flux/flux/src/flux/modules/layers.py
  concept_attention/flux2/dit.py
  concept_attention/flux2/dit_block.py
  concept_attention/flux2/flux2/src/flux2/model.py
  concept_attention/sd3/dit_block.py
  concept_attention/cogvideox/dit.py
  concept_attention/cogvideox/dit_block.py
)
cache=${CA_CACHE:-$HOME/.cache/comfyui-concept-attention}
dest=$cache/reference/ConceptAttention
stamp=$dest/.ca-reference-commit

complete() {  # the export in $1 holds every file
  local p
  for p in "${paths[@]}"; do [ -f "$1/$p" ] || return 1; done
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$commit" ] && complete "$dest"; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache/reference"
stage=$(mktemp -d "$cache/reference/.export.XXXXXX")
clone=$(mktemp -d "$cache/reference/.clone.XXXXXX")
trap 'rm -rf "$stage" "$clone"' EXIT

export_from() {  # export_from GIT_DIR: the pinned files of the commit into $stage
  git --git-dir="$1" cat-file -e "$commit^{commit}" 2>/dev/null || return 1
  git --git-dir="$1" archive "$commit" -- "${paths[@]}" | tar -x -C "$stage" && complete "$stage"
}

source=""
echo "reference_env: ConceptAttention@${commit:0:7} not in $dest; trying a clone of $url" >&2
if GIT_TERMINAL_PROMPT=0 timeout 300 git clone --quiet --bare "$url" "$clone/repo.git" 2>/dev/null \
   && export_from "$clone/repo.git"; then
  source=$url
elif [ -n "${CA_REFERENCE_MIRROR:-}" ]; then
  echo "reference_env: no clone; exporting from the mirror \$CA_REFERENCE_MIRROR=$CA_REFERENCE_MIRROR" >&2
  rm -rf "${stage:?}"/*
  if export_from "$CA_REFERENCE_MIRROR"; then
    source=$CA_REFERENCE_MIRROR
  else
    echo "reference_env: $CA_REFERENCE_MIRROR lacks commit $commit or some of its files" >&2
  fi
fi
if [ -z "$source" ]; then
  echo "reference_env: MISSING the authors' ConceptAttention code (commit $commit): no network reached" >&2
  echo "               GitHub and no usable mirror. Set CA_REFERENCE_MIRROR to a git directory of" >&2
  echo "               $url that holds the commit, or export its files into $dest." >&2
  exit 3
fi

echo "$commit" > "$stage/.ca-reference-commit"
echo "$source" > "$stage/.ca-reference-source"
chmod 755 "$stage"  # mktemp -d makes it private
rm -rf "$dest"
mv "$stage" "$dest"
echo "reference_env: exported ${#paths[@]} files of ConceptAttention@${commit:0:7} from $source" >&2
echo "$dest"
