#!/usr/bin/python3
"""nova-formula fleet: several Debian 12 hosts on this one machine, for Salt/Nova tests.

Each host is an overlayfs root (cached read-only layers + the host's own upper directory)
running in its own PID, mount, UTS, IPC and network namespaces (and cgroup namespace when
systemd is its PID 1). The hosts share a bridge that lives in a network namespace of its
own; the machine's network namespace gains nothing but the package relay's UNIX socket.
See README.md beside this file.

Python API (stdlib only, Python >= 3.9; run as root)::

    from fleet import Fleet
    fleet = Fleet("/var/lib/nova-formula-fleet")
    fleet.up(["ctl", "cmp1", "cmp2"], systemd=["cmp2"])
    fleet.support_up()                      # Keystone, Placement, Glance, Neutron in ctl
    fleet.run("cmp1", ["hostname"]).stdout  # -> "cmp1\\n"
    fleet.salt(["salt", "*", "test.ping"])
    fleet.down(purge=True)

CLI: ``tests/fleet/fleet --help``.
"""
import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE_DIR = Path(os.environ.get("FLEET_CACHE_DIR", "/var/cache/nova-formula-fleet"))
STATE_ROOT = Path("/var/lib/nova-formula-fleet")       # a fleet's state: STATE_ROOT/<name>
FLEET_NAME = os.environ.get("FLEET_NAME", "nffleet")
RUN_ROOT = Path("/run/nova-formula-fleet")
CGROUP_NAME = "nova-formula-fleet"
# what ctl's master serves from the checkout (file_roots), as an operator's master would:
# the formula's states and extension modules, and the benchmarks' floor.sls
FORMULA_PARTS = ("nova", "_modules", "_states", "_utils", "benchmarks")

SUBNET = "10.77.0"
FIXED_ADDRESSES = {"ctl": 10, "cmp1": 11, "cmp2": 12, "cmp3": 13, "cond1": 20}
DEFAULT_HOSTS = ("ctl", "cmp1", "cmp2")
CONTROLLER = "ctl"
MIRROR_NAMES = ("deb.debian.org", "security.debian.org")
RELAY_FIRST_ADDRESS = 53                       # 127.0.0.53, .54 ... inside the hosts
# Capabilities no host needs, dropped from the bounding set of PID 1 and of every command
# run in a host (as systemd-nspawn does): no module loading, raw I/O, clock, kernel log ...
DROP_CAPS = ("-sys_module,-sys_rawio,-sys_time,-syslog,-bpf,-perfmon,-mac_admin,"
             "-mac_override,-audit_control,-sys_pacct,-wake_alarm,-block_suspend")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MACHINE_PACKAGES = ("mmdebstrap", "socat", "python3-venv", "python3-dev", "gcc", "libc6-dev",
                    "iproute2", "util-linux", "tar", "ca-certificates")
# Salt's virtualenv: these, plus their dependencies, all at requirements.txt's pins
SALT_TOP = ("salt", "PyMySQL", "keystoneauth1")
VENV_TOOLING = {"pip", "setuptools", "wheel"}
HOST_RE = re.compile(r"^[a-z][a-z0-9-]{0,11}$")
CTL_PORTS = {"keystone": 5000, "placement": 8778, "glance": 9292, "neutron": 9696}


class FleetError(RuntimeError):
    pass


def log(msg):
    print(f"fleet {time.strftime('%H:%M:%S')}: {msg}", file=sys.stderr, flush=True)


def sh(argv, check=True, timeout=600, **kw):
    """Run a command on the machine (captured, text); FleetError on failure."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise FleetError(f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc


def wait_until(predicate, timeout, interval=0.2, what="condition"):
    """Poll PREDICATE until true (its value is returned); bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise FleetError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def sha256_files(*parts):
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            h.update(part.name.encode() + b"\0" + part.read_bytes() + b"\0")
        else:
            h.update(str(part).encode() + b"\0")
    return h.hexdigest()[:16]


# ------------------------------------------------------------------ processes

def proc_start_time(pid):
    """Start time of PID (clock ticks since boot), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(data.rsplit(")", 1)[1].split()[19])


def proc_alive(pid, start):
    return pid > 0 and proc_start_time(pid) == start


def ns_inode(pid, ns):
    try:
        return os.stat(f"/proc/{pid}/ns/{ns}").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def proc_nspid(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return []


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return total


def cgroup2_mount():
    """Mount point of the machine's cgroup2 hierarchy."""
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, right = line.split(" - ", 1)
            if right.split()[0] == "cgroup2":
                return Path(left.split()[4])
    raise FleetError("no cgroup2 hierarchy is mounted on this machine (systemd hosts need one)")


def own_cgroup2_path():
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            if line.startswith("0::"):
                return line.strip()[3:]
    return "/"


