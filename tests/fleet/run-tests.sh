#!/usr/bin/env bash
# Run the fleet harness's own tests (tests/fleet/test_harness.py), as root, on Debian 12.
# Makes what they need first: the machine's tools (mmdebstrap, socat ...), the project's
# virtualenv (.venv, requirements.txt) and the fleet's cache (base + ctl layer; minutes
# the first time, nothing when the recipe did not change).
#
# pytest-salt-factories (in requirements.txt) registers plugins that open an event
# listener and a log server on the machine's network for the whole session: the fleet's
# tests do not use them, and this script keeps them unloaded, so running these tests binds
# nothing in the machine's network namespace.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run-tests.sh: must run as root" >&2; exit 1; }
tests/fleet/fleet build >/dev/null          # also installs the machine's tools (python3-venv ...)
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
NO_SF=()
for p in salt-factories salt-factories-event-listener salt-factories-factories \
         salt-factories-loader-mock salt-factories-log-server salt-factories-markers \
         salt-factories-sysinfo; do
    NO_SF+=(-p "no:$p")
done
exec .venv/bin/python -m pytest -p no:cacheprovider "${NO_SF[@]}" -v -rA "$@" tests/fleet
