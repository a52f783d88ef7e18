#!/usr/bin/python3
"""PID 1 of a sysvinit fleet host (start-host.sh execs it with the host's own python3).

What a real init does that the host needs, and nothing more:
- reaps every orphan (pitfall 2: start-stop-daemon --stop waits on zombies otherwise);
- drains /run/initctl, the FIFO `telinit` writes to (pitfall 3: sysvinit-core's postinst
  runs `telinit u`, which stalls ~45 s when nobody reads it);
- writes a runlevel record to /run/utmp, so `runlevel` prints "N 2" like a booted Debian
  (Salt's debian_service and invoke-rc.d read it);
- keeps the services of /run/fleet/init.json running (the package relay's socat),
  restarting one that dies (at most 5 times in 10 s);
- on SIGTERM/SIGINT/SIGPWR (or SIGRTMIN+4, systemd's "poweroff"): SIGTERM to every process
  of the host, up to `grace` seconds for them to end, then SIGKILL, then exit.
There is no boot sequence: /etc/rc2.d is not run (pitfall 14).
"""
import errno
import json
import os
import select
import signal
import stat
import struct
import sys
import time

CONFIG = "/run/fleet/init.json"
READY = "/run/fleet/ready"
INITCTL = "/run/initctl"
UTMP = "/run/utmp"


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} init[{os.uname().nodename}]: {msg}", flush=True)


def write_runlevel(level="2", previous="N"):
    # struct utmp (glibc, x86_64): 384 bytes. RUN_LVL = 1; ut_pid = level + 256 * previous.
    rec = struct.pack("@hi32s4s32s256shhiii16s20x",
                      1, ord(level) + 256 * ord(previous), b"~", b"~~", b"runlevel", b"",
                      0, 0, 0, int(time.time()), 0, b"")
    assert len(rec) == 384, len(rec)
    fd = os.open(UTMP, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o664)
    try:
        os.write(fd, rec)
    finally:
        os.close(fd)
    try:
        import grp
        os.chown(UTMP, 0, grp.getgrnam("utmp").gr_gid)
    except (KeyError, OSError):
        pass


def open_initctl():
    try:
        st = os.stat(INITCTL)
        if not stat.S_ISFIFO(st.st_mode):
            os.unlink(INITCTL)
            raise FileNotFoundError
    except FileNotFoundError:
        os.mkfifo(INITCTL, 0o600)
    # O_RDWR keeps a writer open ourselves, so the FIFO never reports EOF in a busy loop.
    return os.open(INITCTL, os.O_RDWR | os.O_NONBLOCK)


class Service:
    def __init__(self, argv):
        self.argv = argv
        self.pid = None
        self.starts = []

    def start(self):
        now = time.monotonic()
        self.starts = [t for t in self.starts if now - t < 10] + [now]
        if len(self.starts) > 5:
            log(f"{self.argv[0]} keeps dying; not restarted again")
            self.argv = None
            return
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                signal.pthread_sigmask(signal.SIG_SETMASK, [])
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGPWR, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                os.execv(self.argv[0], self.argv)
            finally:
                os._exit(127)
        self.pid = pid


def main():
    if os.getpid() != 1:
        sys.exit("init.py: must run as PID 1")
    config = {"services": [], "grace": 10, "runlevel": "2"}
    try:
        with open(CONFIG) as fh:
            config.update(json.load(fh))
    except FileNotFoundError:
        pass

    stopping = []

    def on_stop(signum, _frame):
        stopping.append(signum)

    stop_signals = [signal.SIGTERM, signal.SIGINT, signal.SIGPWR, signal.SIGRTMIN + 4]
    for sig in stop_signals:
        signal.signal(sig, on_stop)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # every signal also writes a byte to this pipe: the select() below wakes up at once
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    write_runlevel(config.get("runlevel", "2"))
    fifo = open_initctl()
    services = [Service(argv) for argv in config["services"]]
    for svc in services:
        svc.start()
    with open(READY, "w") as fh:
        fh.write(f"{time.time()}\n")
    log("ready")

    def reap():
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for svc in services:
                if svc.pid == pid:
                    svc.pid = None

    while not stopping:
        reap()
        try:
            while os.read(fifo, 4096):        # telinit requests: accepted, ignored
                pass
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
        for svc in services:
            if svc.pid is None and svc.argv is not None:
                svc.start()
        select.select([fifo, wake_r], [], [], 5.0)
        try:
            while os.read(wake_r, 512):
                pass
        except BlockingIOError:
            pass

    log(f"stopping (signal {stopping[0]})")
    for svc in services:
        svc.argv = None
    try:
        os.kill(-1, signal.SIGTERM)           # every process of this PID namespace but us
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + float(config.get("grace", 10))
    while time.monotonic() < deadline:
        reap()
        try:
            os.kill(-1, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        left = []
        for d in os.listdir("/proc"):
            if d.isdigit() and d != "1":
                try:
                    with open(f"/proc/{d}/comm") as fh:
                        left.append(f"{d}:{fh.read().strip()}")
                except OSError:
                    pass
        log(f"grace period over, SIGKILL to: {' '.join(left)}")
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    reap()
    log("stopped")


if __name__ == "__main__":
    main()
