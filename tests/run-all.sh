#!/usr/bin/env bash
# The test command: set up everything the tests need on a fresh Debian 12 (as root), then run them all.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@" tests
