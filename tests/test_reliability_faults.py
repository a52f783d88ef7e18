"""Faults during a real ``salt-call --local state.apply``: each gives a failed
state with a clear comment (no traceback), nothing half-written, and the next
apply after the fault is gone converges, changing only what the fault stopped;
the one after that changes nothing.

- No space left: an openstack_ini state on a file in a 64 KiB tmpfs mounted
  here (the engine's own kill/ENOSPC/read-only tests are in
  tests/test_openstack_ini_unit.py).
- MariaDB stopped: a private mariadbd (own datadir, socket and port) is
  stopped by a state in the middle of an SLS of openstack_db states.
- Keystone stopped: the identity states reach the real Keystone through a
  TCP forwarder that a state kills in the middle of the SLS.
- RabbitMQ stopped: the formula never talks to the broker (it writes
  transport_url; Nova's services connect and retry by themselves), so a dead
  broker must neither fail nor slow the config apply, and the URL written
  while it was down works once it is back (through a forwarder to the shared
  broker, which is never stopped).
- Two applies at the same moment: the same minion (Salt refuses or queues
  the second) and two minions on the same files (the INI engine's flock
  serialises them): the file is complete and identical to a single apply.
- A compute that never registers: host discovery gives up after
  attempts x interval with a message naming the hosts.
- Permissions: a 0644 file with secrets is narrowed to 0640 root:nova, and
  reported (test=True reports and changes nothing).
"""
import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import time

import amqp
import pytest
import yaml

from formula_support import GRAINS
from harness import SALT_CALL, SaltCall
from reliability_support import (CLOUD, Db, Keystone, PrivateMariaDB, Sandbox, admin_cloud,
                                 example_pillar, free_port, group, new_tag, reap)


def _sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _no_traceback(run):
    text = run.proc.stdout + run.proc.stderr
    assert "Traceback" not in text, text[-3000:]


def _changed(run):
    return sorted(sid for sid, r in run.states.items() if r.get("changes"))


@pytest.fixture
def sc(tmp_path):
    return SaltCall(tmp_path / "minion", minion_id="ctl1", grains=GRAINS["debian12"])


# ------------------------------------------------------------------ no space left

INI_SLS = """
conf:
  openstack_ini.options_present:
    - name: {{ pillar['path'] }}
    - sections:
        DEFAULT:
          debug: true
          transport_url: {{ pillar['url'] | json }}
        database:
          connection: {{ pillar['db'] | json }}
"""


def test_no_space_left_keeps_the_file_whole_through_salt(sc, tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mnt)],
                   check=True)
    try:
        path = mnt / "nova.conf"
        # 40 KiB of commented defaults: the new copy cannot fit beside it
        body = "".join(f"# option_{i} = a commented default value here\n" for i in range(800))
        path.write_text("[DEFAULT]\n" + body + "[database]\n")
        assert 36_000 < path.stat().st_size < 48_000
        before = _sha(path)
        sc.write_sls("tiny", INI_SLS)
        sc.set_pillar({"path": str(path), "url": "rabbit://nova:s3cr%40t@mq:5672/",
                       "db": "mysql+pymysql://nova:s3cr%40t@db/nova"})
        run = sc.apply("tiny")
        _no_traceback(run)
        ret = run["conf"]
        assert ret["result"] is False and not ret["changes"]
        assert ret["comment"] == f"{path}: cannot write: No space left on device"
        assert _sha(path) == before and os.listdir(mnt) == ["nova.conf"]
        # the fault removed: room again
        subprocess.run(["mount", "-o", "remount,size=1m", str(mnt)], check=True)
        fixed = sc.apply("tiny").assert_ok()
        assert _changed(fixed) == ["conf"]
        assert set(fixed["conf"]["changes"]) == {"DEFAULT", "database"}
        assert "s3cr" not in json.dumps(fixed.raw)
        assert sorted(os.listdir(mnt)) == ["nova.conf"]
        assert not _changed(sc.apply("tiny").assert_ok())
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# ------------------------------------------------------------------ MariaDB stopped

