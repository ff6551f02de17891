#!/usr/bin/env bash
# Prepare the browser test tier (tests/browser) and the template builder (scripts/build_templates.py) on
# Debian: chromium from apt, playwright-core from npm.
#
#   scripts/browser_env.sh        -> prints the chromium path on its last line
#
# Idempotent: installs only what is missing (apt needs root or sudo). Never downloads a browser:
# playwright-core drives the system chromium ($CA_CHROMIUM, default /usr/bin/chromium).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
chromium=${CA_CHROMIUM:-/usr/bin/chromium}
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "browser_env: needs root (or sudo) to run: $*" >&2; return 1
  fi
}

missing=()
[ -x "$chromium" ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "browser_env: MISSING ${missing[*]}; install them (no apt-get on this machine)" >&2
    exit 3
  fi
  echo "browser_env: installing ${missing[*]} with apt-get" >&2
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
[ -x "$chromium" ] || { echo "browser_env: no chromium at $chromium" >&2; exit 3; }
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)'; then
  echo "browser_env: node $(node --version) is too old; playwright-core needs 18 or newer" >&2
  exit 3
fi

# npm ci only when the lock file changed since the last install. --ignore-scripts: nothing runs
# (and nothing is fetched) beyond unpacking the locked packages.
cd "$here"
want=$(sha1sum package-lock.json | cut -c1-12)
stamp=node_modules/.ca-lock
if [ ! -d node_modules/playwright-core ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "browser_env: npm ci (playwright-core)" >&2
  npm ci --no-audit --no-fund --ignore-scripts >&2
  echo "$want" > "$stamp"
fi
printf '%s\n' "$chromium"
