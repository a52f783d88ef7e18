"""Tests of the fleet harness itself (tests/fleet/fleet.py), on real namespaces.

A fleet of its own (name "nfharn", state /var/lib/nova-formula-fleet/nfharn, fresh upper
layers) is brought up for this module: ctl, cmp1, cmp2 with init scripts, the support layer
in ctl, then cmp3 with systemd as PID 1 joins the running fleet. The last test takes it all
down and proves nothing of it is left on the machine, and that nothing else was stopped.
Needs root; builds the cache first if its recipe changed (mmdebstrap: minutes). Any
missing piece is a failure, never a skip.
"""
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fleet as fleetmod  # noqa: E402
from fleet import Fleet  # noqa: E402

NAME = "nfharn"
HOSTS = ("ctl", "cmp1", "cmp2")
SUPPORT = Path(__file__).resolve().parent.parent / "support"


# ------------------------------------------------------------------ machine-side probes

def ns_of(pid, ns):
    return fleetmod.ns_inode(pid, ns)


def machine_ns(ns):
    return ns_of(os.getpid(), ns)


def netns_list():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def machine_links():
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return out


def machine_listeners():
    """(proto, local address) of every listening TCP socket and bound UDP socket of the
    machine's network namespace, with the socket inode."""
    found = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/net/{proto}") as fh:
            next(fh)
            for line in fh:
                f = line.split()
                if proto.startswith("tcp") and f[3] != "0A":
                    continue
                found[int(f[9])] = (proto, f[1])
    return found


def socket_inodes(pid):
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.fullmatch(r"socket:\[(\d+)\]", link)
            if m:
                inodes.add(int(m.group(1)))
    except FileNotFoundError:
        pass
    return inodes


def hex_addr(local):
    """'0B004D0A:0050' (from /proc/net/tcp) -> '10.77.0.11' (IPv4; IPv6 as hex)."""
    addr = local.split(":")[0]
    if len(addr) != 8:
        return addr
    return ".".join(str(b) for b in reversed(bytes.fromhex(addr)))


def pids_by_comm(comm):
    """Processes named COMM in the machine's own PID namespace (for before/after checks)."""
    mine = machine_ns("pid")
    out = []
    for pid in fleetmod.all_pids():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm and ns_of(pid, "pid") == mine:
                out.append((pid, fleetmod.proc_start_time(pid)))
        except FileNotFoundError:
            pass
    return sorted(out)


def dev_null_ok():
    st = os.stat("/dev/null")
    return (stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
            and stat.S_IMODE(st.st_mode) == 0o666 and st.st_uid == 0 and st.st_gid == 0)


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def machine():
    """The machine before the fleet, plus decoys the teardown must not touch: a process
    whose command line names the hosts' daemons, and a PID 1 of another PID namespace."""
    assert os.geteuid() == 0, "the fleet needs root"
    decoys = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1800)", "salt-minion",
                          "salt-master", "init.py", "socat", f"{NAME}-cmp1", "systemd"],
                         start_new_session=True),
        subprocess.Popen(["unshare", "--fork", "--pid", "--mount-proc", "sleep", "1800"],
                         start_new_session=True),
    ]
    snap = {
        "netns": netns_list(),
        "links": machine_links(),
        "listeners": machine_listeners(),
        "mariadbd": pids_by_comm("mariadbd"),
        "beam.smp": pids_by_comm("beam.smp"),
        "dev_null_ok": dev_null_ok(),
        "decoys": [(p.pid, fleetmod.proc_start_time(p.pid)) for p in decoys],
    }
    yield snap
    for p in decoys:                     # ours: by PID
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)


@pytest.fixture(scope="module")
def fl(machine):
    f = Fleet(name=NAME)
    f.down(purge=True)                   # what an interrupted earlier run of this module left
    t = time.monotonic()
    try:
        f.timings = f.up(HOSTS)
        t_support = time.monotonic()
        f.support_out = f.support_up()
    except BaseException:
        f.down(purge=True)
        raise
    f.timings["support-up"] = round(time.monotonic() - t_support, 1)
    f.timings["up+support"] = round(time.monotonic() - t, 1)
    print(f"\nfleet {NAME} timings: {json.dumps(f.timings)}")
    yield f
    f.down(purge=True)