DB_SLS = """
{%- set c = pillar['conn'] %}
db-a:
  openstack_db.database_present:
    - name: fault_a
    - connection: {{ c | json }}
{%- if pillar.get('fault') %}
stop-mariadb:
  cmd.run:
    - name: kill -TERM {{ pillar['pid'] }}; while kill -0 {{ pillar['pid'] }} 2>/dev/null; do sleep 0.1; done
{%- endif %}
db-b:
  openstack_db.database_present:
    - name: fault_b
    - connection: {{ c | json }}
user:
  openstack_db.user_present:
    - name: fault_u
    - host: '%'
    - password: {{ pillar['password'] | json }}
    - connection: {{ c | json }}
grant:
  openstack_db.grants_present:
    - name: fault_u
    - host: '%'
    - database: fault_b
    - privileges: ALL
    - connection: {{ c | json }}
"""


def test_mariadb_stopped_during_an_apply(sc, tmp_path):
    server = PrivateMariaDB(tmp_path / "mariadb")
    try:
        server.start()
        where = f"127.0.0.1:{server.port}"
        sc.write_sls("dbfault", DB_SLS)
        pillar = {"conn": {"host": "127.0.0.1", "port": server.port, "user": "root",
                           "connect_timeout": 5},
                  "password": "Fault-pw-" + new_tag(""), "pid": server.proc.pid}
        sc.set_pillar(dict(pillar, fault=True))
        run = sc.apply("dbfault")
        _no_traceback(run)
        assert run.returncode != 0
        assert run["db-a"]["result"] is True and run["db-a"]["changes"]
        assert run["stop-mariadb"]["result"] is True
        for sid in ("db-b", "user", "grant"):
            ret = run[sid]
            assert ret["result"] is False and not ret["changes"], (sid, ret)
            assert where in ret["comment"], (sid, ret["comment"])
            assert any(w in ret["comment"] for w in ("unreachable", "cannot connect", "lost")), \
                ret["comment"]
            assert pillar["password"] not in ret["comment"]
        assert server.proc.poll() is not None
        # the fault removed: the server is back
        server.start()
        sc.set_pillar(pillar)
        fixed = sc.apply("dbfault").assert_ok()
        assert _changed(fixed) == ["db-b", "grant", "user"]
        dbs = {r[0] for r in server.query("SHOW DATABASES")}
        assert {"fault_a", "fault_b"} <= dbs
        assert not _changed(sc.apply("dbfault").assert_ok())
    finally:
        server.stop()


# ------------------------------------------------------------------ Keystone stopped

FORWARDER = r"""
import socket, sys, threading
listen = socket.socket()
listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listen.bind(("127.0.0.1", int(sys.argv[1])))
listen.listen(64)
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
print("ready", flush=True)
while True:
    client, _ = listen.accept()
    try:
        upstream = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
    except OSError:
        client.close()
        continue
    for a, b in ((client, upstream), (upstream, client)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
"""


class Forwarder:
    """127.0.0.1:<port> -> 127.0.0.1:<target>, in a process of its own."""

    def __init__(self, folder, target, port=None):
        self.script = os.path.join(str(folder), "forwarder.py")
        with open(self.script, "w") as fh:
            fh.write(FORWARDER)
        self.target, self.port, self.proc = target, port or free_port(), None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, self.script, str(self.port),
                                      str(self.target)], stdout=subprocess.PIPE, text=True)
        reap(self.proc)
        assert self.proc.stdout.readline().strip() == "ready"
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


KS_SLS = """
{%- set k = pillar['ks'] %}
project:
  openstack_keystone.project_present:
    - name: {{ k.project }}
    - cloud: {{ k.cloud }}
{%- if pillar.get('fault') %}
stop-keystone:
  cmd.run:
    - name: kill -KILL {{ pillar['pid'] }}; while kill -0 {{ pillar['pid'] }} 2>/dev/null; do sleep 0.1; done
{%- endif %}
user:
  openstack_keystone.user_present:
    - name: {{ k.user }}
    - password: {{ k.password | json }}
    - default_project: {{ k.project }}
    - cloud: {{ k.cloud }}
service:
  openstack_keystone.service_present:
    - name: {{ k.service }}
    - type: {{ k.service }}
    - cloud: {{ k.cloud }}
"""


