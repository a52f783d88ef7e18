#!/usr/bin/env bash
# All-in-one Nova on this machine, deployed by the nova formula from pillar.
#
#   aio.sh [up]        set up (venv, packages, Keystone/Placement/Glance/Neutron), apply
#                      the formula masterless (salt-call --local state.apply nova) with
#                      an all-in-one pillar made from pillar.example, boot a test server,
#                      print a summary. Safe to run again (the apply then changes nothing).
#   aio.sh prepare     only the set-up phases of `up` (no formula apply)
#   aio.sh apply [--sls NAME] [ARGS]  only salt-call --local state.apply nova (or NAME)
#                      ARGS with the AIO minion config (e.g. `aio.sh apply test=True`);
#                      JSON result in $STATE/aio/last-apply.json, a summary line on stdout
#   aio.sh check       services up, hypervisor listed, a server boots to ACTIVE
#   aio.sh down        stop the nova daemons and the support services
#   aio.sh reset-nova  remove what the deploy made: nova-* packages (purged), /etc/nova,
#                      /var/lib/nova, /var/log/nova, the nova databases and DB users,
#                      Keystone user/service/endpoints, Placement providers, RabbitMQ
#                      user/vhost, sysctl.conf lines; keeps the support services up
#                      (--keep-packages: purge everything but the packages' install)
#   aio.sh reset       reset-nova, plus the packages the nova install pulled in, plus
#                      services.sh reset: the next `up` starts from clean
#
# Root only; Debian 12. Secrets live in root-only files under $STATE and never reach
# a command line. See docs/all-in-one.md.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "aio.sh: must run as root" >&2
    exit 1
fi

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
STATE=${FTEST_STATE_DIR:-/var/lib/nova-formula-tests}
export FTEST_STATE_DIR=$STATE
AIO=$STATE/aio
HELPER=(/usr/bin/python3 "$HERE/aio_helper.py")
VENV=$REPO/.venv
NOVA_INITS=(nova-api nova-api-metadata nova-novncproxy nova-scheduler nova-conductor nova-compute)
NOVA_PKGS=(nova-api nova-consoleproxy nova-scheduler nova-conductor nova-compute nova-compute-kvm
           nova-compute-qemu nova-compute-ironic nova-compute-lxc nova-common python3-nova)
