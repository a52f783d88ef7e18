#!/usr/bin/env bash
# Run one build command of the fleet's cache (base root filesystem, ctl layer) in namespaces
# of its own, so nothing it starts can bind in the machine's network namespace or outlive it.
#
# fleet.py starts it as
#   unshare --net --pid --fork --kill-child --mount --uts --ipc --propagation private \
#       bash sandbox.sh HOSTNAME -- COMMAND...
# with, in the environment (no secrets):
#   FLEET_RELAYS        "ADDRESS=SOCKET ..." : listen on ADDRESS:80 inside, forward to the
#                       package relay's UNIX socket (the only way out of this namespace)
#   FLEET_MIRROR_HOSTS  /etc/hosts lines mapping the mirror names to those addresses
#
# Inside: loopback up, one socat per relay, and this mount namespace's /etc/hosts replaced
# (a bind mount of a regular file, private to this namespace) so the machine's own apt
# (mmdebstrap) resolves the mirror to the relay. When COMMAND ends, this shell (PID 1 of
# the namespace) exits and the kernel ends every process left in it.
set -euo pipefail

name=$1; shift
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { echo "sandbox.sh: no command" >&2; exit 2; }

hostname "$name"
ip link set lo up

work=$(mktemp -d /tmp/fleet-sandbox.XXXXXX)
trap 'rm -rf "$work"' EXIT
{
    printf '127.0.0.1\tlocalhost\n'
    printf '%s\n' "$FLEET_MIRROR_HOSTS"
} >"$work/hosts"
mount --bind "$work/hosts" /etc/hosts

for relay in $FLEET_RELAYS; do
    addr=${relay%%=*} sock=${relay#*=}
    socat "TCP-LISTEN:80,bind=$addr,fork,reuseaddr" "UNIX-CONNECT:$sock" &
done
# bounded wait until every relay listens (/proc/net/tcp: ADDRESS:0050 in state 0A)
for relay in $FLEET_RELAYS; do
    addr=${relay%%=*}
    IFS=. read -r a b c d <<<"$addr"
    hex=$(printf '%02X%02X%02X%02X:0050' "$d" "$c" "$b" "$a")
    for i in $(seq 50); do
        if awk -v h="$hex" '$2 == h && $4 == "0A" {f=1} END {exit !f}' /proc/net/tcp; then break; fi
        [ "$i" -lt 50 ] || { echo "sandbox.sh: relay on $addr:80 did not start" >&2; exit 1; }
        sleep 0.1
    done
done

status=0
"$@" || status=$?
exit "$status"
