#!/usr/bin/env bash
# `npm run setup`: everything the tests and the demo need, on a fresh machine.
# Idempotent and quick once done: each step skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { # need COMMAND HINT
  command -v "$1" >/dev/null 2>&1 || { echo "setup: $1 is required: $2" >&2; exit 1; }
}

# Debian packages the scripts rely on, installed when missing and allowed to (root).
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
# nginx is the reference relay of the sidecar benchmark.
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
if (( ${#missing[@]} > 0 )); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: please install ${missing[*]}" >&2
    exit 1
  fi
fi

need node "install Node.js 20.19 or newer"
need npm "it ships with Node.js"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("setup: Node.js >= 20.19 is required, found "+process.versions.node); process.exit(1) }'

# Node packages, reinstalled only when the lock file changed.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

# The Python SDK the tests drive through the sidecar, in its own virtual environment.
python_sdk=deepgram-sdk==7.17.0
if [[ ! -x .cache/venv/bin/python || "$(cat .cache/venv/.sdk 2>/dev/null)" != "$python_sdk" ]]; then
  python3 -m venv .cache/venv
  .cache/venv/bin/pip install --quiet --disable-pip-version-check "$python_sdk"
  echo "$python_sdk" > .cache/venv/.sdk
fi

# kube-apiserver, kube-controller-manager, etcd (built with Go), kubectl and helm, into .cache/bin.
bash test/cluster/build-binaries.sh

npm run --silent build
echo "setup: done"
