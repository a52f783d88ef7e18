#!/usr/bin/env bash
# Bring up, on 127.0.0.1, the OpenStack services Nova needs but does not own, for the
# formula's end-to-end tests: Keystone (5000), Placement (8778), Glance (9292) and a
# Neutron API (9696), on the running MariaDB and RabbitMQ. See README.md beside it.
# The fleet's controller (tests/fleet) runs it with FTEST_LISTEN / FTEST_ADVERTISE set
# to its own address; unset, both are 127.0.0.1 (the all-in-one).
#
#   services.sh up [keystone|placement|glance|neutron|all]   (default: all)
#   services.sh down        stop them (init scripts)
#   services.sh reset       down + drop the ftest_ databases, RabbitMQ user, keystone
#                           state and generated config: the next `up` starts clean
#   services.sh status      one line per service
#
# Needs root and the packages from install-packages.sh. Secrets live in root-only
# files under $STATE; none is ever passed on a command line.
#
# Environment:
#   FTEST_LISTEN     address the APIs bind (default 127.0.0.1)
#   FTEST_ADVERTISE  address in the Keystone endpoints, clouds.yaml and the checks
#                    (default: FTEST_LISTEN)
# The databases and RabbitMQ stay on this host's 127.0.0.1.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "services.sh: must run as root" >&2
    exit 1
fi

HERE=$(cd "$(dirname "$0")" && pwd)
STATE=${FTEST_STATE_DIR:-/var/lib/nova-formula-tests}
export FTEST_STATE_DIR=$STATE
CLOUDS_YAML=/etc/openstack/clouds.yaml
SETUP_LOG=$STATE/setup.log
HELPER=(/usr/bin/python3 "$HERE/ftest_helper.py")
WAIT=${FTEST_WAIT_SECONDS:-120}
LISTEN=${FTEST_LISTEN:-127.0.0.1}
ADVERTISE=${FTEST_ADVERTISE:-$LISTEN}
export FTEST_ADVERTISE=$ADVERTISE   # ftest_helper.py: Keystone URL in clouds.yaml
KS=http://$ADVERTISE:5000
ALL=(keystone placement glance neutron)

# Package config files this script edits; the originals are kept under $STATE/orig
# and put back by `reset`.
CONFFILES=(/etc/keystone/keystone.conf /etc/keystone/keystone-uwsgi.ini
           /etc/placement/placement.conf /etc/placement/placement-api-uwsgi.ini
           /etc/glance/glance-api.conf
           /etc/neutron/neutron.conf /etc/neutron/neutron-api-uwsgi.ini
           /etc/neutron/plugins/ml2/ml2_conf.ini)
# Files this script creates outright (removed by `reset`).
GENERATED=(/etc/default/keystone /etc/default/placement-api /etc/default/glance-api
           /etc/default/neutron-server)

log() { echo "services.sh: $*"; }
die() { echo "services.sh: ERROR: $*" >&2; exit 1; }

init_state() {
    install -d -m 0700 "$STATE" "$STATE/orig"
    [ -e "$SETUP_LOG" ] || install -m 0600 /dev/null "$SETUP_LOG"
}

backup() {  # keep the package's original once
    local f=$1 b="$STATE/orig/${1//\//_}"
    [ -e "$b" ] || cp -p "$f" "$b"
}

# ini_merge FILE <<EOF ... EOF: merge ini text from stdin into FILE, in place,
# keeping comments. The text may hold secrets: it never reaches an argv.
ini_merge() {
    backup "$1"
    crudini --merge "$1"
}

pw() { "${HELPER[@]}" secret "$1"; local v; v=$(<"$STATE/$1.password"); printf '%s' "$v"; }

as_user() {  # as_user USER COMMAND: so logs the tool writes belong to the daemon's user
    # Output (alembic chatter, eventlet noise at exit) goes to a root-only log.
    echo "== $(date +%T) as $1: $2" >>"$SETUP_LOG"
    su -s /bin/sh -c "$2" "$1" >>"$SETUP_LOG" 2>&1 \
        || die "as user $1: '$2' failed; see $SETUP_LOG"
}

answers() {  # answers URL: HTTP status below 500 within 2 s
    local code
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null) || return 1
    [ "$code" != 000 ] && [ "$code" -lt 500 ]
}

wait_for() {  # wait_for URL SERVICE LOG
    "${HELPER[@]}" wait "$1" "$WAIT" "$2" "$3"
}

done_marker() { [ -e "$STATE/$1.done" ]; }
mark_done() { : >"$STATE/$1.done"; }