def ok(f, host, argv, **kw):
    cp = f.run(host, argv, **kw)
    assert cp.returncode == 0, f"[{host}] {argv}: {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
    return cp.stdout


# ------------------------------------------------------------------ tests

def test_support_scripts_default_to_loopback():
    """services.sh/ftest_helper.py with no FTEST_* set behave as before (127.0.0.1)."""
    script = (SUPPORT / "services.sh").read_text()
    body = re.search(r"^bind_listen\(\) \{.*?^\}", script, re.S | re.M).group(0)
    prog = 'OUT=$(mktemp -d); ' + body.replace("/etc/default/", "$OUT/") + \
        '\nbind_listen keystone 5000 /etc/keystone/keystone-uwsgi.ini; cat "$OUT/keystone"; rm -r "$OUT"'
    default = subprocess.run(["bash", "-c", "LISTEN=127.0.0.1\n" + prog], capture_output=True,
                             text=True, check=True).stdout
    assert default == ("# Written by nova-formula tests/support/services.sh: listen on loopback only.\n"
                       'DAEMON_ARGS="--http-socket 127.0.0.1:5000 --ini /etc/keystone/keystone-uwsgi.ini"\n')
    fleet_ctl = subprocess.run(["bash", "-c", "LISTEN=10.77.0.10\n" + prog], capture_output=True,
                               text=True, check=True).stdout
    assert "--http-socket 10.77.0.10:5000" in fleet_ctl and "listen on 10.77.0.10 only" in fleet_ctl
    assert "LISTEN=${FTEST_LISTEN:-127.0.0.1}" in script
    assert "ADVERTISE=${FTEST_ADVERTISE:-$LISTEN}" in script
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTEST_")}
    url = subprocess.run(["/usr/bin/python3", "-c", "import ftest_helper as h; print(h.KEYSTONE_URL)"],
                         cwd=SUPPORT, env=env, capture_output=True, text=True, check=True).stdout
    assert url.strip() == "http://127.0.0.1:5000/v3"


def test_hosts_have_their_own_namespaces(fl):
    seen = {ns: {machine_ns(ns)} for ns in ("pid", "mnt", "net", "uts", "ipc")}
    for h in HOSTS:
        pid1 = fl.pid1(h)
        assert pid1, f"{h} is not running"
        assert fleetmod.proc_nspid(pid1)[-1] == 1
        for ns in seen:
            inode = ns_of(pid1, ns)
            assert inode not in seen[ns], f"{h} shares its {ns} namespace"
            seen[ns].add(inode)
        assert ok(fl, h, ["hostname"]).strip() == h
        assert ok(fl, h, ["cat", "/etc/hostname"]).strip() == h
        cmdline = ok(fl, h, ["cat", "/proc/1/cmdline"]).split("\0")
        assert cmdline[:2] == ["/usr/bin/python3", "/run/fleet/init.py"], cmdline
        assert ok(fl, h, ["runlevel"]).strip() == "N 2"
        addrs = ok(fl, h, ["ip", "-o", "-4", "addr", "show"])
        assert f"inet {fl.address(h)}/24" in addrs and "eth0" in addrs
        assert ok(fl, h, ["ip", "route"]).strip() == "10.77.0.0/24 dev eth0 proto kernel scope link src " + fl.address(h)
        # the host's / is its overlay; nothing of the machine's tree is mounted in it
        mounts = ok(fl, h, ["cat", "/proc/self/mountinfo"])
        assert re.search(r" / / .* - overlay overlay ", mounts), mounts
        # PID 1 reaps, and the environment of a command is the host's, not the machine's
        env = ok(fl, h, ["env"])
        assert "PIP_" not in env and "VIRTUAL_ENV" not in env and "PATH=/usr/local/sbin:" in env
    # PID 1 drains /run/initctl (telinit returns at once: pitfall 3) and reaps orphans
    t = time.monotonic()
    ok(fl, "cmp1", ["telinit", "u"], timeout=30)
    assert time.monotonic() - t < 5
    ok(fl, "cmp1", ["bash", "-c", "(sleep 0.2 &); sleep 1.5"])
    states = ok(fl, "cmp1", ["ps", "-eo", "stat="]).split()
    assert not [s for s in states if s.startswith("Z")], states
    machine_ids = {ok(fl, h, ["cat", "/etc/machine-id"]).strip() for h in HOSTS}
    assert len(machine_ids) == len(HOSTS) and all(len(m) == 32 for m in machine_ids)


