"""Is a running daemon older than what it runs? For rolling updates: a
daemon that started before its package was installed or before a file it
reads last changed runs old code or old config, and needs a restart (once).

The daemon is found by its pidfile (init scripts), else by systemd's MainPID;
its start time comes from /proc (boot time + start ticks); a package's
install time from dpkg's file list (Debian) or rpm (RedHat).
"""
import os
import shutil

from salt.exceptions import CommandExecutionError

__virtualname__ = "nova_service"


def __virtual__():
    if not os.path.isdir("/proc/self"):
        return (False, "nova_service needs /proc")
    return __virtualname__


def _boot_time():
    with open("/proc/stat", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("btime "):
                return int(line.split()[1])
    raise CommandExecutionError("no btime in /proc/stat")


def _alive(pid):
    return pid and os.path.exists(f"/proc/{pid}")


def main_pid(name, pidfile=None):
    """The main PID of service ``name``: its pidfile when given and alive,
    else systemd's MainPID; None when it does not run.

    CLI Example:

    .. code-block:: bash

        salt cmp1 nova_service.main_pid nova-compute /run/nova/nova-compute.pid
    """
    if pidfile and os.path.exists(pidfile):
        with open(pidfile, encoding="ascii") as fh:
            text = fh.read().strip()
        if text.isdigit() and _alive(int(text)):
            return int(text)
    if shutil.which("systemctl") and os.path.isdir("/run/systemd/system"):
        out = __salt__["cmd.run_stdout"](["systemctl", "show", "-p", "MainPID", "--value", name],
                                         python_shell=False, output_loglevel="quiet")
        if out.strip().isdigit() and int(out) > 0 and _alive(int(out)):
            return int(out)
    return None


def started(pid):
    """When process ``pid`` started (seconds since the epoch).

    CLI Example:

    .. code-block:: bash

        salt cmp1 nova_service.started 1234
    """
    with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def installed_at(package):
    """When ``package`` was last installed or upgraded (epoch seconds), or None.

    CLI Example:

    .. code-block:: bash

        salt cmp1 nova_service.installed_at python3-nova
    """
    stamp = f"/var/lib/dpkg/info/{package}.list"
    if os.path.exists(stamp):
        return os.stat(stamp).st_mtime
    if shutil.which("rpm"):
        out = __salt__["cmd.run_stdout"](["rpm", "-q", "--qf", "%{INSTALLTIME}", package],
                                         python_shell=False, output_loglevel="quiet",
                                         ignore_retcode=True)
        return int(out) if out.strip().isdigit() else None
    return None


def stale(name, pidfile=None, files=(), packages=()):
    """Why service ``name``'s running daemon is older than what it runs: the
    packages and files (``files``, ``packages``) that changed after it
    started; [] when it is current or does not run (a stopped daemon starts
    with what is there).

    CLI Example:

    .. code-block:: bash

        salt cmp1 nova_service.stale nova-compute files='[/etc/nova/nova.conf]' packages='[python3-nova]'
    """
    pid = main_pid(name, pidfile)
    if pid is None:
        return []
    since = started(pid)
    newer = []
    for path in files or ():
        if os.path.exists(path) and os.stat(path).st_mtime > since:
            newer.append(path)
    for pkg in packages or ():
        when = installed_at(pkg)
        if when is not None and when > since:
            newer.append(pkg)
    return newer
