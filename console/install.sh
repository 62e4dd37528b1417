#!/usr/bin/env bash
# Install the console's pinned build and test toolchain (Vite, TypeScript, Vitest, Preact) into
# console/node_modules from package-lock.json. Idempotent: nothing to do when node_modules
# already matches the lock file. Users never need this: the built console is committed under
# src/outcrop/console/static/ and shipped in the Python package.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "install.sh: node and npm are needed to build and test the console (Node.js >= 20);" \
         "skipping the install, those tests will be skipped" >&2
    exit 0
fi

stamp=node_modules/.outcrop-package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
