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

# Three pytest sessions side by side, sharing nothing: the rest (the
# all-in-one on this machine, unit tests) and two fleets of their own: one
# rolled out, grown and upgraded (test_fleet_1_rollout, test_fleet_2_upgrade,
# in that order), the other rolled out for the day-2 operations and then the
# harness's own tests (on a third fleet, made and removed by them). The
# sessions wait on daemons, packages and Salt's timeouts as much as on the
# CPU, so together they take little more than the longest alone. The fleet
# sessions keep pytest-salt-factories unloaded (it would listen on the
# machine's network).
NO_SF=()
for p in salt-factories salt-factories-event-listener salt-factories-factories \
         salt-factories-loader-mock salt-factories-log-server salt-factories-markers \
         salt-factories-sysinfo; do
    NO_SF+=(-p "no:$p")
done
rollout_log=$(mktemp /tmp/nova-formula-fleet-rollout-tests.XXXXXX)
day2_log=$(mktemp /tmp/nova-formula-fleet-day2-tests.XXXXXX)
step "pytest: fleet rollout + upgrade (log $rollout_log) and fleet day-2 + harness (log $day2_log) in the background, the rest here"
NF_NAME=nfroll "${PYTEST[@]}" "${NO_SF[@]}" tests/fleet/test_fleet_1_rollout.py \
    tests/fleet/test_fleet_2_upgrade.py >"$rollout_log" 2>&1 &
rollout_pid=$!
NF_NAME=nfday2 "${PYTEST[@]}" "${NO_SF[@]}" tests/fleet/test_fleet_3_day2.py \
    tests/fleet/test_harness.py >"$day2_log" 2>&1 &
day2_pid=$!
rest_rc=0
"${PYTEST[@]}" --ignore=tests/fleet tests || rest_rc=$?
step "pytest: waiting for the fleet's day-2 and harness tests"
day2_rc=0
wait "$day2_pid" || day2_rc=$?
cat "$day2_log"
step "pytest: waiting for the fleet's rollout and upgrade tests"
rollout_rc=0
wait "$rollout_pid" || rollout_rc=$?
cat "$rollout_log"
step "pytest done: the rest rc=$rest_rc, fleet day-2 + harness rc=$day2_rc, fleet rollout + upgrade rc=$rollout_rc"
[ "$rest_rc" = 0 ] && [ "$day2_rc" = 0 ] && [ "$rollout_rc" = 0 ]