def test_machine_sees_no_host_mount(fl):
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert str(fl.state) not in mountinfo
    assert fleetmod.CACHE_DIR.as_posix() not in mountinfo
    # only ip-netns's own nsfs bind mounts, one per namespace of ours
    ours = [line for line in mountinfo.splitlines() if f"/run/netns/{NAME}-" in line]
    assert len(ours) == len(HOSTS) + 1, ours


def test_device_nodes_are_the_hosts_own(fl):
    for h in HOSTS:
        out = ok(fl, h, ["stat", "-c", "%n %F %t:%T %a", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/tty"])
        assert out.split("\n")[0] == "/dev/null character special file 1:3 666"
        mounts = ok(fl, h, ["findmnt", "-rno", "TARGET,FSTYPE", "-T", "/dev/null"])
        assert mounts.strip() == "/dev tmpfs"       # a node on the host's tmpfs, not a bind mount
    assert dev_null_ok()


def test_etc_hosts_lists_every_host(fl):
    for h in HOSTS:
        text = ok(fl, h, ["cat", "/etc/hosts"])
        for other in HOSTS:
            assert re.search(rf"^{re.escape(fl.address(other))}\t{other}$", text, re.M), (h, text)
        assert re.search(r"^127\.0\.0\.53\t.*deb\.debian\.org", text, re.M)
    assert ok(fl, "cmp1", ["getent", "hosts", "cmp2"]).split()[0] == fl.address("cmp2")


def test_ping_between_hosts_over_the_bridge(fl):
    for src, dst in (("cmp1", "ctl"), ("cmp2", "cmp1"), ("ctl", "cmp2")):
        ok(fl, src, ["ping", "-c", "2", "-W", "3", dst])
    # and nowhere else: no default route, the machine's addresses are unreachable
    cp = fl.run("cmp1", ["ping", "-c", "1", "-W", "1", "8.8.8.8"])
    assert cp.returncode != 0


def test_apt_through_the_package_relay(fl):
    out = ok(fl, "cmp2", ["apt-get", "update"], timeout=600)
    assert "bookworm-security" in out and "bookworm-updates" in out, out
    ok(fl, "cmp2", ["apt-get", "install", "-y", "--no-install-recommends", "hello"], timeout=600)
    assert ok(fl, "cmp2", ["hello"]).strip() == "Hello, world!"
    assert (fl.upper_dir("cmp2") / "usr/bin/hello").exists()
    assert fl.run("cmp1", ["hello"]).returncode != 0          # cmp2's layer only
    # a relay that died is replaced by the next `up`, in the directory the hosts mounted
    for p in fl.relay.load()["procs"]:
        os.killpg(p["pid"], signal.SIGTERM)              # ours: its own process group
    fleetmod.wait_until(lambda: not fl.relay.running(), 10, 0.1, "relay to stop")
    fl.up(HOSTS)
    assert fl.relay.running()
    # both mirror names go through the relay (same front here, or one relay each)
    for url in ("http://deb.debian.org/debian/dists/bookworm-updates/InRelease",
                "http://security.debian.org/debian-security/dists/bookworm-security/InRelease"):
        assert ok(fl, "cmp1", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url]) == "200", url


def test_nova_debs_cached_not_installed(fl):
    debs = ok(fl, "cmp1", ["ls", "/var/cache/apt/archives"])
    for version in ("2:26.2.2-1~deb12u4", "2:26.2.2-1~deb12u5"):
        v = version.replace(":", "%3a")
        for pkg in ("nova-common", "nova-api", "nova-conductor", "nova-scheduler", "nova-compute",
                    "nova-compute-kvm", "nova-consoleproxy"):
            assert f"{pkg}_{v}_all.deb" in debs, (pkg, version)
    for h in HOSTS:
        status = fl.run(h, ["dpkg-query", "-W", "-f=${db:Status-Status}", "nova-common"]).stdout
        assert status != "installed"
        assert fl.run(h, ["test", "-e", "/usr/sbin/policy-rc.d"]).returncode == 1, h
    assert ok(fl, "cmp1", ["/opt/salt/bin/salt-call", "--version"]).split()[1] == "3008.4"


def test_master_sees_every_minion(fl):
    fl.wait_minions(HOSTS, timeout=120)
    keys = json.loads(fl.salt(["salt-key", "-L", "--out=json"], check=True).stdout)
    assert sorted(keys["minions"]) == sorted(HOSTS)
    ping = fl.salt_json("*", "test.ping")
    assert ping == {h: True for h in HOSTS}
    providers = fl.salt_json("*", "test.provider", "service")
    assert providers == {h: "debian_service" for h in HOSTS}


def test_formula_and_pillar_on_the_master(fl):
    files = json.loads(fl.salt(["salt-run", "--out=json", "fileserver.file_list"], check=True).stdout)
    assert "nova/init.sls" in files and "_states/openstack_ini.py" in files
    assert not any(f.startswith((".git/", ".venv/")) for f in files)
    assert fl.run("ctl", ["touch", "/srv/formula/x"]).returncode != 0     # read-only
    pillar = fl.pillar_dir()
    (pillar / "top.sls").write_text("base:\n  'cmp1':\n    - probe\n")
    (pillar / "probe.sls").write_text("fleet_probe: 42\n")
    try:
        fl.salt_json("cmp1", "saltutil.refresh_pillar")
        # (Salt 3008 masks pillar values in its output: check the keys)
        assert "fleet_probe" in fl.salt_json("cmp1", "pillar.ls")["cmp1"]
        assert "fleet_probe" not in fl.salt_json("cmp2", "pillar.ls")["cmp2"]
    finally:
        (pillar / "top.sls").unlink()
        (pillar / "probe.sls").unlink()


def test_support_layer_answers_from_a_compute(fl):
    ctl = fl.address("ctl")
    for port, path in ((5000, "/v3"), (8778, "/"), (9292, "/"), (9696, "/")):
        code = ok(fl, "cmp1", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{ctl}:{port}{path}"])
        assert 200 <= int(code) < 500, (port, code)
    version = json.loads(ok(fl, "cmp1", ["curl", "-s", f"http://{ctl}:5000/v3"]))
    assert version["version"]["id"].startswith("v3")
    probe = "exec 3<>/dev/tcp/{}/{} && echo open"
    assert ok(fl, "cmp1", ["bash", "-c", probe.format(ctl, 5672)]).strip() == "open"      # RabbitMQ
    assert ok(fl, "cmp1", ["bash", "-c", probe.format(ctl, 11211)]).strip() == "open"     # memcached
    assert fl.run("cmp1", ["bash", "-c", probe.format(ctl, 3306)]).returncode != 0      # MariaDB: ctl only
    assert ok(fl, "ctl", ["bash", "-c", probe.format("127.0.0.1", 3306)]).strip() == "open"
    # the admin credentials from ctl's clouds.yaml work from a compute (password on stdin)
    import yaml
    auth = yaml.safe_load(fl.clouds_yaml())["clouds"]["nova-formula-admin"]["auth"]
    assert auth["auth_url"] == f"http://{ctl}:5000/v3"
    body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": auth["username"], "domain": {"name": "Default"}, "password": auth["password"]}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    code = ok(fl, "cmp1", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                           "Content-Type: application/json", "--data-binary", "@-",
                           f"http://{ctl}:5000/v3/auth/tokens"], input=body)
    assert code == "201"
    endpoints = ok(fl, "ctl", ["env", "OS_CLOUD=nova-formula-admin", "openstack", "endpoint", "list",
                               "-f", "value", "-c", "URL"])
    assert endpoints and all(f"//{ctl}:" in url for url in endpoints.split())


