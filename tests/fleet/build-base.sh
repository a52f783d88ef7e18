#!/usr/bin/env bash
# Build the fleet's base root filesystem: Debian 12 (bookworm + bookworm-updates +
# bookworm-security) with mmdebstrap, the packages of base-packages.txt, a Salt virtualenv
# in /opt/salt (offline, from the wheelhouse fleet.py built) and the Nova .debs of
# nova-packages.txt in the apt cache, not installed.
#
#   build-base.sh TARGET WHEELHOUSE
#
# fleet.py runs it inside sandbox.sh (own network/PID/mount namespaces; only the package
# relay reaches out) and keys the result by a hash of this script, base-customize.sh, the
# package lists and the wheel pins: any change rebuilds it.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TARGET=$1
export FLEET_WHEELS=$2
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security

words() { sed -e 's/#.*//' "$1" | tr -s ' \t' '\n\n' | sed '/^$/d'; }
mapfile -t PKGS < <(words "$HERE/base-packages.txt")
INCLUDE=$(IFS=,; echo "${PKGS[*]}")

[ ! -e "$TARGET" ] || { echo "build-base.sh: $TARGET exists" >&2; exit 1; }

# --mode=root: real mknod for /dev nodes inside the tree (nothing of the machine's /dev is
#   bind-mounted: --skip=chroot/mount/dev);
# mmdebstrap's own policy-rc.d and fake start-stop-daemon keep daemons from starting while
#   it installs, and are removed at its cleanup (checked below);
# apt lists and the cache are kept: the hosts install the cached nova debs offline.
mmdebstrap --mode=root --variant=minbase --format=directory \
    --include="$INCLUDE" \
    --aptopt='Acquire::Retries "3"' \
    --aptopt='APT::Install-Recommends "false"' \
    --skip=chroot/mount/dev --skip=cleanup/apt/lists --skip=cleanup/apt/cache \
    --customize-hook="$HERE/base-customize.sh" \
    bookworm "$TARGET" \
    "deb $MIRROR bookworm main" \
    "deb $MIRROR bookworm-updates main" \
    "deb $SECURITY bookworm-security main"

# The APT::Install-Recommends above was for the build only: a host's apt behaves like a
# stock Debian 12 (the formula chooses --no-install-recommends itself).
rm -f "$TARGET/etc/apt/apt.conf.d/99mmdebstrap"

fail=0
if [ -e "$TARGET/usr/sbin/policy-rc.d" ]; then
    echo "build-base.sh: a policy-rc.d was left in the base" >&2; fail=1
fi
if [ -e "$TARGET/sbin/start-stop-daemon.REAL" ] || ! grep -q ELF <(head -c4 "$TARGET/sbin/start-stop-daemon"); then
    echo "build-base.sh: start-stop-daemon is not dpkg's" >&2; fail=1
fi
[ ! -s "$TARGET/etc/machine-id" ] || { echo "build-base.sh: /etc/machine-id is not empty" >&2; fail=1; }
exit "$fail"
