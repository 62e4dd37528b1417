#!/usr/bin/env bash
# Install the pinned AWS SDK for JavaScript v3 clients into tests/conformance/js/node_modules.
# Idempotent: does nothing when node_modules already matches package-lock.json.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "install.sh: node and npm are needed for the JS SDK conformance tests (Node.js >= 20);" \
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