def test_no_secret_on_any_argv(fl):
    state = fl.upper_dir("ctl") / "var/lib/nova-formula-tests"
    secrets = [p.read_text().strip() for p in state.glob("*.password")]
    assert len(secrets) >= 8
    for pid in fleetmod.all_pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for s in secrets:
            assert s not in argv, f"a secret on the argv of PID {pid}"


def test_minion_stop_start_by_pidfile(fl, machine):
    before = {h: fl.pids(h) for h in HOSTS}
    cp = fl.minion_stop("cmp2")
    assert cp.returncode == 0, cp.stderr
    assert fl.run("cmp2", ["test", "-e", "/run/salt-minion.pid"]).returncode == 1
    assert fl.run("cmp2", ["pgrep", "-f", "salt-minion"]).returncode == 1
    assert fl.salt_json("cmp1,cmp2", "test.ping", tgt_type="list", timeout=5).get("cmp2") is not True
    # the other hosts and the machine's look-alike process are untouched
    for h in ("ctl", "cmp1"):
        assert set(before[h]) <= set(fl.pids(h)), h
    assert all(fleetmod.proc_alive(p, s) for p, s in machine["decoys"])
    cp = fl.minion_start("cmp2")
    assert cp.returncode == 0, cp.stderr
    fl.wait_minions(HOSTS, timeout=90)