authtoken() {  # authtoken USER: the [keystone_authtoken] section for a service user
    cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $KS
auth_url = $KS
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $1
password = $(pw "keystone-$1")
region_name = RegionOne
service_token_roles_required = true
EOF
}

bind_listen() {  # bind_listen NAME PORT INI: the init script binds to all addresses
    # by default; /etc/default/NAME is read after it builds its arguments.
    local what="loopback only"
    [ "$LISTEN" = 127.0.0.1 ] || what="$LISTEN only"
    cat >"/etc/default/$1" <<EOF
# Written by nova-formula tests/support/services.sh: listen on $what.
DAEMON_ARGS="--http-socket $LISTEN:$2 --ini $3"
EOF
}

uwsgi_tune() {  # uwsgi_tune INI [PROCESSES]: two workers and no keep-alive by
    # default, stable on 2 cores (see notes/e2e.md)
    ini_merge "$1" <<EOF
[uwsgi]
processes = ${2:-2}
threads = 8
add-header = Connection: close
EOF
}

start_and_wait() {  # start_and_wait INIT URL SERVICE LOG RESTART(0|1)
    if [ "$5" = 1 ]; then
        /etc/init.d/"$1" stop >/dev/null 2>&1 || true
    fi
    /etc/init.d/"$1" start >/dev/null || die "/etc/init.d/$1 start failed; see $4"
    wait_for "$2" "$3" "$4"
}

# resume NAME INIT URL LOG [RESTART]: a service set up before is "up" when it
# answers (and no restart is due), else (re)started, then warmed up by
# warm_NAME if there is one; RESUMED=1 then. RESUMED=0: never set up.
# (Not a return status: `resume && ...` would turn off errexit inside it.)
resume() {
    local name=$1 init=$2 url=$3 logf=$4 restart=${5:-0}
    RESUMED=0
    done_marker "$name" || return 0
    if [ "$restart" = 0 ] && answers "$url"; then
        log "$name: up"; RESUMED=1; return 0
    fi
    [ "$name" = keystone ] || need_keystone  # (sets RESUMED for keystone)
    start_and_wait "$init" "$url" "$name" "$logf" "$restart"
    if declare -F "warm_$name" >/dev/null; then "warm_$name"; fi
    log "$name: started"
    RESUMED=1
}

# ---------------------------------------------------------------- keystone
# keystone_cache: Keystone caches through memcached (tokens, assignments,
# catalog), as every production Keystone does (kolla, openstack-ansible,
# puppet-keystone and the charms all set it up): without it each API request
# costs ~45 ms of token validation on this machine, with it ~13 ms. Returns 1
# when it changed keystone.conf (Keystone then needs a restart).
keystone_cache() {
    /etc/init.d/memcached status >/dev/null 2>&1 || /etc/init.d/memcached start >/dev/null \
        || die "/etc/init.d/memcached start failed"
    [ "$(crudini --get /etc/keystone/keystone.conf cache backend 2>/dev/null)" \
        != oslo_cache.memcache_pool ] || return 0
    ini_merge /etc/keystone/keystone.conf <<EOF
[cache]
enabled = true
backend = oslo_cache.memcache_pool
memcache_servers = 127.0.0.1:11211
EOF
    return 1
}

up_keystone() {
    local restart=0
    keystone_cache || restart=1
    resume keystone keystone "$KS/v3" /var/log/keystone/keystone.log "$restart"
    [ "$RESUMED" = 0 ] || return 0
    log "keystone: setting up"
    "${HELPER[@]}" db keystone
    ini_merge /etc/keystone/keystone.conf <<EOF
[database]
connection = mysql+pymysql://ftest_keystone:$(pw db-keystone)@127.0.0.1/ftest_keystone
[token]
provider = fernet
EOF
    uwsgi_tune /etc/keystone/keystone-uwsgi.ini
    bind_listen keystone 5000 /etc/keystone/keystone-uwsgi.ini
    install -d -o keystone -g keystone -m 0700 /etc/keystone/fernet-keys /etc/keystone/credential-keys
    as_user keystone "keystone-manage db_sync"
    as_user keystone "keystone-manage fernet_setup --keystone-user keystone --keystone-group keystone"
    as_user keystone "keystone-manage credential_setup --keystone-user keystone --keystone-group keystone"
    # bootstrap reads the admin password from the environment, not from argv.
    OS_BOOTSTRAP_PASSWORD=$(pw keystone-admin) as_user keystone \
        "keystone-manage bootstrap --bootstrap-username admin --bootstrap-project-name admin \
         --bootstrap-role-name admin --bootstrap-service-name keystone \
         --bootstrap-region-id RegionOne --bootstrap-admin-url $KS/v3 \
         --bootstrap-internal-url $KS/v3 --bootstrap-public-url $KS/v3"
    "${HELPER[@]}" clouds-yaml
    start_and_wait keystone "$KS/v3" keystone /var/log/keystone/keystone.log 1
    "${HELPER[@]}" keystone-base
    mark_done keystone
    log "keystone: up (cloud nova-formula-admin in $CLOUDS_YAML)"
}

