#!/usr/bin/env bash
# The test command: set up everything the tests need on a fresh Debian 12 (as root), then run them all.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step "services the machine should already run: MariaDB, RabbitMQ"
mysqladmin --protocol=socket -uroot status >/dev/null 2>&1 \
    || start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
rabbitmqctl -q status >/dev/null 2>&1 || rabbitmq-server -detached
for _ in $(seq 60); do mysqladmin --protocol=socket -uroot status >/dev/null 2>&1 && break; sleep 1; done

step "Python virtualenv (requirements.txt, every dependency pinned)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt

step "Debian packages (OpenStack Zed support services; nova-* only downloaded)"
[ -n "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ] || apt-get update -q
bash tests/support/install-packages.sh

step "Keystone, Placement, Glance, Neutron on 127.0.0.1"
bash tests/support/services.sh up all

step "fleet cache (tests/fleet: base + ctl layers; rebuilt only when their recipe changed)"
tests/fleet/fleet build >/dev/null

PYTEST=(.venv/bin/python -m pytest -p no:cacheprovider -q -ra --durations=25)
if [ $# -gt 0 ]; then
    step "pytest $*"
    exec "${PYTEST[@]}" "$@"
fi

# The fleet's tests (hosts in namespaces of their own) and the rest (the
# all-in-one on this machine, unit tests) share nothing: they run side by
# side, which halves the wall time. The fleet's session keeps
# pytest-salt-factories unloaded (it would listen on the machine's network).
NO_SF=()
for p in salt-factories salt-factories-event-listener salt-factories-factories \
         salt-factories-loader-mock salt-factories-log-server salt-factories-markers \
         salt-factories-sysinfo; do
    NO_SF+=(-p "no:$p")
done
fleet_log=$(mktemp /tmp/nova-formula-fleet-tests.XXXXXX)
step "pytest: tests/fleet in the background (log $fleet_log), the rest here"
"${PYTEST[@]}" "${NO_SF[@]}" tests/fleet >"$fleet_log" 2>&1 &
fleet_pid=$!
rest_rc=0
"${PYTEST[@]}" --ignore=tests/fleet tests || rest_rc=$?
step "pytest: waiting for tests/fleet"
fleet_rc=0
wait "$fleet_pid" || fleet_rc=$?
cat "$fleet_log"
step "pytest done: the rest rc=$rest_rc, tests/fleet rc=$fleet_rc"
[ "$rest_rc" = 0 ] && [ "$fleet_rc" = 0 ]
