#!/usr/bin/env bash
# mmdebstrap --customize-hook of build-base.sh: $1 is the new root filesystem.
# Runs inside the build sandbox (the mirror is reached through the package relay).
set -euo pipefail

R=$1
HERE=$(cd "$(dirname "$0")" && pwd)
: "${FLEET_WHEELS:?}"

# Commands inside the new root get a clean environment (pitfall 8: the machine's leaks).
in_root() {
    chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}
words() { sed -e 's/#.*//' "$1" | tr -s ' \t' '\n\n' | sed '/^$/d'; }
field() { sed -n "s/^$1:[[:space:]]*//p" "$HERE/nova-packages.txt" | tr -s ' \t' '\n\n' | sed '/^$/d'; }

# During the build the mirror names point at the sandbox's relay; replaced at the end.
printf '127.0.0.1\tlocalhost\n%s\n' "$FLEET_MIRROR_HOSTS" >"$R/etc/hosts"

echo "base-customize: Salt virtualenv /opt/salt (offline, pinned wheels)"
mkdir "$R/tmp/wheels"
cp "$FLEET_WHEELS"/*.whl "$FLEET_WHEELS"/constraints.txt "$FLEET_WHEELS"/top.txt "$R/tmp/wheels/"
in_root /usr/bin/python3 -m venv /opt/salt
mapfile -t TOP <"$FLEET_WHEELS/top.txt"
in_root /opt/salt/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
    --find-links /tmp/wheels -c /tmp/wheels/constraints.txt "${TOP[@]}"
rm -rf "$R/tmp/wheels"
in_root /opt/salt/bin/python3 -c 'import salt.version, pymysql, keystoneauth1; print("salt", salt.version.__version__)'

echo "base-customize: nova debs into the apt cache (not installed)"
in_root apt-get clean                     # the base's own debs: installed, not needed
mapfile -t NOVA < <(field nova)
mapfile -t EXTRA < <(field extra)
for v in $(field versions); do
    in_root apt-get install -y -q --download-only --no-install-recommends \
        "${NOVA[@]/%/=$v}" "${EXTRA[@]}" >/dev/null
done
missing=0
for v in $(field versions); do
    for p in "${NOVA[@]}"; do
        # dpkg's file names encode the epoch's ':' as %3a
        f="$R/var/cache/apt/archives/${p}_${v/:/%3a}_all.deb"
        [ -e "$f" ] || [ -e "${f%_all.deb}_amd64.deb" ] || { echo "missing: $p $v" >&2; missing=1; }
    done
done
[ "$missing" = 0 ]
rm -f "$R"/var/cache/apt/*.bin
echo "base-customize: $(ls "$R"/var/cache/apt/archives/*.deb | wc -l) debs cached"

echo "base-customize: host identity and services"
: >"$R/etc/machine-id"                    # each host gets its own (fleet.py writes it)
rm -f "$R/var/lib/dbus/machine-id"
rm -f "$R"/etc/ssh/ssh_host_*             # each host makes its own keys on first start
in_root systemctl disable ssh.service >/dev/null 2>&1 || true
in_root update-rc.d ssh disable >/dev/null 2>&1 || true
in_root systemctl mask console-getty.service >/dev/null
printf 'localhost\n' >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$R/etc/hosts"
# No DNS inside the fleet: names come from /etc/hosts (fleet.py writes each host's).
printf '# nova-formula fleet: no DNS; names are in /etc/hosts\n' >"$R/etc/resolv.conf"