need_keystone() {
    done_marker keystone && answers "$KS/v3" || up_keystone
}

# ---------------------------------------------------------------- placement
up_placement() {
    local url=http://$ADVERTISE:8778 logf=/var/log/placement/placement-api.log
    resume placement placement-api "$url/" "$logf"
    [ "$RESUMED" = 0 ] || return 0
    need_keystone
    log "placement: setting up"
    "${HELPER[@]}" db placement
    "${HELPER[@]}" keystone-service placement placement "$url"
    ini_merge /etc/placement/placement.conf <<EOF
[placement_database]
connection = mysql+pymysql://ftest_placement:$(pw db-placement)@127.0.0.1/ftest_placement
[api]
auth_strategy = keystone
$(authtoken placement)
EOF
    uwsgi_tune /etc/placement/placement-api-uwsgi.ini
    bind_listen placement-api 8778 /etc/placement/placement-api-uwsgi.ini
    as_user placement "placement-manage db sync"
    start_and_wait placement-api "$url/" placement "$logf" 1
    mark_done placement
    log "placement: up"
}

# ---------------------------------------------------------------- glance
up_glance() {
    local url=http://$ADVERTISE:9292 logf=/var/log/glance/glance-api.log
    resume glance glance-api "$url/" "$logf"
    [ "$RESUMED" = 0 ] || return 0
    need_keystone
    log "glance: setting up"
    "${HELPER[@]}" db glance
    "${HELPER[@]}" keystone-service glance image "$url"
    ini_merge /etc/glance/glance-api.conf <<EOF
[DEFAULT]
bind_host = $LISTEN
bind_port = 9292
workers = 2
enabled_backends = fs:file
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = /var/lib/glance/images/
[database]
connection = mysql+pymysql://ftest_glance:$(pw db-glance)@127.0.0.1/ftest_glance
[paste_deploy]
flavor = keystone
$(authtoken glance)
EOF
    install -d -o glance -g glance -m 0750 /var/lib/glance/images
    as_user glance "glance-manage db_sync"
    start_and_wait glance-api "$url/" glance "$logf" 1
    "${HELPER[@]}" image cirros-fake
    mark_done glance
    log "glance: up (image cirros-fake)"
}

# ---------------------------------------------------------------- neutron
rabbit_user() {  # user + vhost ftest_neutron; the password goes to rabbitmqctl on stdin
    local fresh=0
    command -v rabbitmqctl >/dev/null || die "rabbitmqctl not found: neutron needs the local RabbitMQ"
    rabbitmqctl -q status >/dev/null 2>&1 || die "RabbitMQ is not running (rabbitmqctl status failed)"
    [ -e "$STATE/rabbitmq-ftest_neutron.password" ] || fresh=1
    pw rabbitmq-ftest_neutron >/dev/null
    if rabbitmqctl -q list_users | awk '{print $1}' | grep -qx ftest_neutron; then
        if [ "$fresh" = 1 ]; then rabbitmqctl -q delete_user ftest_neutron >/dev/null; else fresh=keep; fi
    fi
    if [ "$fresh" != keep ]; then
        pw rabbitmq-ftest_neutron | rabbitmqctl -q add_user ftest_neutron >/dev/null
    fi
    rabbitmqctl -q list_vhosts | grep -qx ftest_neutron || rabbitmqctl -q add_vhost ftest_neutron >/dev/null
    rabbitmqctl -q set_permissions -p ftest_neutron ftest_neutron '.*' '.*' '.*' >/dev/null
}

warm_neutron() { "${HELPER[@]}" network-warmup; }