def test_up_is_idempotent(fl):
    before = {h: fl.pid1(h) for h in HOSTS}
    minion = fl.run("cmp1", ["cat", "/run/salt-minion.pid"]).stdout
    timings = fl.up(HOSTS)
    assert {h: fl.pid1(h) for h in HOSTS} == before
    assert fl.run("cmp1", ["cat", "/run/salt-minion.pid"]).stdout == minion
    assert "hosts started" in timings and timings["hosts started"] < 2


def test_systemd_host_joins_the_running_fleet(fl):
    t = time.monotonic()
    fl.up(["cmp3"], systemd=["cmp3"])
    fl.timings["cmp3 (systemd) joined"] = round(time.monotonic() - t, 1)
    assert ok(fl, "cmp3", ["systemctl", "is-system-running"]).strip() == "running"
    assert ok(fl, "cmp3", ["cat", "/proc/1/comm"]).strip() == "systemd"
    assert ok(fl, "cmp3", ["systemctl", "is-active", "salt-minion"]).strip() == "active"
    assert fl.run("cmp3", ["systemctl", "is-active", "ssh"]).stdout.strip() != "active"
    assert ok(fl, "cmp3", ["hostname"]).strip() == "cmp3"
    fl.wait_minions([*HOSTS, "cmp3"], timeout=120)
    assert fl.salt_json("cmp3", "test.provider", "service") == {"cmp3": "systemd_service"}
    assert fl.salt_json("cmp3", "grains.get", "init") == {"cmp3": "systemd"}
    # Salt acts on units there: stop/start a unit through the service module
    assert fl.salt_json("cmp3", "service.status", "dbus") == {"cmp3": True}
    # the running hosts learnt the new name
    for h in HOSTS:
        assert f"{fl.address('cmp3')}\tcmp3" in ok(fl, h, ["cat", "/etc/hosts"])
    ok(fl, "cmp1", ["ping", "-c", "1", "-W", "3", "cmp3"])
    # its cgroup namespace is rooted in a cgroup of ours; systemd manages below it
    cg = fl.cgroup_dir("cmp3")
    assert (cg / "init.scope").is_dir()
    assert ok(fl, "cmp3", ["cat", "/proc/1/cgroup"]).strip().endswith("0::/init.scope")
    assert dev_null_ok(), "the machine's /dev/null changed"


