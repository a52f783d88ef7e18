#!/usr/bin/env bash
# Inside the fleet's ctl host: bring up the support layer the formula's fleet tests need.
#   1. MariaDB (bind-address: FLEET_MARIADB_BIND, default 127.0.0.1: only ctl's own
#      conductor/api reach it), RabbitMQ (every address of ctl: the computes need 5672;
#      `guest` stays loopback-only, the tests create their own user) and memcached
#      (127.0.0.1 and ctl's address), started in parallel through their init scripts;
#   2. Keystone, Placement, Glance and Neutron: the all-in-one's own
#      tests/support/services.sh (shared, not copied), bound to FTEST_LISTEN and
#      advertised at FTEST_ADVERTISE (ctl's address);
#   3. services.sh status: every API answers on ctl's address.
# fleet.py runs it as `enter ctl` with FTEST_LISTEN, FTEST_ADVERTISE, FLEET_MARIADB_BIND in
# the environment. Idempotent: what runs is left alone, what was set up is only started.
set -euo pipefail

: "${FTEST_LISTEN:?}"
export FTEST_ADVERTISE=${FTEST_ADVERTISE:-$FTEST_LISTEN}
DB_BIND=${FLEET_MARIADB_BIND:-127.0.0.1}
SUPPORT=/run/fleet/tests/support
log() { echo "support-up[$(hostname)] $(date +%T): $*"; }

# ---- configuration (files of ctl's own layer)
cnf=/etc/mysql/mariadb.conf.d/99-nova-formula-fleet.cnf
want=$(printf '# nova-formula fleet (tests/fleet/support-up.sh)\n[mysqld]\nbind-address = %s\n' "$DB_BIND")
db_restart=0
if [ "$(cat "$cnf" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" >"$cnf"
    db_restart=1
fi
mc_want="-l 127.0.0.1,$FTEST_LISTEN"
mc_restart=0
if ! grep -qx -- "$mc_want" /etc/memcached.conf; then
    sed -i "s/^-l .*/$mc_want/" /etc/memcached.conf
    grep -qx -- "$mc_want" /etc/memcached.conf || echo "$mc_want" >>/etc/memcached.conf
    mc_restart=1
fi

# ---- MariaDB, RabbitMQ, memcached in parallel
start() {  # start NAME RESTART: through the init script; output to a log, status kept
    local action=start
    [ "$2" = 1 ] && action=restart
    /etc/init.d/"$1" "$action" >"/var/log/fleet-support-$1.log" 2>&1
}
pids=()
db_up=0
mysqladmin --protocol=socket -uroot status >/dev/null 2>&1 && db_up=1
if [ "$db_up" = 0 ] || [ "$db_restart" = 1 ]; then start mariadb "$db_up" & pids+=("$!:mariadb"); fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then start rabbitmq-server 0 & pids+=("$!:rabbitmq-server"); fi
if ! pgrep -x memcached >/dev/null || [ "$mc_restart" = 1 ]; then start memcached 1 & pids+=("$!:memcached"); fi
fail=0
for p in "${pids[@]}"; do
    if ! wait "${p%%:*}"; then
        log "${p#*:} failed to start:"; tail -n 20 "/var/log/fleet-support-${p#*:}.log" >&2; fail=1
    fi
done
[ "$fail" = 0 ] || exit 1
for i in $(seq 60); do
    mysqladmin --protocol=socket -uroot status >/dev/null 2>&1 && break
    [ "$i" -lt 60 ] || { log "MariaDB does not answer"; exit 1; }
    sleep 1
done
log "MariaDB (bind $DB_BIND), RabbitMQ, memcached: up"

# ---- the shared support layer on ctl's address
FTEST_LISTEN=$FTEST_LISTEN bash "$SUPPORT/services.sh" up all
bash "$SUPPORT/services.sh" status
log "admin credentials: cloud nova-formula-admin in /etc/openstack/clouds.yaml"