up_neutron() {
    local url=http://$ADVERTISE:9696 logf=/var/log/neutron/neutron-api.log
    local ini=/etc/neutron/neutron-api-uwsgi.ini restart=0
    # One worker: Zed's neutron answers 500 ("Port has no attribute
    # port_forwardings") to a worker's first port query when no network query
    # came before it in that process; with one worker the warm-up reaches it.
    # A set-up from before this rule is re-tuned and restarted.
    if done_marker neutron && [ "$(crudini --get "$ini" uwsgi processes 2>/dev/null)" != 1 ]; then
        uwsgi_tune "$ini" 1
        restart=1
    fi
    resume neutron neutron-api "$url/" "$logf" "$restart"
    [ "$RESUMED" = 0 ] || return 0
    need_keystone
    log "neutron: setting up"
    "${HELPER[@]}" db neutron
    rabbit_user
    "${HELPER[@]}" keystone-service neutron network "$url"
    ini_merge /etc/neutron/neutron.conf <<EOF
[DEFAULT]
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = rabbit://ftest_neutron:$(pw rabbitmq-ftest_neutron)@127.0.0.1:5672/ftest_neutron
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
[database]
connection = mysql+pymysql://ftest_neutron:$(pw db-neutron)@127.0.0.1/ftest_neutron
$(authtoken neutron)
EOF
    ini_merge /etc/neutron/plugins/ml2/ml2_conf.ini <<'EOF'
[ml2]
type_drivers = flat
tenant_network_types =
mechanism_drivers =
extension_drivers =
[ml2_type_flat]
flat_networks = *
EOF
    uwsgi_tune "$ini" 1
    bind_listen neutron-server 9696 "$ini"
    as_user neutron "neutron-db-manage --config-file /etc/neutron/neutron.conf \
        --config-file /etc/neutron/plugins/ml2/ml2_conf.ini upgrade head"
    start_and_wait neutron-api "$url/" neutron "$logf" 1
    warm_neutron
    mark_done neutron
    log "neutron: up"
}

# ---------------------------------------------------------------- down/reset/status
INITS=(neutron-api glance-api placement-api keystone)

cmd_down() {
    local s
    for s in "${INITS[@]}"; do
        [ -x /etc/init.d/$s ] || continue
        /etc/init.d/$s stop >/dev/null 2>&1 || true
    done
    log "stopped: ${INITS[*]}"
}

cmd_reset() {
    local f b
    cmd_down
    if [ -S /run/mysqld/mysqld.sock ]; then "${HELPER[@]}" dropdbs "${ALL[@]}"; fi
    if command -v rabbitmqctl >/dev/null; then
        rabbitmqctl -q delete_user ftest_neutron >/dev/null 2>&1 || true
        rabbitmqctl -q delete_vhost ftest_neutron >/dev/null 2>&1 || true
    fi
    for f in "${CONFFILES[@]}"; do
        b="$STATE/orig/${f//\//_}"
        if [ -e "$b" ]; then cp -p "$b" "$f"; fi
    done
    rm -f "${GENERATED[@]}"
    rm -rf /etc/keystone/fernet-keys /etc/keystone/credential-keys
    find /var/lib/glance/images -mindepth 1 -delete 2>/dev/null || true
    if [ -e "$CLOUDS_YAML" ]; then
        /usr/bin/python3 - "$CLOUDS_YAML" <<'EOF'
import os, sys, yaml
path = sys.argv[1]
data = yaml.safe_load(open(path)) or {}
data.get("clouds", {}).pop("nova-formula-admin", None)
if data.get("clouds"):
    with open(path, "w") as fh:
        yaml.safe_dump(data, fh, default_flow_style=False)
else:
    os.remove(path)
EOF
    fi
    rm -rf "$STATE"
    log "reset: databases dropped, config restored, $STATE removed"
}

cmd_status() {
    local rc=0 line
    for line in "keystone $KS/v3" "placement http://$ADVERTISE:8778/" \
                "glance http://$ADVERTISE:9292/" "neutron http://$ADVERTISE:9696/"; do
        set -- $line
        if answers "$2"; then echo "$1: up ($2)"; else echo "$1: down ($2)"; rc=3; fi
    done
    return $rc
}

preflight() {  # clear errors for what `up` relies on but does not own
    local t
    for t in keystone-manage placement-manage glance-manage neutron-db-manage crudini curl; do
        command -v "$t" >/dev/null || die "$t not found: run tests/support/install-packages.sh first"
    done
    [ -S /run/mysqld/mysqld.sock ] || die "MariaDB is not running (no /run/mysqld/mysqld.sock)"
}

cmd_up() {
    local what=${1:-all}
    init_state
    preflight
    case "$what" in
        keystone) up_keystone ;;
        placement) up_placement ;;
        glance) up_glance ;;
        neutron) up_neutron ;;
        all) up_keystone; up_placement; up_glance; up_neutron ;;
        *) die "unknown service '$what' (keystone|placement|glance|neutron|all)" ;;
    esac
}

case "${1:-}" in
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;
    reset) cmd_reset ;;
    status) cmd_status ;;
    *) echo "usage: $0 up [keystone|placement|glance|neutron|all] | down | reset | status" >&2; exit 2 ;;
esac
