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

# Three pytest sessions side by side, sharing nothing: the Nova fleet's tests
# (one fleet rolled out, upgraded and exercised in order), the harness's own
# tests (a fleet of their own) and the rest (the all-in-one on this machine,
# unit tests). They wait on daemons, packages and Salt's timeouts as much as
# on the CPU, so together they take little more than the longest alone. The
# fleet sessions keep pytest-salt-factories unloaded (it would listen on the
# machine's network).
NO_SF=()
for p in salt-factories salt-factories-event-listener salt-factories-factories \
         salt-factories-loader-mock salt-factories-log-server salt-factories-markers \
         salt-factories-sysinfo; do
    NO_SF+=(-p "no:$p")
done
nova_fleet_log=$(mktemp /tmp/nova-formula-fleet-tests.XXXXXX)
harness_log=$(mktemp /tmp/nova-formula-harness-tests.XXXXXX)
step "pytest: the Nova fleet (log $nova_fleet_log) and the fleet harness (log $harness_log) in the background, the rest here"
"${PYTEST[@]}" "${NO_SF[@]}" --ignore=tests/fleet/test_harness.py tests/fleet >"$nova_fleet_log" 2>&1 &
nova_fleet_pid=$!
"${PYTEST[@]}" "${NO_SF[@]}" tests/fleet/test_harness.py >"$harness_log" 2>&1 &
harness_pid=$!
rest_rc=0
"${PYTEST[@]}" --ignore=tests/fleet tests || rest_rc=$?
step "pytest: waiting for the fleet harness's tests"
harness_rc=0
wait "$harness_pid" || harness_rc=$?
cat "$harness_log"
step "pytest: waiting for the Nova fleet's tests"
nova_fleet_rc=0
wait "$nova_fleet_pid" || nova_fleet_rc=$?
cat "$nova_fleet_log"
step "pytest done: the rest rc=$rest_rc, the fleet harness rc=$harness_rc, the Nova fleet rc=$nova_fleet_rc"
[ "$rest_rc" = 0 ] && [ "$harness_rc" = 0 ] && [ "$nova_fleet_rc" = 0 ]