def test_cli_enter_runs_a_command_inside_the_host(fl):
    """`fleet enter HOST -- COMMAND` (the README's way in): the command runs in
    the host's own namespaces and root, and its exit code comes back."""
    cli = [str(Path(__file__).resolve().parent / "fleet"), "--name", NAME, "enter", "cmp1", "--"]
    cp = subprocess.run(cli + ["sh", "-c", "hostname; exit 7"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 7, cp.stderr
    assert cp.stdout.split() == ["cmp1"], cp.stdout
    inside = subprocess.run(cli + ["readlink", "/proc/self/ns/pid"], capture_output=True,
                            text=True, timeout=60).stdout.strip()
    assert inside and inside != os.readlink("/proc/self/ns/pid"), inside


def test_memory_per_host(fl):
    pss = {h: round(fl.memory(h) / 1024, 1) for h in [*HOSTS, "cmp3"]}
    print(f"\nPSS MiB per host: {json.dumps(pss)}")
    fl.timings["pss_mib"] = pss
    assert all(v > 0 for v in pss.values())
    assert pss["cmp1"] < 400 and pss["cmp3"] < 400 and pss["ctl"] < 3000


def test_down_keeps_the_upper_layer_purge_deletes_it(fl):
    ok(fl, "cmp1", ["bash", "-c", "echo kept > /root/marker"])
    fl.down(["cmp1"])
    assert not fl.is_running("cmp1")
    assert f"{NAME}-cmp1" not in netns_list()
    assert (fl.upper_dir("cmp1") / "root/marker").read_text() == "kept\n"
    assert all(fl.is_running(h) for h in ("ctl", "cmp2", "cmp3"))
    fl.up(["cmp1"])
    assert ok(fl, "cmp1", ["cat", "/root/marker"]) == "kept\n"
    fl.down(["cmp1"], purge=True)
    assert not fl.host_dir("cmp1").exists()
    fl.up(["cmp1"])                       # a fresh host, new keys: the master accepts it
    assert fl.run("cmp1", ["test", "-e", "/root/marker"]).returncode == 1
    fl.wait_minions(["ctl", "cmp1", "cmp2", "cmp3"], timeout=120)


def test_down_leaves_nothing_and_stops_nothing_else(fl, machine):
    hosts = fl.known_hosts()
    infos = {h: fl._runinfo(h) for h in hosts}
    assert all(infos.values())
    relay = fl.relay.load()
    relay_pids = [p["pid"] for p in relay["procs"]]
    relay_inodes = set().union(*(socket_inodes(p) for p in relay_pids))
    # the relay never listens on the machine's network: only its UNIX socket
    listeners = machine_listeners()
    assert not relay_inodes & set(listeners)
    for inode in set(listeners) - set(machine["listeners"]):
        assert not hex_addr(listeners[inode][1]).startswith("10.77."), listeners[inode]
    t = time.monotonic()
    fl.down()
    fl.timings["down (4 hosts)"] = round(time.monotonic() - t, 1)
    print(f"\nfleet {NAME} timings: {json.dumps(fl.timings)}")

    # no mount
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert str(fl.state) not in mountinfo and f"/run/netns/{NAME}-" not in mountinfo
    # no network namespace
    assert not {n for n in netns_list() if n.startswith(f"{NAME}-")}
    # no process: none in the hosts' PID/mount/network namespaces, none with a host's root,
    # not the unshare wrappers, not the relay
    pid_ns = {i["ns"]["pid"] for i in infos.values()}
    mnt_ns = {i["ns"]["mnt"] for i in infos.values()}
    net_ns = {i["ns"]["net"] for i in infos.values()}
    roots = {tuple(i["root"]) for i in infos.values()}
    outer = {i["outer"] for i in infos.values() if i.get("outer")}
    left = []
    for pid in fleetmod.all_pids():
        try:
            st = os.stat(f"/proc/{pid}/root")
        except (FileNotFoundError, ProcessLookupError):
            continue
        except PermissionError:          # e.g. the machine's own PID 1: not inspectable, not ours
            assert pid not in outer and pid not in relay_pids
            continue
        if (ns_of(pid, "pid") in pid_ns or ns_of(pid, "mnt") in mnt_ns or ns_of(pid, "net") in net_ns
                or (st.st_dev, st.st_ino) in roots):
            left.append(pid)
    assert not left, f"processes of the fleet left: {left}"
    for pid in outer | set(relay_pids):
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z", pid
    assert not fl.relay.dir.exists()
    # no cgroup
    assert not fl.cgroup_dir().exists()
    # the machine's network namespace is as it was: no fleet link, no fleet address
    links = machine_links()
    assert "02:77:0a:4d" not in links and " v-" not in links
    addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert "10.77.0." not in addrs
    # nothing else was stopped: the decoys, the machine's MariaDB and RabbitMQ
    for pid, start in machine["decoys"]:
        assert fleetmod.proc_alive(pid, start), f"decoy {pid} was stopped"
    for comm in ("mariadbd", "beam.smp"):
        before = set(machine[comm])
        assert before <= set(pids_by_comm(comm)), f"the machine's {comm} was stopped"
    assert dev_null_ok()
    # the upper layers are kept by down, deleted by purge, never through a mount: with
    # something mounted under a host's folder, purge refuses and deletes nothing
    assert fl.upper_dir("ctl").is_dir()
    probe = fl.host_dir("cmp2") / "root"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "fleet-probe", str(probe)], check=True)
    try:
        (probe / "keep").write_text("x")
        with pytest.raises(fleetmod.FleetError, match="still mounted"):
            fl.down(["cmp2"], purge=True)
        assert (probe / "keep").exists() and fl.upper_dir("cmp2").is_dir()
    finally:
        subprocess.run(["umount", str(probe)], check=True)
    fl.down(purge=True)
    assert not fl.state.exists()