def mounts_under(path):
    """Mount points of the machine's mount namespace at or below PATH."""
    path = str(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mp = line.split()[4].replace("\\040", " ")
            if mp == path or mp.startswith(path + "/"):
                found.append(mp)
    return found


def write_atomic(path, text, mode=0o644):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@contextlib.contextmanager
def flocked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_machine_packages(packages=MACHINE_PACKAGES):
    """The machine's own tools for building the cache and running hosts (Debian 12)."""
    missing = []
    for pkg in packages:
        out = sh(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg], check=False).stdout
        if out != "installed":
            missing.append(pkg)
    if not missing:
        return
    log(f"installing on the machine: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not any(p.name.endswith("_Packages") for p in Path("/var/lib/apt/lists").iterdir()):
        sh(["apt-get", "-q", "update", "-o", "DPkg::Lock::Timeout=600"], env=env, timeout=1800)
    sh(["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600",
        *missing], env=env, timeout=1800)


# ------------------------------------------------------------------ package relay

class Relay:
    """socat on the machine: a UNIX socket per mirror front, forwarded to the mirror's port 80.

    Inside a host (or a build sandbox) socat listens on 127.0.0.53:80 (.54 ... for a mirror
    behind another front) and forwards to that socket; /etc/hosts maps the mirror names
    there. deb.debian.org and security.debian.org are grouped when they resolve to a
    common address (the same front: one socket serves both, the HTTP Host header picks).
    """

    def __init__(self, run_dir):
        self.dir = Path(run_dir) / "relay"
        self.meta = Path(run_dir) / "relay.json"

    @staticmethod
    def plan():
        groups = []
        for name in MIRROR_NAMES:
            try:
                addrs = {ai[4][0] for ai in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
            except socket.gaierror as exc:
                raise FleetError(f"cannot resolve the mirror {name}: {exc}") from exc
            for group in groups:
                if group["addresses"] & addrs:
                    group["names"].append(name)
                    group["addresses"] |= addrs
                    break
            else:
                groups.append({"names": [name], "addresses": addrs})
        return [{"upstream": g["names"][0], "names": g["names"],
                 "inner": f"127.0.0.{RELAY_FIRST_ADDRESS + i}", "socket": f"{i}.sock",
                 "addresses": sorted(g["addresses"])} for i, g in enumerate(groups)]

    def load(self):
        try:
            return json.loads(self.meta.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def running(self):
        meta = self.load()
        if not meta:
            return False
        return all(proc_alive(p["pid"], p["start"]) for p in meta["procs"]) and all(
            (self.dir / g["socket"]).is_socket() for g in meta["groups"])

    def start(self):
        if self.running():
            return self.load()
        # a relay that died is replaced in the same directory: running hosts bind-mounted
        # the directory itself, they see the new socket
        self._kill()
        groups = self.plan()
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        procs = []
        logf = open(self.dir.parent / "relay.log", "ab")
        for g in groups:
            sock = self.dir / g["socket"]
            proc = subprocess.Popen(
                ["socat", f"UNIX-LISTEN:{sock},fork,mode=0600,unlink-early",
                 f"TCP:{g['upstream']}:80"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
            procs.append({"pid": proc.pid, "start": None, "socket": g["socket"]})
            wait_until(sock.is_socket, 10, 0.05, f"relay socket {sock}")
            procs[-1]["start"] = proc_start_time(proc.pid)
        logf.close()
        meta = {"groups": groups, "procs": procs}
        write_atomic(self.meta, json.dumps(meta, indent=1))
        return meta

    def stop(self):
        self._kill()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        for f in (self.meta, self.dir.parent / "relay.log"):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()

    def _kill(self):
        meta = self.load()
        for p in (meta or {}).get("procs", []):
            if p.get("start") is not None and proc_alive(p["pid"], p["start"]):
                # its own session and process group (start_new_session): the listener and
                # the children it forked per connection, nothing else
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p["pid"], signal.SIGTERM)
                with contextlib.suppress(FleetError):
                    wait_until(lambda: not proc_alive(p["pid"], p["start"]), 5, 0.05, "relay exit")
                if proc_alive(p["pid"], p["start"]):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p["pid"], signal.SIGKILL)

    @staticmethod
    def hosts_lines(meta):
        return [f"{g['inner']}\t{' '.join(g['names'])}" for g in meta["groups"]]

    @staticmethod
    def inner(meta):
        return [(g["inner"], g["socket"]) for g in meta["groups"]]


# ------------------------------------------------------------------ cache (layers)

class Cache:
    """Read-only layers, built once and keyed by a hash of their recipe."""

    def __init__(self, root=CACHE_DIR):
        self.root = Path(root)
        self._pyver = None

    # keys
    def pins(self):
        pins = {}
        for line in (REPO / "requirements.txt").read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                pins[canon(name)] = (name.strip(), version.strip())
        return pins

    def top(self):
        pins = self.pins()
        return [f"{pins[canon(n)][0]}=={pins[canon(n)][1]}" for n in SALT_TOP]

    def wheels_key(self):
        if self._pyver is None:
            self._pyver = sh(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2])"]).stdout
        return sha256_files(REPO / "requirements.txt", *self.top(), self._pyver)

    def base_key(self):
        return sha256_files(self.wheels_key(), HERE / "build-base.sh", HERE / "base-customize.sh",
                            HERE / "base-packages.txt", HERE / "nova-packages.txt")

    def ctl_key(self):
        return sha256_files(self.base_key(), HERE / "build-ctl.sh",
                            REPO / "tests" / "support" / "install-packages.sh")

    # paths
    def wheels_dir(self):
        return self.root / f"wheels-{self.wheels_key()}"

    def base_dir(self):
        return self.root / f"base-{self.base_key()}" / "root"

    def ctl_dir(self):
        return self.root / f"ctl-{self.ctl_key()}" / "layer"

    def layers(self, host):
        """lowerdir list (top first) and the keys that name them, for HOST."""
        if host == CONTROLLER:
            return [self.ctl_dir(), self.base_dir()], [self.ctl_key(), self.base_key()]
        return [self.base_dir()], [self.base_key()]

    def ready(self, host=None):
        dirs = self.layers(host)[0] if host else [self.base_dir()]
        return all((d.parent / "ok").exists() for d in dirs)

    # builds
    def ensure(self, hosts=DEFAULT_HOSTS):
        """Build what HOSTS need and is not cached yet. Returns seconds spent per layer."""
        timings = {}
        with flocked(self.root / "lock"):
            need_ctl = CONTROLLER in hosts
            if (self.base_dir().parent / "ok").exists() and (
                    not need_ctl or (self.ctl_dir().parent / "ok").exists()):
                return timings
            ensure_machine_packages()
            relay = Relay(RUN_ROOT / f"build-{os.getpid()}")
            try:
                relay.start()
                if not (self.base_dir().parent / "ok").exists():
                    t = time.monotonic()
                    self._build_wheels()
                    timings["wheels"] = round(time.monotonic() - t, 1)
                    t = time.monotonic()
                    self._build_base(relay)
                    timings["base"] = round(time.monotonic() - t, 1)
                if need_ctl and not (self.ctl_dir().parent / "ok").exists():
                    t = time.monotonic()
                    self._build_ctl(relay)
                    timings["ctl"] = round(time.monotonic() - t, 1)
            finally:
                relay.stop()
                for d in (relay.dir.parent, RUN_ROOT):
                    with contextlib.suppress(OSError):
                        d.rmdir()
        return timings

    def _build_wheels(self):
        out = self.wheels_dir()
        if (out / "ok").exists():
            return
        log(f"wheelhouse {out.name}: {' '.join(self.top())} and their pinned dependencies")
        tmp = out.with_name(out.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        sh(["/usr/bin/python3", "-m", "venv", str(tmp / "venv")])
        constraints = tmp / "wheels" / "constraints.txt"
        constraints.parent.mkdir()
        shutil.copy(REPO / "requirements.txt", constraints)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        # timelib has no wheel: pip builds it here (gcc, python3-dev) and the result is cached
        sh([str(tmp / "venv" / "bin" / "pip"), "wheel", "-q", "--disable-pip-version-check",
            "--wheel-dir", str(tmp / "wheels"), "-c", str(constraints), *self.top()],
           env=env, timeout=1800)
        pins = self.pins()
        for whl in (tmp / "wheels").glob("*.whl"):
            name, version = whl.name.split("-")[:2]
            if canon(name) in VENV_TOOLING:
                # zc.lockfile, CherryPy ... require setuptools: the virtualenv's own bundled
                # copy serves, as in the project's .venv (requirements.txt pins no tooling)
                whl.unlink()
                continue
            pinned = pins.get(canon(name))
            if not pinned or pinned[1] != version:
                raise FleetError(f"wheel {whl.name} is not pinned in requirements.txt "
                                 f"(pin: {pinned})")
        (tmp / "wheels" / "top.txt").write_text("\n".join(self.top()) + "\n")
        shutil.rmtree(tmp / "venv")
        if out.exists():
            shutil.rmtree(out)
        (tmp / "wheels").rename(out)
        shutil.rmtree(tmp)
        (out / "ok").write_text("")

    def _sandbox(self, relay, hostname, argv, logname, timeout=3600):
        meta = relay.load()
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root",
            "FLEET_RELAYS": " ".join(f"{inner}={relay.dir / sock}" for inner, sock in Relay.inner(meta)),
            "FLEET_MIRROR_HOSTS": "\n".join(Relay.hosts_lines(meta)),
        }
        logpath = self.root / logname
        with open(logpath, "ab") as logf:
            proc = subprocess.run(
                ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount", "--uts", "--ipc",
                 "--propagation", "private", "bash", str(HERE / "sandbox.sh"), hostname, "--", *argv],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env,
                timeout=timeout)
        if proc.returncode != 0:
            tail = logpath.read_text(errors="replace").splitlines()[-30:]
            raise FleetError(f"{argv[0]} failed ({proc.returncode}); see {logpath}:\n" + "\n".join(tail))

    def _build_base(self, relay):
        final = self.base_dir().parent
        tmp = final.with_name(final.name + ".tmp")
        if tmp.exists():
            remove_tree(tmp)
        tmp.mkdir(parents=True)
        log(f"base {final.name}: mmdebstrap (bookworm, bookworm-updates, bookworm-security); "
            f"log {self.root / (final.name + '.log')}")
        try:
            self._sandbox(relay, "fleet-build", ["bash", str(HERE / "build-base.sh"), str(tmp / "root"),
                                                str(self.wheels_dir())], final.name + ".log")
        except BaseException:
            remove_tree(tmp)
            raise
        recipe = {"key": self.base_key(), "built": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "packages": (HERE / "base-packages.txt").read_text(),
                  "nova": (HERE / "nova-packages.txt").read_text(), "salt": self.top()}
        (tmp / "recipe.json").write_text(json.dumps(recipe, indent=1))
        if final.exists():
            remove_tree(final)
        tmp.rename(final)
        (final / "ok").write_text("")
        log(f"base {final.name}: {du(final / 'root')}")

    def _build_ctl(self, relay):
        final = self.ctl_dir().parent
        tmp = final.with_name(final.name + ".tmp")
        if tmp.exists():
            remove_tree(tmp)
        tmp.mkdir(parents=True)
        log(f"ctl layer {final.name}: install-packages.sh + MariaDB, RabbitMQ, memcached; "
            f"log {self.root / (final.name + '.log')}")
        try:
            self._sandbox(relay, CONTROLLER, ["bash", str(HERE / "build-ctl.sh"), str(self.base_dir()),
                                             str(tmp), str(REPO / "tests" / "support")],
                          final.name + ".log")
        except BaseException:
            remove_tree(tmp)
            raise
        shutil.rmtree(tmp / "work")
        (tmp / "root").rmdir()
        (tmp / "upper").rename(tmp / "layer")
        (tmp / "recipe.json").write_text(json.dumps(
            {"key": self.ctl_key(), "base": self.base_key(),
             "built": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))
        if final.exists():
            remove_tree(final)
        tmp.rename(final)
        (final / "ok").write_text("")
        log(f"ctl layer {final.name}: {du(final / 'layer')}")

    def gc(self, in_use=()):
        """Delete cache entries of other recipes (not the current keys, not IN_USE keys)."""
        keep = {f"wheels-{self.wheels_key()}", f"base-{self.base_key()}", f"ctl-{self.ctl_key()}"}
        keep |= {f"base-{k}" for k in in_use} | {f"ctl-{k}" for k in in_use}
        removed = []
        with flocked(self.root / "lock"):
            for name in self.entries():
                if name not in keep:
                    remove_tree(self.root / name)
                    with contextlib.suppress(FileNotFoundError):
                        (self.root / f"{name}.log").unlink()
                    removed.append(name)
        return removed

    def entries(self):
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.exists() else []


def canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def du(path):
    out = sh(["du", "-sh", "--one-file-system", str(path)], check=False).stdout.split()
    return out[0] if out else "?"


def remove_tree(path):
    """rm -rf that never crosses into a mount (pitfall 15): refuses if anything is mounted."""
    path = Path(path)
    if not path.exists():
        return
    busy = mounts_under(path)
    if busy:
        raise FleetError(f"refusing to delete {path}: still mounted: {busy}")
    sh(["rm", "-rf", "--one-file-system", str(path)])


# ------------------------------------------------------------------ hosts

class Fleet:
    """One fleet: its hosts, their network and the package relay. See the module docstring."""

    def __init__(self, state_dir=None, name=None, formula=None, cache_dir=None):
        self.name = name or FLEET_NAME
        if not re.match(r"^[a-z][a-z0-9]{1,7}$", self.name):
            raise FleetError(f"fleet name {self.name!r}: 2-8 lowercase letters/digits")
        self.state = Path(state_dir or os.environ.get("FLEET_STATE_DIR") or STATE_ROOT / self.name)
        self.cache = Cache(cache_dir or CACHE_DIR)
        self.run_dir = RUN_ROOT / self.name
        self.relay = Relay(self.run_dir)
        self.bridge_ns = f"{self.name}-br"
        self._formula = Path(formula).resolve() if formula else None
        self._procs = {}

    # ---- names and paths
    def netns(self, host):
        return f"{self.name}-{host}"

    def host_dir(self, host):
        return self.state / "hosts" / host

    def upper_dir(self, host):
        """The host's own filesystem layer (everything it wrote), e.g. to search for secrets."""
        return self.host_dir(host) / "upper"

    def pillar_dir(self):
        """Host folder bind-mounted (read-only) at /srv/pillar on ctl: the master's pillar_roots."""
        return self.state / "pillar"

    def cgroup_dir(self, host=None):
        base = cgroup2_mount() / CGROUP_NAME / self.name
        return base / host if host else base

    def known_hosts(self):
        d = self.state / "hosts"
        return sorted(p.name for p in d.iterdir() if (p / "host.json").exists()) if d.exists() else []

    def record(self, host):
        try:
            return json.loads((self.host_dir(host) / "host.json").read_text())
        except FileNotFoundError:
            return None

    def address(self, host):
        rec = self.record(host)
        if rec:
            return rec["address"]
        return f"{SUBNET}.{self._allocate(host)}"

    def _allocate(self, host):
        if host in FIXED_ADDRESSES:
            return FIXED_ADDRESSES[host]
        m = re.fullmatch(r"cmp([1-9])", host)
        if m:
            return 10 + int(m.group(1))
        used = {int(self.record(h)["address"].rsplit(".", 1)[1]) for h in self.known_hosts()}
        used |= set(FIXED_ADDRESSES.values())
        for n in range(30, 250):
            if n not in used:
                return n
        raise FleetError("no address left")

    def formula_dir(self):
        meta = self._meta()
        if meta.get("formula"):
            return Path(meta["formula"])
        return self._formula or REPO

    def _meta(self):
        try:
            return json.loads((self.state / "fleet.json").read_text())
        except FileNotFoundError:
            return {}

    # ---- running state
    def _runinfo(self, host):
        try:
            return json.loads((self.host_dir(host) / "run.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def pid1(self, host):
        """The machine's PID of HOST's PID 1, or None when the host is not running.

        Checked, never trusted: same start time as recorded, PID 1 in its own PID namespace,
        and in the host's network namespace."""
        info = self._runinfo(host)
        if not info:
            return None
        pid = info["pid"]
        if not proc_alive(pid, info["start"]):
            return None
        nspid = proc_nspid(pid)
        if len(nspid) < 2 or nspid[-1] != 1:
            return None
        if ns_inode(pid, "pid") != info["ns"]["pid"] or ns_inode(pid, "net") != info["ns"]["net"]:
            return None
        return pid

    def is_running(self, host):
        return self.pid1(host) is not None

    def running_hosts(self):
        return [h for h in self.known_hosts() if self.is_running(h)]

    def pids(self, host, info=None):
        """Machine PIDs of every process in HOST's PID namespace (PID 1 first)."""
        info = info or self._runinfo(host)
        if not info:
            return []
        want = info["ns"]["pid"]
        found = [p for p in all_pids() if ns_inode(p, "pid") == want]
        found.sort(key=lambda p: (p != info["pid"], p))
        return found

    def kind(self, host):
        rec = self.record(host)
        return rec["kind"] if rec else None

    # ---- commands inside a host
    def _enter_argv(self, host):
        pid = self.pid1(host)
        if pid is None:
            raise FleetError(f"host {host} is not running")
        argv = ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w"]
        if self.kind(host) == "systemd":
            argv.append("-C")
        return argv + ["--", "/usr/bin/setpriv", "--bounding-set", DROP_CAPS, "--"]

    @staticmethod
    def host_env(extra=None, term=False):
        """The whole environment of a command in a host (pitfall 8: nothing of the machine's).
        Passed as the process environment, never on argv: EXTRA may hold secrets."""
        env = {"PATH": HOST_PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root",
               "LOGNAME": "root", "SHELL": "/bin/bash"}
        if term:
            env["TERM"] = os.environ.get("TERM", "xterm")
        env.update(extra or {})
        return env

    def run(self, host, argv, input=None, timeout=600, env=None, check=False, text=True):
        """Run ARGV inside HOST (all its namespaces, its root, clean environment).
        Returns a CompletedProcess (stdout/stderr captured). On timeout the command's process
        group is killed and subprocess.TimeoutExpired raised."""
        full = self._enter_argv(host) + list(argv)
        proc = subprocess.Popen(full, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=text,
                                env=self.host_env(env), start_new_session=True)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        cp = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
        if check and cp.returncode != 0:
            raise FleetError(f"[{host}] {' '.join(argv)} failed ({cp.returncode}):\n"
                             f"{(out or '')[-3000:]}{(err or '')[-3000:]}")
        return cp

    def sh(self, host, script, timeout=600, env=None, check=True):
        """Run a shell script (given on stdin, never on argv) inside HOST."""
        return self.run(host, ["/bin/bash", "-s"], input=script, timeout=timeout, env=env, check=check)

    def enter(self, host, argv=None):
        """Replace this process by ARGV (default: a login shell) inside HOST (CLI `enter`)."""
        full = self._enter_argv(host) + (list(argv) if argv else ["/bin/bash", "-l"])
        os.execvpe(full[0], full, self.host_env(term=True))

    def read_file(self, host, path):
        """Read a file of a running host through its root (as root on the machine)."""
        pid = self.pid1(host)
        if pid is None:
            raise FleetError(f"host {host} is not running")
        return Path(f"/proc/{pid}/root/{str(path).lstrip('/')}").read_text()

    def salt(self, argv, timeout=600, check=False):
        """Run a Salt CLI (salt, salt-run, salt-key, salt-call ...) from /opt/salt on ctl."""
        argv = list(argv)
        return self.run(CONTROLLER, [f"/opt/salt/bin/{argv[0]}", *argv[1:]], timeout=timeout, check=check)

    def salt_json(self, target, fun, *args, tgt_type="glob", timeout=60):
        cmd = ["salt", "--out=json", "--static", f"--timeout={int(timeout)}"]
        if tgt_type == "list":
            cmd.append("-L")
        cp = self.salt([*cmd, target, fun, *args], timeout=timeout + 60)
        try:
            return json.loads(cp.stdout or "{}")
        except ValueError:
            raise FleetError(f"salt {target} {fun}: not JSON:\n{cp.stdout}\n{cp.stderr}") from None

    # ---- up
    def up(self, hosts=DEFAULT_HOSTS, systemd=(), formula=None, wait_minions=True, support=False,
           timeout=180):
        """Start HOSTS (those not running yet; a running host is left alone). SYSTEMD: hosts
        to run with systemd as PID 1 (the others run init.py and Debian's init scripts).
        Returns {step: seconds}."""
        hosts = list(dict.fromkeys(hosts))
        systemd = set(systemd)
        for h in list(hosts) + list(systemd):
            if not HOST_RE.match(h):
                raise FleetError(f"bad host name {h!r} (lowercase, at most 12 characters)")
        unknown = systemd - set(hosts)
        if unknown:
            hosts += sorted(unknown)
        if os.geteuid() != 0:
            raise FleetError("the fleet needs root")
        timings = {}
        t0 = time.monotonic()
        built = self.cache.ensure(hosts)
        if built:
            timings.update({f"build {k}": v for k, v in built.items()})
        with flocked(self.state / "lock"):
            ensure_machine_packages(("socat", "iproute2", "util-linux", "tar"))
            meta = self._meta()
            formula = formula or self._formula
            if formula:
                f = str(Path(formula).resolve())
                if meta.get("formula") and meta["formula"] != f and CONTROLLER in self.running_hosts():
                    raise FleetError(f"ctl runs with the formula {meta['formula']}: down ctl first")
                meta["formula"] = f
            meta.setdefault("formula", str(self._formula or REPO))
            meta["name"] = self.name
            self.state.mkdir(parents=True, exist_ok=True)
            write_atomic(self.state / "fleet.json", json.dumps(meta, indent=1))
            os.chmod(self.state, 0o700)              # upper layers and pillar hold secrets
            self.pillar_dir().mkdir(mode=0o700, exist_ok=True)

            new = [h for h in hosts if not self.is_running(h)]
            for h in hosts:
                want = "systemd" if h in systemd else "sysvinit"
                if h not in new and self.kind(h) != want:
                    log(f"{h} runs with {self.kind(h)} as PID 1, left so (down it to change)")
            for h in new:
                self._prepare_record(h, "systemd" if h in systemd else "sysvinit")
            if not new:
                log(f"already running: {' '.join(hosts)}")
            relay_meta = self.relay.start()
            self._bridge_up()
            t = time.monotonic()
            try:
                for h in new:
                    self._start(h, relay_meta)
                for h in new:
                    self._wait_started(h, timeout)
            except BaseException:
                self._abort_start([h for h in new if self._runinfo(h) is None])
                raise
            timings["hosts started"] = round(time.monotonic() - t, 1)
            if new:
                self._refresh_hosts_files()
            t = time.monotonic()
            self._salt_up(new, timeout)
            timings["salt daemons started"] = round(time.monotonic() - t, 1)
            if wait_minions and new and CONTROLLER in self.running_hosts():
                t = time.monotonic()
                self.wait_minions(self.running_hosts(), timeout)
                timings["minions answer"] = round(time.monotonic() - t, 1)
        if support:
            t = time.monotonic()
            self.support_up()
            timings["support layer"] = round(time.monotonic() - t, 1)
        timings["total"] = round(time.monotonic() - t0, 1)
        return timings

    def _prepare_record(self, host, kind):
        d = self.host_dir(host)
        layers, keys = self.cache.layers(host)
        rec = self.record(host)
        if rec and rec["layers"] != keys:
            raise FleetError(
                f"host {host}'s layer was made on cache {rec['layers']}, the cache is now {keys} "
                f"(its recipe changed): `fleet down --purge {host}` first")
        if rec is None:
            address = f"{SUBNET}.{self._allocate(host)}"
            for other in self.known_hosts():
                if self.record(other)["address"] == address:
                    raise FleetError(f"{host}: address {address} already used by {other}")
            rec = {"name": host, "address": address, "layers": keys,
                   "machine_id": uuid.uuid4().hex, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        rec["kind"] = kind
        for sub in ("upper", "work", "root"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d / "root", 0o755)
        write_atomic(d / "host.json", json.dumps(rec, indent=1))

    def _bridge_up(self):
        if not Path(f"/run/netns/{self.bridge_ns}").exists():
            sh(["ip", "netns", "add", self.bridge_ns])
            sh(["ip", "-n", self.bridge_ns, "link", "set", "lo", "up"])
            sh(["ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge",
                "stp_state", "0", "forward_delay", "0"])
            sh(["ip", "-n", self.bridge_ns, "link", "set", "br0", "up"])

    def _net_up(self, host):
        ns, addr = self.netns(host), self.address(host)
        nsfile = Path(f"/run/netns/{ns}")
        if nsfile.exists():
            # left over from a host that died: start from a fresh namespace -- unless
            # processes still use it (a host running without its state files: refuse, two
            # overlays on one upper directory would corrupt it)
            inode = nsfile.stat().st_ino
            users = [p for p in all_pids() if ns_inode(p, "net") == inode]
            if users:
                raise FleetError(f"{host}: network namespace {ns} is in use by PIDs {users[:10]} "
                                 f"but {host} is not recorded as running; stop those first")
            sh(["ip", "netns", "delete", ns])
        sh(["ip", "netns", "add", ns])
        veth = f"v-{host}"
        sh(["ip", "-n", self.bridge_ns, "link", "del", veth], check=False)
        # the pair is made in the bridge's namespace, its peer moved straight into the host's:
        # nothing appears in the machine's network namespace, even for a moment
        # eth0's MAC follows from the address: a restarted host keeps it, so the other hosts'
        # ARP caches stay right (a new MAC would leave them ~30 s on the old one)
        mac = "02:77:" + ":".join(f"{int(x):02x}" for x in addr.split("."))
        sh(["ip", "-n", self.bridge_ns, "link", "add", veth, "type", "veth",
            "peer", "name", "eth0", "address", mac, "netns", ns])
        sh(["ip", "-n", self.bridge_ns, "link", "set", veth, "master", "br0", "up"])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        sh(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0"])
        sh(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def _hosts_text(self, relay_meta):
        lines = [f"# nova-formula fleet {self.name}: every host of the fleet, and the package relay",
                 "127.0.0.1\tlocalhost",
                 "::1\t\tlocalhost ip6-localhost ip6-loopback",
                 "ff02::1\t\tip6-allnodes", "ff02::2\t\tip6-allrouters"]
        addrs = sorted((tuple(map(int, self.record(h)["address"].split("."))), h) for h in self.known_hosts())
        for addr, h in addrs:
            lines.append(f"{'.'.join(map(str, addr))}\t{h}")
        lines += Relay.hosts_lines(relay_meta)
        return "\n".join(lines) + "\n"

    def _refresh_hosts_files(self):
        """Every running host's /etc/hosts lists every host (a new host joined, one was purged)."""
        text = self._hosts_text(self.relay.load())
        for h in self.running_hosts():
            pid = self.pid1(h)
            etc = Path(f"/proc/{pid}/root/etc")
            if (etc / "hosts").read_text() != text:
                write_atomic(etc / "hosts", text)

    def _inject(self, host, relay_meta):
        """The harness-managed files of HOST, copied into its root (through the overlay) at
        each start by start-host.sh."""
        rec = self.record(host)
        d = self.host_dir(host) / "inject"
        if d.exists():
            shutil.rmtree(d)
        files = {
            "etc/hostname": f"{host}\n",
            "etc/hosts": self._hosts_text(relay_meta),
            "etc/machine-id": rec["machine_id"] + "\n",
            "etc/salt/minion.d/fleet.conf": minion_conf(host, self.address(CONTROLLER), rec["kind"]),
            "etc/init.d/salt-minion": INIT_SCRIPT.format(name="salt-minion", desc="Salt minion"),
        }
        links = {}
        if host == CONTROLLER:
            files["etc/salt/master.d/fleet.conf"] = MASTER_CONF
            files["etc/init.d/salt-master"] = INIT_SCRIPT.format(name="salt-master", desc="Salt master")
        if rec["kind"] == "systemd":
            wants = "etc/systemd/system/multi-user.target.wants"
            units = {"salt-minion.service": UNIT.format(desc="Salt minion", exe="salt-minion")}
            if host == CONTROLLER:
                units["salt-master.service"] = UNIT.format(desc="Salt master", exe="salt-master")
            for inner, sock in Relay.inner(relay_meta):
                units[f"fleet-relay-{sock.split('.')[0]}.service"] = RELAY_UNIT.format(
                    inner=inner, sock=sock)
            for unit, text in units.items():
                files[f"etc/systemd/system/{unit}"] = text
                links[f"{wants}/{unit}"] = f"/etc/systemd/system/{unit}"
        for rel, text in files.items():
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            mode = 0o755 if rel.startswith("etc/init.d/") else 0o644
            p.write_text(text)
            os.chmod(p, mode)
        for rel, target in links.items():
            p = d / rel
            p.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            p.symlink_to(target)
        for p in [d, *d.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                os.chmod(p, 0o755)
        return d

    def _start(self, host, relay_meta):
        rec = self.record(host)
        d = self.host_dir(host)
        layers, _ = self.cache.layers(host)
        kind = rec["kind"]
        self._net_up(host)
        inject = self._inject(host, relay_meta)
        init_json = d / "init.json"
        services = [["/usr/bin/socat", f"TCP-LISTEN:80,bind={inner},fork,reuseaddr",
                     f"UNIX-CONNECT:/run/fleet-relay/{sock}"] for inner, sock in Relay.inner(relay_meta)]
        init_json.write_text(json.dumps({"services": services, "grace": 10, "runlevel": "2"}))
        for f in ("pid1", "run.json"):
            with contextlib.suppress(FileNotFoundError):
                (d / f).unlink()
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
            "FLEET_HOST": host, "FLEET_KIND": kind, "FLEET_ROOT": str(d / "root"),
            "FLEET_LOWER": ":".join(map(str, layers)), "FLEET_UPPER": str(d / "upper"),
            "FLEET_WORK": str(d / "work"), "FLEET_INJECT": str(inject),
            "FLEET_PIDFILE": str(d / "pid1"), "FLEET_RELAY_DIR": str(self.relay.dir),
            "FLEET_TESTS": str(HERE.parent), "FLEET_INIT": str(HERE / "init.py"),
            "FLEET_INIT_JSON": str(init_json), "FLEET_DROP_CAPS": DROP_CAPS,
            "FLEET_CONTAINER": "nova-formula-fleet",
        }
        if host == CONTROLLER:
            env["FLEET_FORMULA"] = str(self.formula_dir())
            env["FLEET_FORMULA_PARTS"] = " ".join(FORMULA_PARTS)
            env["FLEET_PILLAR"] = str(self.pillar_dir())
        unshare = ["unshare", "--fork", "--kill-child", "--pid", "--mount", "--uts", "--ipc",
                   "--propagation", "private"]
        argv = ["nsenter", f"--net=/run/netns/{self.netns(host)}", "--"]
        if kind == "systemd":
            cg = self.cgroup_dir(host)
            if cg.exists():
                remove_cgroup(cg)
            cg.mkdir(parents=True)
            unshare.append("--cgroup")
            # the starter joins the host's cgroup *before* unshare --cgroup: the cgroup
            # namespace is rooted there
            argv = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cg)] + argv
        argv += unshare + ["/bin/bash", str(HERE / "start-host.sh")]
        logf = open(d / "console.log", "ab")
        logf.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} start ({kind})\n".encode())
        logf.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        logf.close()
        self._procs[host] = proc

    def _wait_started(self, host, timeout):
        d = self.host_dir(host)
        proc = self._procs.get(host)

        def pidfile():
            if proc is not None and proc.poll() is not None:
                raise FleetError(f"host {host} failed to start; see {d / 'console.log'}:\n" +
                                 tail(d / "console.log"))
            try:
                pid, start = map(int, (d / "pid1").read_text().split())
            except (FileNotFoundError, ValueError):
                return None
            return pid, start
        pid, start = wait_until(pidfile, 30, 0.05, f"{host}'s PID 1")
        kind = self.kind(host)

        def exec_done():
            pidfile()
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except FileNotFoundError:
                raise FleetError(f"host {host} died; see {d / 'console.log'}:\n" +
                                 tail(d / "console.log")) from None
            if kind == "systemd":
                return comm == "systemd"
            return Path(f"/proc/{pid}/root/run/fleet/ready").exists()
        wait_until(exec_done, 60, 0.05, f"{host}'s init")
        root = os.stat(f"/proc/{pid}/root")
        info = {"pid": pid, "start": start, "kind": kind,
                "ns": {n: ns_inode(pid, n) for n in ("pid", "mnt", "net", "uts", "ipc", "cgroup")},
                "root": [root.st_dev, root.st_ino],
                "outer": proc.pid if proc else None}
        write_atomic(d / "run.json", json.dumps(info, indent=1))
        if kind == "systemd":
            # the starter and its wrapper (unshare, outside the host) back to our own cgroup
            home = cgroup2_mount() / own_cgroup2_path().lstrip("/") / "cgroup.procs"
            for p in ([proc.pid] if proc else []):
                with contextlib.suppress(OSError):
                    home.write_text(str(p))
            out = wait_until(lambda: self._system_running(host), 90, 0.5, f"{host}'s systemd boot")
            if out != "running":
                failed = self.run(host, ["systemctl", "--failed", "--no-legend"]).stdout
                log(f"{host}: systemd is {out}; failed units:\n{failed}")

    def _abort_start(self, hosts):
        """Hosts that failed to start: their unshare wrapper (our child) is killed, and
        with it (--kill-child) their PID 1 and every process of theirs; netns/cgroup go."""
        for h in hosts:
            proc = self._procs.pop(h, None)
            if proc is not None and proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
            self._reap_host(h, None)
            log(f"{h}: start failed; see {self.host_dir(h) / 'console.log'}")

    def _system_running(self, host):
        out = self.run(host, ["systemctl", "is-system-running"], timeout=30).stdout.strip()
        return out if out in ("running", "degraded") else None

    # ---- salt
    def _service(self, host, name, action):
        if self.kind(host) == "systemd":
            return self.run(host, ["systemctl", action, name], timeout=120)
        return self.run(host, [f"/etc/init.d/{name}", action], timeout=120)

    def _salt_up(self, new, timeout):
        """Master first (on ctl), then the minions of the new hosts (sysvinit: init script;
        systemd hosts start theirs as a unit at boot). Minions that kept running across a
        restart of the master reconnect by themselves (eth0 keeps its MAC: see _net_up);
        one whose keys went stale (ctl or it was purged) is restarted after the cleanup."""
        ctl_up = self.is_running(CONTROLLER)
        if CONTROLLER in new:
            if self.kind(CONTROLLER) != "systemd":
                cp = self._service(CONTROLLER, "salt-master", "start")
                if cp.returncode != 0:
                    raise FleetError(f"ctl: salt-master start failed:\n{cp.stdout}{cp.stderr}")
            self.wait_master(timeout)
        jobs = []
        for h in self.running_hosts():
            stale = self._stale_keys(h) if ctl_up else False
            if h in new and self.kind(h) != "systemd":
                jobs.append((h, "restart" if stale else "start"))
            elif stale:
                jobs.append((h, "restart"))
        with concurrent.futures.ThreadPoolExecutor(max(1, len(jobs))) as pool:
            for (h, action), cp in zip(jobs, pool.map(lambda j: self._service(j[0], "salt-minion", j[1]),
                                                       jobs)):
                if cp.returncode != 0:
                    raise FleetError(f"{h}: salt-minion {action} failed:\n{cp.stdout}{cp.stderr}")

    def _stale_keys(self, host):
        """Salt keys left from an earlier life of ctl or of HOST (one was purged): HOST's
        cached master key differs from ctl's, or ctl accepted another key for HOST's id.
        The stale side is removed (salt-key -d / the cached minion_master.pub). True if any."""
        ctl = self.pid1(CONTROLLER)
        pid = self.pid1(host)
        if ctl is None or pid is None:
            return False
        stale = False
        master_pub = read_in_root(ctl, "/etc/salt/pki/master/master.pub")
        cached = read_in_root(pid, "/etc/salt/pki/minion/minion_master.pub")
        if master_pub is not None and cached is not None and cached.strip() != master_pub.strip():
            Path(f"/proc/{pid}/root/etc/salt/pki/minion/minion_master.pub").unlink()
            stale = True
        accepted = read_in_root(ctl, f"/etc/salt/pki/master/minions/{host}")
        if accepted is not None:
            mine = read_in_root(pid, "/etc/salt/pki/minion/minion.pub")
            if mine is None or mine.strip() != accepted.strip():
                self.salt(["salt-key", "-y", "-d", host], check=True)
                stale = True
        if stale:
            log(f"{host}: stale Salt keys removed (ctl or {host} was purged)")
        return stale

    def wait_master(self, timeout=120):
        """Until ctl's salt-master listens on 4505 and 4506."""
        def listening():
            pid = self.pid1(CONTROLLER)
            if pid is None:
                raise FleetError("ctl is not running")
            ports = tcp_listening(pid)
            return {4505, 4506} <= ports
        wait_until(listening, timeout, 0.2, "salt-master on ctl (ports 4505/4506)")

    def wait_minions(self, hosts=None, timeout=120):
        """Until every minion of HOSTS (default: the running hosts) answers test.ping."""
        hosts = sorted(hosts or self.running_hosts())
        last = {}

        def answered():
            nonlocal last
            last = self.salt_json(",".join(hosts), "test.ping", tgt_type="list", timeout=5)
            return all(last.get(h) is True for h in hosts)
        try:
            wait_until(answered, timeout, 1, "minions")
        except FleetError:
            raise FleetError(f"minions did not all answer test.ping within {timeout}s: {last}") from None

    def minion_stop(self, host):
        """Stop HOST's salt-minion (its init script, by pidfile; systemctl on systemd hosts)."""
        return self._service(host, "salt-minion", "stop")

    def minion_start(self, host):
        return self._service(host, "salt-minion", "start")

    # ---- support layer on ctl
    def support_up(self, mariadb_bind="127.0.0.1", timeout=1200):
        """MariaDB, RabbitMQ, memcached, then Keystone, Placement, Glance and Neutron (the
        all-in-one's tests/support/services.sh, shared) inside ctl, on ctl's address."""
        if not self.is_running(CONTROLLER):
            raise FleetError("ctl is not running")
        addr = self.address(CONTROLLER)
        env = {"FTEST_LISTEN": addr, "FTEST_ADVERTISE": addr, "FLEET_MARIADB_BIND": mariadb_bind}
        cp = self.run(CONTROLLER, ["/bin/bash", "/run/fleet/tests/fleet/support-up.sh"], env=env,
                      timeout=timeout)
        if cp.returncode != 0:
            raise FleetError(f"support-up failed ({cp.returncode}):\n{cp.stdout[-4000:]}{cp.stderr[-4000:]}")
        return cp.stdout

    def clouds_yaml(self):
        """Text of ctl's /etc/openstack/clouds.yaml (cloud nova-formula-admin; root-only)."""
        return self.run(CONTROLLER, ["cat", "/etc/openstack/clouds.yaml"], check=True).stdout

    # ---- down
    def down(self, hosts=None, purge=False, timeout=30):
        """Stop HOSTS (default: every known host): stop signal to PID 1 (SIGTERM; systemd:
        SIGRTMIN+4), SIGKILL after TIMEOUT, then check no process is left, delete the
        network namespace and the cgroup. PURGE also deletes the host's upper layer.
        When no host runs any more, the bridge and the relay go too."""
        everything = not hosts
        with flocked(self.state / "lock"):
            hosts = list(hosts) if hosts else self.known_hosts()
            infos = {h: self._runinfo(h) for h in hosts}
            signalled = {}
            for h in hosts:
                pid = self.pid1(h)
                if pid is None:
                    continue
                sig = signal.SIGRTMIN + 4 if self.kind(h) == "systemd" else signal.SIGTERM
                os.kill(pid, sig)
                signalled[h] = pid
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(self.is_running(h) for h in signalled):
                time.sleep(0.1)
            for h, pid in signalled.items():
                if self.is_running(h):
                    log(f"{h}: PID 1 ({pid}) still there after {timeout}s: SIGKILL")
                    os.kill(pid, signal.SIGKILL)
            for h in hosts:
                self._reap_host(h, infos.get(h))
            if purge:
                for h in hosts:
                    remove_tree(self.host_dir(h))
            if not self.running_hosts():
                self._bridge_down()
                self.relay.stop()
                for d in (self.run_dir, self.run_dir.parent):
                    with contextlib.suppress(OSError):
                        d.rmdir()
                with contextlib.suppress(OSError):
                    self.cgroup_dir().rmdir()
                with contextlib.suppress(OSError):
                    self.cgroup_dir().parent.rmdir()
            elif purge:
                self._refresh_hosts_files()
        if purge and everything and not self.running_hosts() and self.state.exists():
            remove_tree(self.state)           # the whole fleet: pillar, fleet.json, lock too

    def _reap_host(self, host, info):
        """After PID 1 is gone: no process of the host left, netns and cgroup deleted."""
        if info:
            proc = self._procs.pop(host, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)

            def leftovers():
                return [p for p in all_pids() if ns_inode(p, "pid") == info["ns"]["pid"]
                        or (info["ns"].get("mnt") and ns_inode(p, "mnt") == info["ns"]["mnt"])]
            try:
                wait_until(lambda: not leftovers(), 10, 0.1, f"{host}'s processes to end")
            except FleetError:
                left = leftovers()
                log(f"{host}: SIGKILL to left-over processes {left}")
                for p in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, signal.SIGKILL)
                wait_until(lambda: not leftovers(), 10, 0.1, f"{host}'s processes to end")
            outer = info.get("outer")
            if outer:
                # the unshare wrapper in the machine's PID namespace ends with PID 1
                with contextlib.suppress(FleetError):
                    wait_until(lambda: not Path(f"/proc/{outer}").exists()
                               or Path(f"/proc/{outer}/stat").read_text().split(")")[1].split()[0] == "Z",
                               10, 0.1, "unshare to exit")
        ns = self.netns(host)
        if Path(f"/run/netns/{ns}").exists():
            sh(["ip", "netns", "delete", ns])
        with contextlib.suppress(FileNotFoundError):
            cg = self.cgroup_dir(host)
            if cg.exists():
                remove_cgroup(cg)
        for f in ("run.json", "pid1"):
            with contextlib.suppress(FileNotFoundError):
                (self.host_dir(host) / f).unlink()

    def _bridge_down(self):
        if Path(f"/run/netns/{self.bridge_ns}").exists():
            sh(["ip", "netns", "delete", self.bridge_ns])

    # ---- status
    def status(self):
        out = {"name": self.name, "state": str(self.state), "formula": str(self.formula_dir()),
               "relay": self.relay.running(), "bridge": Path(f"/run/netns/{self.bridge_ns}").exists(),
               "hosts": {}}
        for h in self.known_hosts():
            rec = self.record(h)
            pid = self.pid1(h)
            entry = {"address": rec["address"], "kind": rec["kind"], "running": pid is not None,
                     "pid1": pid, "upper": du(self.upper_dir(h))}
            if pid:
                pids = self.pids(h)
                entry["processes"] = len(pids)
                entry["pss_mib"] = round(pss_kib(pids) / 1024, 1)
            out["hosts"][h] = entry
        return out

    def memory(self, host):
        """PSS of every process of HOST, in KiB."""
        return pss_kib(self.pids(host))


def read_in_root(pid, path):
    """Text of PATH as process PID sees it (through /proc/PID/root, following symlinks of
    the last component inside that root), or None if absent."""
    root = f"/proc/{pid}/root"
    for _ in range(10):
        p = Path(root + path)
        if p.is_symlink():
            target = os.readlink(p)
            path = target if target.startswith("/") else os.path.join(os.path.dirname(path), target)
            continue
        try:
            return p.read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
    return None


def tail(path, n=25):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return ""


def tcp_listening(pid):
    """TCP ports in LISTEN state in the network namespace of PID (read from the machine)."""
    ports = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as fh:
                next(fh)
                for line in fh:
                    f = line.split()
                    if f[3] == "0A":
                        ports.add(int(f[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


def remove_cgroup(path):
    """rmdir a cgroup tree bottom-up (a cgroup with processes refuses: bounded retries)."""
    path = Path(path)
    dirs = sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
    for d in [*dirs, path]:
        for _ in range(50):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise FleetError(f"cannot remove cgroup {d} (processes left?)")


def minion_conf(host, master, kind):
    text = f"""# nova-formula fleet (tests/fleet/fleet.py writes this file at each start of the host)
id: {host}
master: {master}
acceptance_wait_time: 2
acceptance_wait_time_max: 5
random_reauth_delay: 0
log_level_logfile: info
"""
    if kind != "systemd":
        # systemctl exists but systemd is not PID 1: without this Salt loads systemd_service
        # in "offline" mode and service states silently do nothing (see the README)
        text += "disable_modules:\n  - systemd_service\n"
    return text


MASTER_CONF = r"""# nova-formula fleet (tests/fleet/fleet.py writes this file at each start of ctl)
interface: 0.0.0.0
auto_accept: True
worker_threads: 4
file_roots:
  base:
    - /srv/formula
pillar_roots:
  base:
    - /srv/pillar
file_ignore_regex:
  - '(^|/)\.git($|/)'
  - '(^|/)\.venv($|/)'
  - '(^|/)\.cache($|/)'
  - '(^|/)\.hypothesis($|/)'
  - '(^|/)\.pytest_cache($|/)'
  - '(^|/)__pycache__($|/)'
file_ignore_glob:
  - '*.pyc'
"""

INIT_SCRIPT = r"""#!/bin/sh
### BEGIN INIT INFO
# Provides:          {name}
# Required-Start:    $remote_fs $network
# Required-Stop:     $remote_fs $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: {desc} (/opt/salt, nova-formula fleet)
### END INIT INFO
# Written by tests/fleet/fleet.py. Stops and checks by pidfile only.
NAME={name}
DAEMON=/opt/salt/bin/$NAME
PIDFILE=/run/$NAME.pid
. /lib/lsb/init-functions

case "$1" in
start)
    log_daemon_msg "Starting {desc}" "$NAME"
    # salt daemonizes itself (-d) and writes $PIDFILE
    start-stop-daemon --start --quiet --oknodo --pidfile "$PIDFILE" \
        --exec /opt/salt/bin/python3 --startas "$DAEMON" -- -d
    log_end_msg $?
    ;;
stop)
    log_daemon_msg "Stopping {desc}" "$NAME"
    start-stop-daemon --stop --quiet --oknodo --pidfile "$PIDFILE" \
        --exec /opt/salt/bin/python3 --retry TERM/15/KILL/5
    rc=$?
    rm -f "$PIDFILE"
    log_end_msg $rc
    ;;
restart|force-reload)
    "$0" stop
    "$0" start
    ;;
status)
    status_of_proc -p "$PIDFILE" /opt/salt/bin/python3 "$NAME"
    ;;
*)
    echo "Usage: $0 {{start|stop|restart|force-reload|status}}" >&2
    exit 3
    ;;
esac
"""

UNIT = """# Written by tests/fleet/fleet.py (nova-formula fleet)
[Unit]
Description={desc} (/opt/salt, nova-formula fleet)
After=network.target

[Service]
Type=simple
ExecStart=/opt/salt/bin/{exe}
KillMode=process
Restart=on-failure
LimitNOFILE=8192

[Install]
WantedBy=multi-user.target
"""

RELAY_UNIT = """# Written by tests/fleet/fleet.py: the package relay inside this host
[Unit]
Description=Package relay {inner}:80 -> /run/fleet-relay/{sock} (nova-formula fleet)

[Service]
ExecStart=/usr/bin/socat TCP-LISTEN:80,bind={inner},fork,reuseaddr UNIX-CONNECT:/run/fleet-relay/{sock}
Restart=always

[Install]
WantedBy=multi-user.target
"""


# ------------------------------------------------------------------ CLI

def main(argv=None):
    p = argparse.ArgumentParser(prog="fleet", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", default=None,
                   help=f"default $FLEET_STATE_DIR or {STATE_ROOT}/NAME")
    p.add_argument("--name", default=None, help=f"fleet name, prefix of its namespaces (default {FLEET_NAME})")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the cached layers (base, ctl) if their recipe changed")
    b.add_argument("--no-ctl", action="store_true")
    b.add_argument("--gc", action="store_true",
                   help="delete cache entries of other recipes (not used by this fleet's hosts)")
    u = sub.add_parser("up", help="start hosts (default: ctl cmp1 cmp2); running ones are left alone")
    u.add_argument("hosts", nargs="*")
    u.add_argument("--systemd", action="append", default=[], metavar="HOST",
                   help="run HOST with systemd as PID 1 (repeatable)")
    u.add_argument("--formula", help="checkout bind-mounted read-only at /srv/formula on ctl "
                                     "(default: the repository of this harness)")
    u.add_argument("--support", action="store_true", help="then support-up")
    u.add_argument("--no-wait", action="store_true", help="do not wait for the minions")
    d = sub.add_parser("down", help="stop hosts (default: all)")
    d.add_argument("hosts", nargs="*")
    d.add_argument("--purge", action="store_true", help="also delete their upper layers")
    e = sub.add_parser("enter", help="a shell, or COMMAND, inside HOST")
    e.add_argument("host")
    e.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("status", help="hosts, PIDs, memory (PSS)")
    s = sub.add_parser("support-up", help="MariaDB, RabbitMQ, Keystone, Placement, Glance, Neutron in ctl")
    s.add_argument("--mariadb-bind", default="127.0.0.1")
    for name in ("minion-stop", "minion-start"):
        m = sub.add_parser(name, help=f"{name.split('-')[1]} HOST's salt-minion (by pidfile)")
        m.add_argument("host")
    args = p.parse_args(argv)
    fleet = Fleet(args.state_dir, args.name)
    try:
        if args.cmd == "build":
            t = time.monotonic()
            timings = fleet.cache.ensure(("cmp1",) if args.no_ctl else DEFAULT_HOSTS)
            removed = []
            if args.gc:
                in_use = {k for h in fleet.known_hosts() for k in fleet.record(h)["layers"]}
                removed = fleet.cache.gc(in_use)
            print(json.dumps({"built": timings, "seconds": round(time.monotonic() - t, 1),
                              "cache": fleet.cache.entries(), "removed": removed}, indent=1))
        elif args.cmd == "up":
            timings = fleet.up(args.hosts or DEFAULT_HOSTS, systemd=args.systemd, formula=args.formula,
                               wait_minions=not args.no_wait, support=args.support)
            print(json.dumps(timings))
        elif args.cmd == "down":
            t = time.monotonic()
            fleet.down(args.hosts or None, purge=args.purge)
            print(json.dumps({"down": round(time.monotonic() - t, 1)}))
        elif args.cmd == "enter":
            cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
            fleet.enter(args.host, cmd or None)
        elif args.cmd == "status":
            print(json.dumps(fleet.status(), indent=1))
        elif args.cmd == "support-up":
            t = time.monotonic()
            sys.stdout.write(fleet.support_up(args.mariadb_bind))
            print(json.dumps({"support-up": round(time.monotonic() - t, 1)}))
        elif args.cmd in ("minion-stop", "minion-start"):
            cp = (fleet.minion_stop if args.cmd == "minion-stop" else fleet.minion_start)(args.host)
            sys.stdout.write(cp.stdout + cp.stderr)
            return cp.returncode
    except FleetError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
