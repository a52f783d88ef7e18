#!/usr/bin/env bash
# Build the controller's cached layer on top of the base: MariaDB, RabbitMQ, memcached and
# the OpenStack services Nova needs but does not own (Keystone, Placement, Glance, the
# Neutron API server, the client, crudini ...), installed by tests/support/install-packages.sh
# itself (same debconf preseeds: every "configure it for me" question answered false).
#
#   build-ctl.sh BASE_ROOT LAYER_DIR SUPPORT_DIR
#
# LAYER_DIR/upper becomes the layer (an overlayfs upper directory, used later as a middle
# lower layer: lowerdir=ctl-layer:base). fleet.py runs this inside sandbox.sh (own network,
# PID and mount namespaces), so no daemon can start next to the machine's own services;
# a policy-rc.d exiting 101 keeps the packages from starting any during the build, and is
# removed before the layer is sealed.
set -euo pipefail

BASE=$1 LAYER=$2 SUPPORT=$3
CTL_PACKAGES="mariadb-server rabbitmq-server memcached"
R=$LAYER/root

mkdir -p "$LAYER/upper" "$LAYER/work" "$R"
mount -t overlay overlay \
    -o "lowerdir=$BASE,upperdir=$LAYER/upper,workdir=$LAYER/work,redirect_dir=off,index=off,metacopy=off,xino=off" "$R"
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$R/dev"
for spec in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
    set -- $spec
    mknod -m 0666 "$R/dev/$1" c "$2" "$3"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
mkdir -p "$R/run/lock" "$R/run/fleet-support"
mount --bind -o ro "$SUPPORT" "$R/run/fleet-support"
# the mirror names point at the sandbox's relay (a bind mount: /etc/hosts of the layer
# itself is not touched)
hostsf=$(mktemp /tmp/fleet-ctl-hosts.XXXXXX)
trap 'rm -f "$hostsf"' EXIT
printf '127.0.0.1\tlocalhost\n%s\n' "$FLEET_MIRROR_HOSTS" >"$hostsf"
chmod 0644 "$hostsf"            # apt fetches as user _apt
mount --bind "$hostsf" "$R/etc/hosts"

printf '#!/bin/sh\n# nova-formula fleet: ctl layer build only\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"

status=0
chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive FTEST_EXTRA_PACKAGES="$CTL_PACKAGES" \
    bash /run/fleet-support/install-packages.sh || status=$?

rm -f "$R/usr/sbin/policy-rc.d"
if [ "$status" = 0 ]; then
    chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        sh -c 'for t in mariadbd rabbitmq-server memcached keystone-manage placement-manage glance-manage neutron-db-manage openstack crudini; do command -v $t >/dev/null || { echo "build-ctl.sh: $t missing" >&2; exit 1; }; done' \
        || status=$?
fi

umount "$R/etc/hosts" "$R/run/fleet-support" "$R/dev/shm" "$R/dev/pts" "$R/dev" "$R/run" "$R/sys" "$R/proc"
umount "$R"

# What apt downloaded for this layer is installed: drop the debs (only files new in this
# layer are in upper/; the base's cached nova debs are untouched) and apt's binary caches.
find "$LAYER/upper/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -type f -delete 2>/dev/null || true
rm -f "$LAYER"/upper/var/cache/apt/*.bin
if [ -e "$LAYER/upper/usr/sbin/policy-rc.d" ]; then
    echo "build-ctl.sh: policy-rc.d left in the layer" >&2; status=1
fi
exit "$status"
