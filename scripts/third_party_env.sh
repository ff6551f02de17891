#!/usr/bin/env bash
# Export third-party code the tests compare against or load, each at a pinned commit.
#
#   scripts/third_party_env.sh reference   -> prints the export directory on its last line (CA_REFERENCE_DIR)
#   scripts/third_party_env.sh gguf        -> prints the export directory on its last line (CA_GGUF_DIR)
#
# reference: the paper authors' ConceptAttention code that tests/host/test_reference.py,
#   tests/host/test_reference_sd3.py and tests/host/test_reference_cogvideox.py compare against. Only
#   the files those tests need are exported: the authors' Flux.1 and Flux.2 concept-attention DiT and
#   double blocks, the Black Forest Labs layers/math/model modules those import, and their SD3 and
#   CogVideoX concept-attention transformers (built on diffusers, which requirements-dev.txt gives the
#   host venvs).
# gguf: city96's ComfyUI-GGUF, whose Unet Loader (GGUF) tests/host/test_gguf.py loads quantized Flux
#   files with, beside this extension; exported whole. It needs the gguf package at run time, which
#   requirements-dev.txt gives the host venvs.
#
# Where each comes from, in order:
#   1. its cache folder under $CA_CACHE (default ~/.cache/comfyui-concept-attention), when the folder's
#      stamp names the pinned commit;
#   2. a git clone of its GitHub repository, where a network allows;
#   3. a local mirror: a git directory holding the pinned commit, named by CA_REFERENCE_MIRROR or
#      CA_GGUF_MIRROR.
# Otherwise it prints MISSING and exits 3. Nothing of that code is ever copied into this repository.
set -euo pipefail

name=${1:-}
cache=${CA_CACHE:-$HOME/.cache/comfyui-concept-attention}
case "$name" in
  reference)
    what="the paper authors' ConceptAttention code"
    commit=db30c4dcee01184c4d3f9fc9e46477eeb4e3eef3  # helblazer811/ConceptAttention: Flux.2 concept attention
    url=https://github.com/helblazer811/ConceptAttention
    mirror_var=CA_REFERENCE_MIRROR
    parent=$cache/reference
    dest=$parent/ConceptAttention
    stamp_name=.ca-reference-commit
    source_name=.ca-reference-source
    whole_tree=0
    required=(
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
    ;;
  gguf)
    what="ComfyUI-GGUF"
    commit=795e45156ece99afbc3efef911e63fcb46e6a20d  # city96/ComfyUI-GGUF: use int64 for index in dequant
    url=https://github.com/city96/ComfyUI-GGUF
    mirror_var=CA_GGUF_MIRROR
    parent=$cache/packs
    dest=$parent/ComfyUI-GGUF
    stamp_name=.ca-pack-commit
    source_name=.ca-pack-source
    whole_tree=1
    required=(__init__.py nodes.py loader.py ops.py dequant.py tools/convert.py)  # what the loader imports
    ;;
  *)
    echo "usage: scripts/third_party_env.sh reference|gguf" >&2
    exit 2
    ;;
esac
log="third_party_env $name:"
stamp=$dest/$stamp_name

complete() {  # the export in $1 holds every required file
  local p
  for p in "${required[@]}"; do [ -f "$1/$p" ] || return 1; done
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$commit" ] && complete "$dest"; then
  echo "$dest"
  exit 0
fi

mkdir -p "$parent"
stage=$(mktemp -d "$parent/.export.XXXXXX")
clone=$(mktemp -d "$parent/.clone.XXXXXX")
trap 'rm -rf "$stage" "$clone"' EXIT

export_from() {  # export_from GIT_DIR: the pinned commit's tree (or its required files) into $stage
  git --git-dir="$1" cat-file -e "$commit^{commit}" 2>/dev/null || return 1
  if [ "$whole_tree" = 1 ]; then
    git --git-dir="$1" archive "$commit" | tar -x -C "$stage" && complete "$stage"
  else
    git --git-dir="$1" archive "$commit" -- "${required[@]}" | tar -x -C "$stage" && complete "$stage"
  fi
}

mirror=${!mirror_var:-}
source=""
echo "$log ${url##*/}@${commit:0:7} not in $dest; trying a clone of $url" >&2
if GIT_TERMINAL_PROMPT=0 timeout 300 git clone --quiet --bare "$url" "$clone/repo.git" 2>/dev/null \
   && export_from "$clone/repo.git"; then
  source=$url
elif [ -n "$mirror" ]; then
  echo "$log no clone; exporting from the mirror \$$mirror_var=$mirror" >&2
  rm -rf "${stage:?}"/*
  if export_from "$mirror"; then
    source=$mirror
  else
    echo "$log $mirror lacks commit $commit or some of its files" >&2
  fi
fi
if [ -z "$source" ]; then
  echo "$log MISSING $what (commit $commit): no network reached GitHub and no usable mirror." >&2
  echo "    Set $mirror_var to a git directory of $url that holds the commit," >&2
  echo "    or export it into $dest." >&2
  exit 3
fi

echo "$commit" > "$stage/$stamp_name"
echo "$source" > "$stage/$source_name"
chmod 755 "$stage"  # mktemp -d makes it private
rm -rf "$dest"
mv "$stage" "$dest"
if [ "$whole_tree" = 1 ]; then
  echo "$log exported ${url##*/}@${commit:0:7} from $source" >&2
else
  echo "$log exported ${#required[@]} files of ${url##*/}@${commit:0:7} from $source" >&2
fi
echo "$dest"
