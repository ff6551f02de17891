#!/usr/bin/env bash
# Prepare a real ComfyUI host and a Python environment to test this extension against.
#
#   scripts/host_env.sh VERSION        -> prints "COMFYUI_DIR<TAB>PYTHON" on its last line
#
# Where the host comes from, in order:
#   1. $COMFYUI_PATH, when it holds ComfyUI VERSION (or VERSION is "path");
#   2. the cache folder $CA_CACHE/hosts/VERSION (default ~/.cache/comfyui-concept-attention);
#   3. a git clone of the pinned release tag, where a network allows.
# Nothing of ComfyUI is ever copied into this repository.
set -euo pipefail

version=${1:?usage: host_env.sh VERSION (a row of scripts/hosts.tsv, or path for \$COMFYUI_PATH)}
cache=${CA_CACHE:-$HOME/.cache/comfyui-concept-attention}
python_bin=${CA_PYTHON:-python3.11}
command -v "$python_bin" >/dev/null || python_bin=python3
here=$(cd "$(dirname "$0")/.." && pwd)

host_version() { sed -n 's/^__version__ = "\(.*\)"/\1/p' "$1/comfyui_version.py" 2>/dev/null; }

host=""
if [ -n "${COMFYUI_PATH:-}" ] && { [ "$version" = path ] || [ "$(host_version "$COMFYUI_PATH")" = "$version" ]; }; then
  host=$COMFYUI_PATH
elif [ "$version" = path ]; then
  echo "host_env: COMFYUI_PATH is not set; point it at a ComfyUI checkout" >&2; exit 2
elif [ -f "$cache/hosts/$version/comfyui_version.py" ]; then
  host=$cache/hosts/$version
else
  echo "host_env: ComfyUI $version not in \$COMFYUI_PATH nor $cache/hosts/$version; trying a clone" >&2
  mkdir -p "$cache/hosts"
  if git clone --quiet --depth 1 --branch "v$version" https://github.com/comfyanonymous/ComfyUI "$cache/hosts/$version.tmp" 2>/dev/null; then
    mv "$cache/hosts/$version.tmp" "$cache/hosts/$version"; host=$cache/hosts/$version
  else
    rm -rf "$cache/hosts/$version.tmp"
    echo "host_env: MISSING ComfyUI $version. Set COMFYUI_PATH to a ComfyUI $version work tree," >&2
    echo "          or export one into $cache/hosts/$version (no network reached GitHub)." >&2
    exit 3
  fi
fi
actual=$(host_version "$host")

# The torch set of this release, from the pin list (one place, so a new host cannot miss its set).
torch_set=$(awk -F'\t' -v v="$actual" '$1 == v { print $2 }' "$here/scripts/hosts.tsv")
if [ -z "$torch_set" ] && [ "$version" = path ]; then
  # a user's own ComfyUI: the newest pinned host's set is the best guess
  torch_set=$(awk -F'\t' '!/^#/ && NF { last = $2 } END { print last }' "$here/scripts/hosts.tsv")
  echo "host_env: ComfyUI $actual is not pinned; using the newest pinned host's torch set ($torch_set)" >&2
fi
if [ -z "$torch_set" ]; then
  echo "host_env: ComfyUI $actual has no torch set in scripts/hosts.tsv; add a row" \
       "'$actual<TAB>torch==X torchvision==Y [torchaudio==Z]' for it" >&2
  exit 4
fi

# One virtual environment per host release: their frontend and transformers pins differ.
venv=$cache/venv-$actual
stamp=$venv/.ca-ready
want=$( (cat "$here/requirements.txt" "$here/requirements-dev.txt" "$host/requirements.txt"; echo "$torch_set") \
       | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "host_env: building $venv for ComfyUI $actual (one time)" >&2
  "$python_bin" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  # OpenCV's GUI build (opencv-python, which requirements.txt once named) and its headless build share
  # the cv2 package, so removing one breaks the other's files: a venv with the GUI build loses both
  # here, and the install below brings the headless build back alone.
  if "$venv/bin/python" -m pip show --quiet opencv-python >/dev/null 2>&1; then
    "$venv/bin/python" -m pip uninstall --quiet --disable-pip-version-check -y opencv-python \
      opencv-python-headless >&2
  fi
  # The torch set is pinned together here (and only here, for tests): a lone torchvision or
  # torchaudio pulls an unpinned torch.
  grep -v -E '^(torch|torchvision|torchaudio)$' "$host/requirements.txt" > "$venv/host-requirements.txt"
  # shellcheck disable=SC2086  # the set is several words on purpose
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $torch_set \
    -r "$venv/host-requirements.txt" -r "$here/requirements-dev.txt" >&2
  echo "$want" > "$stamp"
fi
printf '%s\t%s\n' "$host" "$venv/bin/python"