export DEBIAN_FRONTEND=noninteractive
T0=$(date +%s.%N)
PHASE=0
PHASES=6

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
phase() {  # phase TITLE: progress line
    PHASE=$((PHASE + 1)); PHASE_T=$(now)
    printf '[aio %d/%d] %s ...\n' "$PHASE" "$PHASES" "$1"
}
phase_done() { printf '[aio %d/%d]   done in %s s%s\n' "$PHASE" "$PHASES" "$(secs "$PHASE_T")" "${1:+: $1}"; }
die() { echo "aio.sh: ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- policy-rc.d
# Debian's maintainer scripts start a daemon right after installing it (invoke-rc.d).
# Nova's would start half-configured (shipped nova.conf, no database), log errors
# and race the formula. A policy-rc.d that exits 101 stops that; the formula then
# starts each service itself, in the guide's order, once configured. Salt starts
# services through `service`/the init script, which policy-rc.d does not affect.
# One that was already there (Docker images ship one) is left alone; ours is
# removed when this script exits.
POLICY=/usr/sbin/policy-rc.d
OUR_POLICY=
hold_daemons() {
    [ -e "$POLICY" ] && return
    printf '#!/bin/sh\n# added by nova-formula tests/support/aio.sh while it runs\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    OUR_POLICY=1
}
release_daemons() { if [ -n "$OUR_POLICY" ]; then rm -f "$POLICY"; OUR_POLICY=; fi; }
trap release_daemons EXIT

# ---------------------------------------------------------------- setup
setup_venv() {
    local stamp=$VENV/.requirements.sha256 sum
    sum=$(sha256sum "$REPO/requirements.txt" | cut -d' ' -f1)
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
        # a line per 20 packages (a fresh machine takes a minute or two here)
        "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off \
            -r "$REPO/requirements.txt" 2>&1 | pip_progress "$(grep -c '==' "$REPO/requirements.txt")" || true
        "$VENV/bin/pip" check >/dev/null 2>&1 || "$VENV/bin/pip" install -q -r "$REPO/requirements.txt"
        echo "$sum" >"$stamp"
    fi
}

pip_progress() {  # pip's output -> a line per 20 packages of TOTAL, and its errors
    awk -v total="$1" '
        /^(Collecting|Requirement already satisfied)/ { n++; if (n % 20 == 0) printf "    pip: %d/%d packages\n", n, total; fflush() }
        /^(ERROR|error)/ { print; fflush() }'
}

packages_progress() {  # apt's output -> a line per 25 packages set up, and the total
    awk '/newly installed/ { total = $3 + 0; printf "    apt: %d packages to install\n", total; fflush() }
         /^Setting up/ { n++; if (n % 25 == 0) { printf "    apt: %d/%d set up\n", n, total; fflush() } }
         { print > logfile }' logfile="$1"
}

base_services() {  # MariaDB and RabbitMQ: the machine's, started if stopped
    mysqladmin --protocol=socket -uroot status >/dev/null 2>&1 \
        || start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    rabbitmqctl -q status >/dev/null 2>&1 || rabbitmq-server -detached
    local _
    for _ in $(seq 60); do mysqladmin --protocol=socket -uroot status >/dev/null 2>&1 && return; sleep 1; done
    die "MariaDB does not answer on /run/mysqld/mysqld.sock"
}

remember_host_files() {  # the packages before the deploy: `reset` removes what it added
    install -d -m 0700 "$AIO" "$AIO/orig"
    [ -e "$AIO/orig/dpkg-selections" ] || dpkg-query -W -f='${Package}\n' | sort >"$AIO/orig/dpkg-selections"
}

# ---------------------------------------------------------------- apply
salt_apply() {  # salt_apply [--sls NAME] [ARGS...]: state.apply nova; JSON kept root-only
    local out=$AIO/last-apply.json rc=0 sls=nova
    if [ "${1:-}" = --sls ]; then sls=$2; shift 2; fi
    install -m 0600 /dev/null "$out"
    "$VENV/bin/salt-call" --local -c "$AIO/conf" --out=json --retcode-passthrough -l quiet \
        --log-file-level=info state.apply "$sls" "$@" >"$out" 2>"$AIO/last-apply.err" &
    local pid=$!
    # progress on stderr: each state that took over 2 s, as it completes
    # (Salt's info log names states, never their arguments)
    tail -n 0 --pid="$pid" -F "$AIO/minion.log" 2>/dev/null | awk '
        /Completed state \[.*duration_in_ms=/ {
            name = $0; sub(/.*Completed state \[/, "", name); sub(/\] at time.*/, "", name)
            ms = $0; sub(/.*duration_in_ms=/, "", ms); sub(/\).*/, "", ms)
            if (ms + 0 > 2000) { printf "    %s: %.1f s\n", name, ms / 1000 > "/dev/stderr"; fflush("/dev/stderr") } }' || true
    wait "$pid" || rc=$?
    "${HELPER[@]}" summary "$out" || { tail -n 20 "$AIO/last-apply.err" >&2; return 1; }
    [ "$rc" = 0 ] || { tail -n 20 "$AIO/last-apply.err" >&2; die "salt-call exited $rc"; }
}

cmd_prepare() {  # phases 1-4: everything but the formula's apply
    phase "Python virtualenv ($VENV, requirements.txt)"
    setup_venv
    phase_done

    phase "Debian packages (OpenStack Zed; nova-* only downloaded)"
    base_services
    bash "$HERE/install-packages.sh" 2>&1 | packages_progress "$STATE.install.log" \
        || { tail -n 30 "$STATE.install.log" >&2; die "install-packages.sh failed"; }
    rm -f "$STATE.install.log"
    phase_done

    phase "Keystone, Placement, Glance, Neutron on 127.0.0.1"
    bash "$HERE/services.sh" up all | sed 's/^/    /'
    phase_done

    phase "all-in-one pillar (pillar.example + overrides) and RabbitMQ user"
    remember_host_files
    "${HELPER[@]}" pillar
    "${HELPER[@]}" rabbit
    phase_done "$AIO/pillar/nova.sls"
}

cmd_up() {
    local line
    cmd_prepare

    phase "salt-call --local state.apply nova"
    line=$(salt_apply) || { echo "$line"; die "state.apply nova failed (see $AIO/last-apply.json)"; }
    phase_done "$line"

    phase "check: services, hypervisor, a server to ACTIVE"
    SUMMARY=$("${HELPER[@]}" check --boot) || die "check failed"
    phase_done

    echo
    echo "== Nova all-in-one is up ($(secs "$T0") s in all)"
    echo "   state.apply nova: $line"
    printf '%s\n' "$SUMMARY" | sed 's/^/   /'
    echo "   admin: OS_CLOUD=nova-formula-admin openstack server list"
}

# ---------------------------------------------------------------- down / reset
stop_nova() {  # through the init scripts: by pidfile, never by name
    local s
    for s in "${NOVA_INITS[@]}"; do
        [ -x "/etc/init.d/$s" ] && "/etc/init.d/$s" stop >/dev/null 2>&1 || true
    done
}

cmd_down() {
    stop_nova
    echo "aio.sh: stopped ${NOVA_INITS[*]}"
    bash "$HERE/services.sh" down
}

purge_packages() {  # purge_packages [all]: nova-* leftovers; with "all" also what they pulled in
    local installed=() p extra=()
    for p in "${NOVA_PKGS[@]}"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -q . && installed+=("$p")
    done
    if [ "${#installed[@]}" -gt 0 ]; then
        apt-get purge -y -q -o DPkg::Lock::Timeout=600 "${installed[@]}" >/dev/null
    fi
    if [ "${1:-}" = all ] && [ -e "$AIO/orig/dpkg-selections" ]; then
        mapfile -t extra < <(comm -13 "$AIO/orig/dpkg-selections" \
                             <(dpkg-query -W -f='${db:Status-Status} ${Package}\n' \
                               | awk '$1 == "installed" {print $2}' | sort))
        if [ "${#extra[@]}" -gt 0 ]; then
            apt-get purge -y -q -o DPkg::Lock::Timeout=600 "${extra[@]}" >/dev/null
        fi
    fi
}

cmd_reset_nova() {  # reset-nova [--keep-packages] [all]
    local keep=${1:-} line
    # What the formula made goes with the formula's own nova.clean (services,
    # packages, config, sysctl lines, databases, DB users, Keystone records);
    # with --keep-packages the packages stay and their shipped config returns.
    local failed=
    if "${HELPER[@]}" pillar --clean ${keep:+--keep-packages}; then
        line=$(salt_apply --sls nova.clean) || failed=1
        echo "aio.sh: nova.clean: $line"
    fi
    # What the deploy made beside the formula: Placement resource providers
    # (nova-compute's: a redeployed compute of the same name would clash with
    # them), the RabbitMQ user and vhost (the operator's). Even after a failed
    # clean, so a next deploy can work.
    "${HELPER[@]}" purge
    [ -z "$failed" ] || die "state.apply nova.clean failed (see $AIO/last-apply.json)"
    if [ "$keep" = --keep-packages ]; then
        # back to the packages' shipped config, as if freshly installed
        hold_daemons
        apt-get install -y -q --reinstall -o DPkg::Lock::Timeout=600 \
            -o Dpkg::Options::=--force-confmiss nova-common nova-consoleproxy nova-compute-kvm >/dev/null
        release_daemons
        # nova.clean disabled them; a fresh install has them enabled (update-rc.d:
        # Salt's own enable needs insserv, which this container cannot run)
        for s in "${NOVA_INITS[@]}"; do update-rc.d "$s" enable >/dev/null 2>&1 || true; done
        rm -rf /var/lib/nova/instances /var/lib/nova/tmp /var/log/nova/*
    else
        purge_packages "${2:-}"
    fi
    rm -rf "$AIO/conf" "$AIO/pillar" "$AIO/cache" "$AIO/pki" "$AIO/sock" "$AIO"/last-apply.*
    rm -f "$STATE"/aio-*.password
    echo "aio.sh: nova removed (packages ${keep:+kept}${keep:-purged}, databases, Keystone/Placement/RabbitMQ records)"
}

cmd_reset() {
    cmd_reset_nova "" all
    rm -rf "$AIO"
    bash "$HERE/services.sh" reset
}

# sourced with AIO_FUNCTIONS_ONLY=1 (tests of the progress filters): functions only
if [ "${AIO_FUNCTIONS_ONLY:-}" = 1 ]; then return 0; fi

case "${1:-up}" in
    up) cmd_up ;;
    prepare) PHASES=4; cmd_prepare ;;
    apply) shift; [ -e "$AIO/conf/minion" ] || die "no AIO minion config: run aio.sh up first"
           salt_apply "$@" ;;
    check) "${HELPER[@]}" check --boot ;;
    down) cmd_down ;;
    reset-nova) shift; cmd_reset_nova "$@" ;;
    reset) cmd_reset ;;
    *) echo "usage: $0 [up|prepare|apply [--sls NAME] [ARGS]|check|down|reset-nova [--keep-packages]|reset]" >&2; exit 2 ;;
esac