def test_keystone_stopped_during_an_apply(sc, tmp_path):
    cloud = admin_cloud()
    keystone = Keystone(cloud)
    tag = new_tag("rfk")
    fwd = Forwarder(tmp_path, 5000)
    # clouds.yaml whose auth_url goes through the forwarder (0600: it holds the
    # admin password); salt-call finds it through OS_CLIENT_CONFIG_FILE
    clouds = tmp_path / "clouds.yaml"
    moved = dict(cloud, auth=dict(cloud["auth"], auth_url=f"http://127.0.0.1:{fwd.port}/v3"))
    clouds.touch(mode=0o600)
    clouds.write_text(yaml.safe_dump({"clouds": {CLOUD: moved}}))
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds))
    ks = {"project": tag + "_p", "user": tag + "_u", "service": tag + "_s", "cloud": CLOUD,
          "password": "Fault-pw-" + new_tag("")}
    sc.write_sls("ksfault", KS_SLS)
    try:
        fwd.start()
        sc.set_pillar({"ks": ks, "fault": True, "pid": fwd.proc.pid})
        run = sc.apply("ksfault", env=env)
        _no_traceback(run)
        assert run.returncode != 0
        assert run["project"]["result"] is True and run["project"]["changes"]
        for sid in ("user", "service"):
            ret = run[sid]
            assert ret["result"] is False and not ret["changes"], (sid, ret)
            assert f"cannot reach Keystone at http://127.0.0.1:{fwd.port}/v3" in ret["comment"], \
                ret["comment"]
            assert ks["password"] not in ret["comment"]
        assert keystone.named(tag) == {"projects": [ks["project"]]}
        # the fault removed: Keystone answers again on the same address
        fwd.start()
        sc.set_pillar({"ks": ks})
        fixed = sc.apply("ksfault", env=env).assert_ok()
        assert _changed(fixed) == ["service", "user"]
        assert not _changed(sc.apply("ksfault", env=env).assert_ok())
        # the password set after the fault works (unscoped: no role was granted)
        assert keystone.token_for(KEYSTONE_URL, ks["user"], ks["password"], None)
    finally:
        fwd.stop()
        keystone.cleanup(tag)
        assert not keystone.named(tag)


KEYSTONE_URL = "http://127.0.0.1:5000/v3"


# ------------------------------------------------------------------ RabbitMQ stopped

def test_broker_down_neither_fails_nor_slows_the_config_apply(sc, tmp_path):
    """The formula only writes transport_url: with the broker unreachable the
    config converges exactly as with it up, and the URL works once it is back."""
    fwd = Forwarder(tmp_path, 5672)  # not started: the broker's address is dead
    sandbox = Sandbox(tmp_path / "etc")
    tag = new_tag("rfq")
    data = example_pillar(tag, sandbox, messaging={"port": fwd.port, "user": "guest",
                                                   "password": "guest"},
                          manage={"database": False, "identity": False})
    sc.set_pillar(data)
    try:
        start = time.monotonic()
        run = sc.apply("nova.config").assert_ok()
        assert time.monotonic() - start < 120
        assert run["nova-config-nova_conf"]["changes"]
        written = sandbox.read()
        assert f"transport_url = rabbit://guest:guest@127.0.0.1:{fwd.port}/\n" in written
        assert not _changed(sc.apply("nova.config").assert_ok())
        fwd.start()  # the broker is back
        conn = amqp.Connection(host=f"127.0.0.1:{fwd.port}", userid="guest", password="guest",
                               virtual_host="/", connect_timeout=10)
        conn.connect()
        conn.close()
    finally:
        fwd.stop()


# ------------------------------------------------------------------ concurrency

