#!/usr/bin/env bash
# Install (Debian 12, as root) the OpenStack Zed packages the end-to-end tests need
# besides Nova: Keystone, Placement, Glance, a Neutron API server, the client, and tools.
# The nova-* packages are only preseeded and downloaded (the formula installs them).
#
# Idempotent: when everything is installed and the nova debs are cached, it only
# re-applies the debconf preseeds (well under a second).
#
# Options: --force   run apt even if everything looks installed.
# Environment: FTEST_EXTRA_PACKAGES  more packages to install with the same preseeds.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "install-packages.sh: must run as root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=600
          -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# Installed now.
PACKAGES=(keystone placement-api glance-api neutron-server python3-openstackclient
          python3-pymysql crudini iptables iptables-persistent curl memcached)
# More to install in the same run (space-separated), e.g. the fleet's controller layer
# adds "mariadb-server rabbitmq-server memcached" (tests/fleet/build-ctl.sh).
read -r -a EXTRA_PACKAGES <<<"${FTEST_EXTRA_PACKAGES:-}"
PACKAGES+=("${EXTRA_PACKAGES[@]}")
# Downloaded only, for the formula's later install.
NOVA_PACKAGES=(nova-common nova-api nova-conductor nova-scheduler nova-compute)

# Debconf answers: every "configure this for me" question of these packages is "no",
# so the packages neither touch the database, RabbitMQ, Keystone, nor their configs
# beyond the shipped defaults. The tests' own scripts (and Nova's formula) do that.
preseed() {
    local q
    {
        for q in keystone/configure_db keystone/create-admin-tenant keystone/register-endpoint \
                 placement/configure_db placement/configure_ksat placement/ksat-create-service-user \
                 placement/configure_api-endpoint \
                 glance/configure_db glance/configure_rabbit glance/configure_ksat \
                 glance/ksat-create-service-user glance/configure_api-endpoint \
                 neutron/configure_db neutron/configure_rabbit neutron/configure_ksat \
                 neutron/ksat-create-service-user neutron/configure_nova \
                 neutron/configure_api-endpoint \
                 nova/configure_db novaapi/configure_db nova/configure_rabbit nova/configure_ksat \
                 nova/ksat-create-service-user nova/configure_api-endpoint \
                 nova/configure_neutron nova/configure_placement \
                 dbconfig-common/dbconfig-install dbconfig-common/dbconfig-reinstall \
                 dbconfig-common/dbconfig-upgrade dbconfig-common/dbconfig-remove; do
            # The owner field is the package that owns the template; debconf accepts
            # any owner for preseeding, so use the question's prefix.
            printf '%s %s boolean false\n' "${q%%/*}" "$q"
        done
        # the formula's firewall state owns the rules files; the tests only
        # apply it inside network namespaces they made
        printf 'iptables-persistent iptables-persistent/autosave_v4 boolean false\n'
        printf 'iptables-persistent iptables-persistent/autosave_v6 boolean false\n'
    } | debconf-set-selections
}

all_installed() {
    local p status
    for p in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$status" = installed ] || return 1
    done
}

nova_cached() {
    local p
    for p in "${NOVA_PACKAGES[@]}"; do
        compgen -G "/var/cache/apt/archives/${p}_*.deb" >/dev/null || return 1
    done
}

preseed

if [ "${1:-}" != --force ] && all_installed "${PACKAGES[@]}" && nova_cached; then
    echo "install-packages.sh: already installed"
    exit 0
fi

# Keep package maintainer scripts from starting daemons while installing. A
# policy-rc.d that was already there (e.g. Docker images ship one) is left alone;
# one we add is removed afterwards: the test scripts start daemons through
# /etc/init.d directly, which policy-rc.d does not affect.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# added by nova-formula tests/support/install-packages.sh\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    ADDED_POLICY=1
fi
cleanup() {
    if [ -n "$ADDED_POLICY" ]; then rm -f "$POLICY"; fi
}
trap cleanup EXIT

# apt lists may be missing on a brand-new machine.
if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
    apt-get -q update -o DPkg::Lock::Timeout=600
fi

apt-get install "${APT_OPTS[@]}" "${PACKAGES[@]}"
apt-get install "${APT_OPTS[@]}" --download-only "${NOVA_PACKAGES[@]}"
echo "install-packages.sh: done"
