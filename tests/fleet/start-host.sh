#!/usr/bin/env bash
# Start one fleet host. fleet.py runs it as PID 1 of fresh namespaces:
#   nsenter --net=/run/netns/NS -- unshare --fork --kill-child --pid --mount --uts --ipc \
#       [--cgroup] --propagation private bash start-host.sh
# Everything it mounts lives in the host's private mount namespace only (nothing appears in
# the machine's), and goes away with the host's last process. Parameters come from the
# environment (fleet.py sets it; no secrets):
#   FLEET_HOST FLEET_KIND(sysvinit|systemd) FLEET_ROOT FLEET_LOWER FLEET_UPPER FLEET_WORK
#   FLEET_INJECT FLEET_PIDFILE FLEET_RELAY_DIR FLEET_TESTS FLEET_INIT FLEET_INIT_JSON
#   FLEET_DROP_CAPS FLEET_CONTAINER [FLEET_FORMULA FLEET_PILLAR]
set -euo pipefail
log() { echo "start-host[$FLEET_HOST]: $*"; }

# This shell's PID as the machine sees it (the machine's procfs is still mounted on /proc)
# and its start time: fleet.py checks both before it ever signals this PID.
stat=$(</proc/self/stat)
read -r outer_pid _ <<<"$stat"
rest=${stat##*) }
read -r -a fields <<<"$rest"
echo "$outer_pid ${fields[19]}" >"$FLEET_PIDFILE.tmp"
mv "$FLEET_PIDFILE.tmp" "$FLEET_PIDFILE"

hostname "$FLEET_HOST"
R=$FLEET_ROOT

# the host's root: base (and layers) read-only below, the host's own upper directory on top
mount -t overlay overlay \
    -o "lowerdir=$FLEET_LOWER,upperdir=$FLEET_UPPER,workdir=$FLEET_WORK,redirect_dir=off,index=off,metacopy=off,xino=off" "$R"

# harness-managed files (hostname, hosts, machine-id, salt config, init scripts, units),
# written through the overlay; existing directories keep their owner and mode
tar -C "$FLEET_INJECT" -cf - . | tar -C "$R" -xpf - --no-overwrite-dir

# kernel interfaces: a procfs of this PID namespace; what is not per-namespace read-only
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
for p in sys sysrq-trigger irq bus fs; do
    [ -e "$R/proc/$p" ] || continue
    mount --bind "$R/proc/$p" "$R/proc/$p"
    mount -o remount,bind,ro,nosuid,nodev,noexec "$R/proc/$p"
done
mount --bind "$R/proc/sys/net" "$R/proc/sys/net"           # per network namespace
mount -o remount,bind,rw,nosuid,nodev,noexec "$R/proc/sys/net"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
if [ "$FLEET_KIND" = systemd ]; then
    # cgroup namespace rooted at the host's own cgroup (fleet.py made it and put us in it)
    mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
fi
mount -t tmpfs -o mode=0755,nosuid,nodev,size=512m tmpfs "$R/run"
mkdir -p "$R/run/lock" "$R/run/fleet" "$R/run/fleet-relay" "$R/run/fleet/tests"
chmod 1777 "$R/run/lock"

# /dev: a tmpfs of the host's own; every node made here with mknod (never a bind mount of
# the machine's nodes: see the /dev/null incident in notes/fleet.md)
mount -t tmpfs -o mode=0755,nosuid,size=1m tmpfs "$R/dev"
for spec in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
    set -- $spec
    mknod -m 0666 "$R/dev/$1" c "$2" "$3"
done
mkdir -m 0755 "$R/dev/pts"
mkdir -m 1777 "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
[ "$FLEET_KIND" != systemd ] || : >"$R/dev/console"        # mount point for a pty below

# directories from the machine, read-only: the package relay's socket, the harness's tests/
# (support scripts), and on the controller the formula (file_roots) and the pillar
bind_ro() {
    mount --bind "$1" "$2"
    mount -o remount,bind,ro,nosuid,nodev "$2"
}
bind_ro "$FLEET_RELAY_DIR" "$R/run/fleet-relay"
bind_ro "$FLEET_TESTS" "$R/run/fleet/tests"
if [ -n "${FLEET_FORMULA:-}" ]; then
    # file_roots holds the formula's parts only, as an operator's does: the master walks
    # every file under file_roots for each file list a minion asks for (any `include:`),
    # .git and .venv included (file_ignore_regex filters after the walk)
    mkdir -p "$R/srv/formula" "$R/srv/pillar"
    mount -t tmpfs -o mode=0755,size=64k,nosuid,nodev tmpfs "$R/srv/formula"
    for part in $FLEET_FORMULA_PARTS; do
        [ -d "$FLEET_FORMULA/$part" ] || continue
        mkdir "$R/srv/formula/$part"
        bind_ro "$FLEET_FORMULA/$part" "$R/srv/formula/$part"
    done
    mount -o remount,ro,nosuid,nodev "$R/srv/formula"
    bind_ro "$FLEET_PILLAR" "$R/srv/pillar"
fi
cp "$FLEET_INIT" "$R/run/fleet/init.py"
cp "$FLEET_INIT_JSON" "$R/run/fleet/init.json"

# into the host's root for good: pivot_root, then drop the machine's tree
cd "$R"
pivot_root . .
umount -l .
cd /

# from here on every command is the host's own (Debian 12 from the base)
if ! ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1; then
    ssh-keygen -A >/dev/null 2>&1 || log "ssh-keygen -A failed"
fi

caps=(setpriv --bounding-set "$FLEET_DROP_CAPS" --)
if [ "$FLEET_KIND" = systemd ]; then
    # /dev/console: a pty of the host's own devpts; socat holds its master side and copies
    # systemd's console output to this script's stdout (the host's console.log)
    socat -u "PTY,link=/run/fleet/console,rawer" STDOUT &
    for i in $(seq 50); do
        [ -L /run/fleet/console ] && break
        [ "$i" -lt 50 ] || { log "no console pty"; exit 1; }
        sleep 0.1
    done
    mount --bind "$(readlink -f /run/fleet/console)" /dev/console
    log "exec systemd"
    exec "${caps[@]}" /usr/bin/env -i container="$FLEET_CONTAINER" \
        /lib/systemd/systemd --log-target=console
fi
log "exec init.py"
exec "${caps[@]}" /usr/bin/env -i container="$FLEET_CONTAINER" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    /usr/bin/python3 /run/fleet/init.py