def _start_together(commands, env=None):
    """Start the commands at the same moment; return their CompletedProcess-likes."""
    barrier = threading.Barrier(len(commands))
    results = [None] * len(commands)

    def go(i, cmd):
        barrier.wait()
        results[i] = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)

    threads = [threading.Thread(target=go, args=(i, c)) for i, c in enumerate(commands)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _apply_cmd(sc, sls="nova.config"):
    return [SALT_CALL, "--local", "-c", sc.config_dir, "--out=json", "--retcode-passthrough",
            "-l", "quiet", "state.apply", sls]


@pytest.fixture
def debian_conf(debian_nova_common):
    with open(os.path.join(debian_nova_common, "nova.conf")) as fh:
        return fh.read()


def _config_pillar(tag, sandbox):
    return example_pillar(tag, sandbox, manage={"database": False, "identity": False})


def test_two_applies_at_the_same_moment(make_salt_call, tmp_path, debian_conf):
    tag = new_tag("rfc")
    # the reference: one apply alone
    ref_box = Sandbox(tmp_path / "ref", nova_conf=debian_conf)
    ref = make_salt_call(minion_id="ctl1", grains=GRAINS["debian12"])
    ref.set_pillar(_config_pillar(tag, ref_box))
    ref.apply("nova.config").assert_ok()
    wanted = ref_box.read()

    # 1. the same minion twice (one cachedir: Salt's own state-run check)
    box = Sandbox(tmp_path / "same", nova_conf=debian_conf)
    one = make_salt_call(minion_id="ctl1", grains=GRAINS["debian12"])
    one.set_pillar(_config_pillar(tag, box))
    first, second = _start_together([_apply_cmd(one), _apply_cmd(one)])
    for proc in (first, second):
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out
        if proc.returncode != 0:  # refused cleanly by Salt, never half-run
            assert 'is running as PID' in out, out[-2000:]
    assert 0 in (first.returncode, second.returncode)
    assert box.read() == wanted
    assert [f for f in os.listdir(box.folder) if f.startswith(".")] == []
    assert not _changed(one.apply("nova.config").assert_ok())

    # 2. two minions (two cachedirs) on the same files: the INI engine's lock
    box2 = Sandbox(tmp_path / "two", nova_conf=debian_conf)
    a = make_salt_call(minion_id="ctl1", grains=GRAINS["debian12"])
    b = make_salt_call(minion_id="ctl1", grains=GRAINS["debian12"])
    for m in (a, b):
        m.set_pillar(_config_pillar(tag, box2))
    runs = _start_together([_apply_cmd(a), _apply_cmd(b)])
    option_writers = 0
    for proc in runs:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        data = json.loads(proc.stdout)["local"]
        conf = next(r for r in data.values() if r["__id__"] == "nova-config-nova_conf")
        option_writers += bool(set(conf["changes"]) - {"permissions"})
    assert option_writers == 1, "both runs wrote the options: not serialised"
    assert box2.read() == wanted
    assert [f for f in os.listdir(box2.folder) if f.startswith(".")] == []
    assert not _changed(a.apply("nova.config").assert_ok())


# ------------------------------------------------------------------ discovery bound

def _discover_setup(tag, sandbox, computes, registered, attempts=3, interval=1):
    """Cell and API databases where only ``registered`` hosts ever appear; the
    formula creates the nova DB user and writes the connections; discovery
    reads them back from the sandbox nova.conf."""
    db = Db()
    db.query(f"CREATE DATABASE `{tag}`")
    db.query(f"CREATE TABLE `{tag}`.compute_nodes (host VARCHAR(255), deleted INT)")
    for host in registered:
        db.query(f"INSERT INTO `{tag}`.compute_nodes VALUES (%s, 0)", (host,))
    db.query(f"CREATE DATABASE `{tag}_api`")
    db.query(f"CREATE TABLE `{tag}_api`.host_mappings (host VARCHAR(255))")
    data = example_pillar(tag, sandbox, database={"password": "Disc-pw-" + tag},
                          manage={"identity": False, "discover": True},
                          fleet={"computes": computes,
                                 "discover": {"expect": len(computes), "attempts": attempts,
                                              "interval": interval}})
    # discovery reads the sandbox nova.conf (the formula passes its lookup
    # path); nova-manage itself is not run by the check (a stand-in binary)
    data["nova_manage"] = {"bin": "/bin/true"}
    return data


@pytest.fixture
def discover_run(sc, tmp_path):
    tag = new_tag("rfd")
    try:
        sandbox = Sandbox(tmp_path / "etc")
        sc.set_pillar(_discover_setup(tag, sandbox, ["cmp-alive", "cmp-never"], ["cmp-alive"]))
        start = time.monotonic()
        run = sc.apply("nova")
        yield run, time.monotonic() - start
    finally:
        Db().cleanup(tag)


def test_discovery_gives_up_after_its_bound(discover_run):
    run, seconds = discover_run
    _no_traceback(run)
    assert run.returncode != 0
    ret = run["nova-discover-hosts"]
    assert ret["result"] is False and not ret["changes"]
    # Salt's retry lists each attempt, then the last comment
    lines = ret["comment"].splitlines()
    assert [ln.split(":")[0] for ln in lines[:-1]] == ["Attempt 1", "Attempt 2"], lines
    assert lines[-1].startswith("1 of 2 expected compute hosts registered (cmp-alive)"), lines
    # retried attempts x interval (3 x 1 s), then gave up: bounded
    assert 2000 <= ret["duration"] < 30000, ret["duration"]
    assert seconds < 120
    others = [sid for sid, r in run.failed.items() if sid != "nova-discover-hosts"]
    assert not others, others


def test_discovery_message_names_the_missing_host(discover_run):
    # expect is a count here: fleet:computes names the computes
    run, _ = discover_run
    assert "missing: cmp-never;" in run["nova-discover-hosts"]["comment"]


def test_discovery_expecting_host_names_names_the_missing_one(sc, tmp_path):
    """expect may list the compute host names (when they are known to be the hosts nova registers)."""
    tag = new_tag("rfd")
    try:
        sandbox = Sandbox(tmp_path / "etc")
        data = _discover_setup(tag, sandbox, [], ["cmp-alive.example.org"], attempts=2)
        data["nova"]["fleet"]["discover"]["expect"] = ["cmp-alive", "cmp-never.example.org"]
        sc.set_pillar(data)
        run = sc.apply("nova")
        _no_traceback(run)
        ret = run["nova-discover-hosts"]
        assert ret["result"] is False and not ret["changes"]
        last = ret["comment"].splitlines()[-1]
        # the short name matches the FQDN nova-compute registered under
        assert last.startswith("1 of 2 expected compute hosts registered "
                               "(cmp-alive.example.org); missing: cmp-never.example.org;"), last
    finally:
        Db().cleanup(tag)


# ------------------------------------------------------------------ permissions

@pytest.fixture
def nova_gid():
    with group("nova") as gid:  # the formula's group (Nova's packages add it)
        yield gid


def test_wide_secret_file_is_narrowed_and_reported(sc, tmp_path, nova_gid):
    sandbox = Sandbox(tmp_path / "etc", mode=0o644)
    sc.set_pillar(_config_pillar(new_tag("rfp"), sandbox))
    path = sandbox.files["nova_conf"]
    before = _sha(path)
    # mode and owner have a state of their own, before the options' (so a
    # service watching the options does not restart for a mode fix)
    perms = "nova-config-nova_conf-permissions"
    dry = sc.apply("nova.config", test=True)
    ret = dry[perms]
    assert ret["result"] is None
    assert ret["changes"]["permissions"]["mode"] == {"old": "0644", "new": "0640"}
    assert (stat.S_IMODE(os.stat(path).st_mode), _sha(path)) == (0o644, before)
    run = sc.apply("nova.config").assert_ok()
    ret = run[perms]
    assert ret["changes"]["permissions"] == {"mode": {"old": "0644", "new": "0640"},
                                             "group": {"old": "root", "new": "nova"}}
    assert "mode" in ret["comment"] and "group" in ret["comment"]
    assert run.ordered.index(ret) < run.ordered.index(run["nova-config-nova_conf"])
    st = os.stat(path)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, nova_gid)
    # widened again by hand: narrowed again, and only that is reported
    os.chmod(path, 0o666)
    again = sc.apply("nova.config").assert_ok()
    assert again[perms]["changes"] == {"permissions": {"mode": {"old": "0666", "new": "0640"}}}
    assert set(again.changed) == {perms}
    assert not _changed(sc.apply("nova.config").assert_ok())
