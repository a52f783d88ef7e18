"""End to end: a working Nova all-in-one from pillar, on Debian 12's real
OpenStack Zed packages, deployed by the formula the way an operator would.

Runs the README's main job (tests/support/aio.sh) for real: Keystone,
Placement, Glance and Neutron from tests/support/, then the formula through
the real ``salt-call --local state.apply nova`` with the all-in-one pillar made
from pillar.example (compute_driver fake.FakeDriver: no KVM here), and later
through a real salt-master + minion with ``state.orchestrate nova.orch.deploy``
(a no-op here; from a bare host in tests/test_e2e_clean.py).

The module starts by removing any Nova an earlier run left (``aio.sh
reset-nova``), so it proves the same thing on a fresh machine and on one a
developer just used. Nothing here skips: a missing service is an error.

Order matters (one deploy, then checks on it), so the tests run top to bottom.
"""
import json
import os
import re
import stat
import subprocess
import time

import pymysql
import pytest
import yaml

from harness import REPO, StateRun, formula_roots

AIO = os.path.join(REPO, "tests", "support", "aio.sh")
HELPER = ["/usr/bin/python3", os.path.join(REPO, "tests", "support", "aio_helper.py")]
STATE = "/var/lib/nova-formula-tests"
AIO_DIR = os.path.join(STATE, "aio")
NOVA_CONF = "/etc/nova/nova.conf"
COMPUTE_CONF = "/etc/nova/nova-compute.conf"
# the daemons (init script names) and the formula's service state of each
DAEMONS = {"nova-api": "api", "nova-api-metadata": "metadata", "nova-novncproxy": "novncproxy",
           "nova-scheduler": "scheduler", "nova-conductor": "conductor",
           "nova-compute": "compute"}
NOVA = tuple(DAEMONS)
# daemons that read nothing of Nova's: they must never restart
SUPPORT = {"keystone": "/run/keystone/keystone.pid",
           "placement-api": "/run/placement/placement-api.pid",
           "glance-api": "/run/glance/glance-api.pid",
           "neutron-api": "/run/neutron/neutron-server.pid"}
SERVICE_IDS = {f"nova-service-{svc}" for svc in DAEMONS.values()}
TIMINGS = {}



def aio(*args, timeout=2400, check=True):
    """Run ``aio.sh ARGS``; return the CompletedProcess (fails the test with
    the output's tail on a non-zero exit)."""
    start = time.monotonic()
    proc = subprocess.run(["bash", AIO, *args], capture_output=True, text=True,
                          timeout=timeout)
    proc.seconds = time.monotonic() - start
    if check and proc.returncode != 0:
        pytest.fail(f"aio.sh {' '.join(args)} exited {proc.returncode}:\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def apply(*args):
    """``aio.sh apply ARGS`` (salt-call --local state.apply nova); the parsed run."""
    proc = aio("apply", *args, check=False)
    with open(os.path.join(AIO_DIR, "last-apply.json")) as fh:
        data = json.load(fh)["local"]
    assert isinstance(data, dict), proc.stdout + proc.stderr
    run = StateRun(proc.returncode, data, proc)
    run.seconds = proc.seconds
    return run


def root_sql(statement):
    conn = pymysql.connect(unix_socket="/run/mysqld/mysqld.sock", user="root", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def secret(name):
    with open(os.path.join(STATE, f"{name}.password")) as fh:
        return fh.read().strip()


def pid_of(pidfile):
    """The live PID in ``pidfile`` (None when absent or dead)."""
    try:
        with open(pidfile) as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def nova_pids():
    return {name: pid_of(f"/run/nova/{name}.pid") for name in NOVA}


def support_pids():
    return {name: pid_of(path) for name, path in SUPPORT.items()}


def openstack_json(*args):
    env = dict(os.environ, OS_CLOUD="nova-formula-admin")
    proc = subprocess.run(["openstack", *args, "-f", "json"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def check(boot=True):
    """aio_helper check: services up, hypervisor listed (waits), a server
    boots to ACTIVE and is deleted."""
    args = ["check"] + (["--boot"] if boot else [])
    proc = subprocess.run(HELPER + args, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if boot:
        assert re.search(r"^server: ACTIVE after [\d.]+ s, then deleted$", proc.stdout, re.M), \
            proc.stdout
    return proc.stdout


def managed_value(path, section, key):
    """The value of ``key`` in ``section`` as written (column-0 lines only)."""
    current, found = None, []
    with open(path) as fh:
        for line in fh:
            if line.startswith("["):
                current = line.strip()[1:-1]
            elif current == section and re.match(rf"{re.escape(key)}\s*=", line):
                found.append(line.split("=", 1)[1].strip())
    return found


def set_by_hand(path, section, key, value):
    """An operator's hand edit: replace the key's line inside its section."""
    out, current, done = [], None, False
    with open(path) as fh:
        for line in fh:
            if line.startswith("["):
                current = line.strip()[1:-1]
            if current == section and not done and re.match(rf"{re.escape(key)}\s*=", line):
                line, done = f"{key} = {value}\n", True
            out.append(line)
    assert done, (path, section, key)
    with open(path, "w") as fh:
        fh.writelines(out)


# ---------------------------------------------------------------- the deploy

@pytest.fixture(scope="module")
def deployed():
    """Nova removed (whatever an earlier run left), then the README's main job."""
    aio("reset-nova")
    assert not os.path.exists(NOVA_CONF), "reset-nova left /etc/nova/nova.conf"
    proc = aio()
    TIMINGS["first aio.sh"] = proc.seconds
    return proc


def test_fresh_deploy_with_salt_call(deployed):
    out = deployed.stdout
    # one progress line per phase, then the summary
    for n in range(1, 7):
        assert f"[aio {n}/6]" in out, out
    assert "== Nova all-in-one is up" in out, out
    first = re.search(r"state\.apply nova: (\d+) states, (\d+) changed", out)
    assert first and int(first.group(2)) > 0, out
    # run order: validation, DB, config, DB sync, then the services
    with open(os.path.join(AIO_DIR, "last-apply.json")) as fh:
        run = StateRun(0, json.load(fh)["local"], None)
    order = [s["__id__"] for s in run.ordered]
    assert order[0] == "nova-pillar-valid"
    assert order.index("nova-db-sync") > order.index("nova-config-nova_conf") > order.index(
        "nova-db-nova")
    assert min(order.index(s) for s in order if s.startswith("nova-service-")) > order.index(
        "nova-db-sync")
    assert re.search(r"services: .*nova-compute up.*nova-conductor up.*nova-scheduler up", out)
    # the summary keeps its indentation; the long states showed as they ended
    for line in ("services: ", "hypervisors: ", "server: ACTIVE after "):
        assert re.search(rf"^   {line}", out, re.M), (line, out)
    assert re.search(r"^    nova-packages: [\d.]+ s$", deployed.stderr, re.M), deployed.stderr
    # the formula (not the test) installed the packages, without Recommends
    for pkg in ("nova-api", "nova-consoleproxy", "nova-scheduler", "nova-conductor",
                "nova-compute"):
        assert subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg],
                              capture_output=True, text=True).stdout == "installed", pkg
    assert subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", "linux-image-amd64"],
                          capture_output=True, text=True).stdout != "installed"
    # 8.2.10/8.2.11 values in place, 8.2.12.2 kernel parameters persisted
    assert managed_value(NOVA_CONF, "DEFAULT", "reserved_host_memory_mb") == ["512"]
    assert managed_value(NOVA_CONF, "DEFAULT", "ram_allocation_ratio") == ["1.5"]
    assert managed_value(COMPUTE_CONF, "DEFAULT", "compute_driver") == ["fake.FakeDriver"]
    sysctl = open("/etc/sysctl.conf").read()
    for key in ("net.ipv4.conf.all.rp_filter", "net.bridge.bridge-nf-call-iptables"):
        assert re.search(rf"^{re.escape(key)}\s*=", sysctl, re.M), key
    # no policy-rc.d of ours left behind (a pre-existing one stays)
    if os.path.exists("/usr/sbin/policy-rc.d"):
        assert "aio.sh" not in open("/usr/sbin/policy-rc.d").read()
    # the packages' maintainer scripts started no daemon (the formula held
    # them): each service state is the one that started its daemon
    for sid in sorted(SERVICE_IDS):
        assert run[sid]["comment"].startswith("Started service"), (sid, run[sid]["comment"])
    if not os.path.exists("/usr/sbin/policy-rc.d"):  # else one of the host's: kept
        assert run["nova-packages-hold-daemons"]["changes"] and \
            run["nova-packages-release-daemons"]["changes"]
    # nova-api and the metadata API where pillar puts them: loopback only, 2
    # uwsgi workers each; the console proxy on loopback too
    assert listening(8774) == ["127.0.0.1"], listening(8774)
    assert len(children(pid_of("/run/nova/nova-api.pid"))) == 2
    assert listening(8775) == ["127.0.0.1"], listening(8775)
    assert len(children(pid_of("/run/nova/nova-api-metadata.pid"))) == 2
    assert listening(6080) == ["127.0.0.1"], listening(6080)


def listening(port):
    """The addresses with a TCP socket listening on ``port`` (IPv4)."""
    found = []
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                found.append(".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return sorted(set(found))


def children(pid):
    """The PIDs whose parent is ``pid``."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_compute_services_hypervisor_and_server(deployed):
    services = {s["Binary"]: s for s in openstack_json("compute", "service", "list")}
    for binary in ("nova-conductor", "nova-scheduler", "nova-compute"):
        assert services[binary]["State"] == "up", services
        assert services[binary]["Status"] == "enabled", services
    hypervisors = openstack_json("hypervisor", "list")
    assert hypervisors and hypervisors[0]["State"] == "up", hypervisors
    endpoints = openstack_json("endpoint", "list", "--service", "compute")
    assert sorted(e["Interface"] for e in endpoints) == ["admin", "internal", "public"]
    assert {e["URL"] for e in endpoints} == {"http://127.0.0.1:8774/v2.1"}
    check(boot=True)


def test_compute_user_token_and_db_user_login(deployed):
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(auth_url="http://127.0.0.1:5000/v3", username="nova",
                       password=secret("aio-keystone-nova"), project_name="service",
                       user_domain_name="Default", project_domain_name="Default")
    sess = session.Session(auth=auth)
    assert sess.get_token()
    # the token is accepted by Nova itself
    resp = sess.get("http://127.0.0.1:8774/v2.1/flavors", raise_exc=False)
    assert resp.status_code == 200, resp.status_code
    for host in ("127.0.0.1", "localhost"):
        kwargs = {"host": host} if host == "127.0.0.1" else {"unix_socket": "/run/mysqld/mysqld.sock"}
        conn = pymysql.connect(user="nova", password=secret("aio-db-nova"), database="nova_api",
                               **kwargs)
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM cell_mappings ORDER BY name")
            assert [r[0] for r in cur.fetchall()] == ["cell0", "cell1"]
        conn.close()


def test_no_secret_on_any_command_line(deployed):
    secrets = [secret(n) for n in ("aio-db-nova", "aio-rabbitmq-nova", "aio-keystone-nova",
                                   "aio-metadata-secret")]
    leaks = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().decode(errors="replace")
        except OSError:
            continue
        leaks += [pid for s in secrets if s in argv]
    assert not leaks
    # nor in the state output the deploy kept
    with open(os.path.join(AIO_DIR, "last-apply.json")) as fh:
        text = fh.read()
    assert not [s for s in secrets if s in text]


def test_second_run_changes_nothing_and_restarts_nothing(deployed):
    before, support = nova_pids(), support_pids()
    assert all(before.values()), before
    proc = aio()  # the whole main job again: safe to rerun
    TIMINGS["second aio.sh"] = proc.seconds
    assert re.search(r"state\.apply nova: \d+ states, 0 changed", proc.stdout), proc.stdout
    run = apply()
    TIMINGS["no-op apply"] = run.seconds
    run.assert_ok()
    assert run.changed == {}, run.changed
    assert nova_pids() == before
    assert support_pids() == support


def test_drift_reported_by_test_mode_then_corrected(deployed):
    assert managed_value(NOVA_CONF, "DEFAULT", "cpu_allocation_ratio") == ["16.0"]
    support = support_pids()
    set_by_hand(NOVA_CONF, "DEFAULT", "cpu_allocation_ratio", "4.0")
    subprocess.run(["/etc/init.d/nova-scheduler", "stop"], check=True, capture_output=True)
    assert nova_pids()["nova-scheduler"] is None
    before = nova_pids()
    stat = os.stat(NOVA_CONF)

    dry = apply("test=True")
    assert not dry.failed, dry.failed
    pending = {sid for sid, r in dry.states.items() if r["result"] is None or r.get("changes")}
    # exactly the drift: the one key, the stopped service, and the restarts
    # the key's file implies (every Nova service reads nova.conf)
    assert pending == {"nova-config-nova_conf"} | SERVICE_IDS, pending
    conf_changes = dry["nova-config-nova_conf"]["changes"]
    assert json.dumps(conf_changes).count("cpu_allocation_ratio") >= 1, conf_changes
    assert "16.0" in json.dumps(conf_changes) and "4.0" in json.dumps(conf_changes)
    assert "mysql" not in json.dumps(conf_changes)
    # the summary line counts what a real run would change, start and restart
    assert re.search(r"0 changed; dry run: a real run would change 1 \(nova-config-nova_conf\), "
                     r"start 1 \(nova-service-scheduler\), restart 5 \(", dry.proc.stdout), \
        dry.proc.stdout
    # ...and changed nothing
    assert managed_value(NOVA_CONF, "DEFAULT", "cpu_allocation_ratio") == ["4.0"]
    assert os.stat(NOVA_CONF).st_mtime_ns == stat.st_mtime_ns
    assert nova_pids() == before

    fix = apply()
    fix.assert_ok()
    assert set(fix.changed) == {"nova-config-nova_conf"} | SERVICE_IDS, set(fix.changed)
    assert managed_value(NOVA_CONF, "DEFAULT", "cpu_allocation_ratio") == ["16.0"]
    after = nova_pids()
    assert all(after.values()), after
    # every reader of nova.conf restarted; nothing else did
    for name in ("nova-api", "nova-api-metadata", "nova-novncproxy", "nova-conductor",
                 "nova-compute"):
        assert after[name] != before[name], name
    assert support_pids() == support
    check(boot=True)


def test_compute_conf_drift_restarts_only_nova_compute(deployed):
    set_by_hand(COMPUTE_CONF, "DEFAULT", "compute_driver", "libvirt.LibvirtDriver")
    before = nova_pids()
    fix = apply()
    fix.assert_ok()
    assert set(fix.changed) == {"nova-config-compute_conf", "nova-service-compute"}, \
        set(fix.changed)
    assert managed_value(COMPUTE_CONF, "DEFAULT", "compute_driver") == ["fake.FakeDriver"]
    after = nova_pids()
    assert after["nova-compute"] and after["nova-compute"] != before["nova-compute"]
    assert {k: v for k, v in after.items() if k != "nova-compute"} == \
        {k: v for k, v in before.items() if k != "nova-compute"}
    check(boot=False)


def test_a_mode_fix_restarts_nothing(deployed):
    """nova.conf widened to 0644 by hand: the apply narrows it back and
    restarts no daemon (the content did not change)."""
    os.chmod(NOVA_CONF, 0o644)
    before = nova_pids()
    fix = apply()
    fix.assert_ok()
    assert set(fix.changed) == {"nova-config-nova_conf-permissions"}, set(fix.changed)
    assert stat.S_IMODE(os.stat(NOVA_CONF).st_mode) == 0o640
    assert nova_pids() == before


def test_dry_run_behind_a_revoked_grant_reports_pending(deployed):
    """The nova user's grants on nova_api revoked by hand: the dry run cannot
    read the API database, but the grant it would restore comes first, so
    the check is pending (None), never failed; the real apply fixes it."""
    for host in ("localhost", "127.0.0.1"):
        root_sql(f"REVOKE ALL PRIVILEGES ON `nova\\_api`.* FROM 'nova'@'{host}'")
    try:
        dry = apply("test=True")
        assert not dry.failed, {k: v["comment"] for k, v in dry.failed.items()}
        assert dry.returncode == 0
        assert dry["nova-db-grant-nova_api-localhost"]["result"] is None
        sync = dry["nova-api-db-sync"]
        assert sync["result"] is None and "cannot be checked before" in sync["comment"], sync
        assert "nova-db-grant-nova_api-localhost" in sync["comment"]
        assert re.search(r"0 changed; dry run: a real run would change \d+ \(nova-api-db-sync",
                         dry.proc.stdout), dry.proc.stdout
    finally:
        fix = apply()
    fix.assert_ok()
    assert set(fix.changed) == {"nova-db-grant-nova_api-localhost",
                                "nova-db-grant-nova_api-127.0.0.1"}, set(fix.changed)


def test_a_start_says_started(deployed):
    subprocess.run(["/etc/init.d/nova-scheduler", "stop"], check=True, capture_output=True)
    dry = apply("test=True")
    assert dry["nova-service-scheduler"]["comment"] == "Service nova-scheduler is set to start"
    assert "start 1 (nova-service-scheduler)" in dry.proc.stdout, dry.proc.stdout
    run = apply()
    run.assert_ok()
    # Salt's words for a start it waited for (Debian: lookup:service_init_delay,
    # the init script's status asked only once the daemon has exec'd)
    assert run["nova-service-scheduler"]["comment"] == (
        "Started service nova-scheduler\nDelayed return for 1 seconds")
    assert set(run.changed) == {"nova-service-scheduler"}


# ---------------------------------------------------------------- orchestrate

ORCH_STEPS = ["nova-orch-sync-modules", "nova-orch-sync-node", "nova-orch-computes-1",
              "nova-orch-discover", "nova-orch-report"]


def orchestrate_deploy(salt_factories):
    """``salt-run state.orchestrate nova.orch.deploy`` through a real
    salt-master and a real minion (the all-in-one's minion id and pillar, the
    formula as file_roots); (returncode, {step id: step} in run order)."""
    with open(os.path.join(AIO_DIR, "conf", "minion")) as fh:
        aio_opts = yaml.safe_load(fh)
    master = salt_factories.salt_master_daemon("nova-e2e-master", overrides={
        "file_roots": {"base": [formula_roots()]},
        "pillar_roots": {"base": [os.path.join(AIO_DIR, "pillar")]},
        "open_mode": True,
    })
    minion_overrides = {k: aio_opts[k] for k in ("disable_modules",) if k in aio_opts}
    with master.started():
        # the AIO pillar names this minion id in nova:fleet
        minion = master.salt_minion_daemon(aio_opts["id"], overrides=minion_overrides)
        with minion.started():
            # the orchestrate renders with the formula's modules: the
            # operator syncs them to the master once (docs/operations.md)
            synced = master.salt_run_cli(timeout=300).run("saltutil.sync_all")
            assert synced.returncode == 0, synced
            ret = master.salt_run_cli(timeout=2400).run("state.orchestrate",
                                                        "nova.orch.deploy")
    data = ret.data["data"] if isinstance(ret.data, dict) and "data" in ret.data else ret.data
    assert isinstance(data, dict) and len(data) == 1, ret
    (steps,) = data.values()
    assert isinstance(steps, dict), steps
    ordered = sorted(steps.items(), key=lambda kv: kv[1]["__run_num__"])
    return ret.returncode, {key.split("_|-")[1]: step for key, step in ordered}


def orchestrate_changes(steps):
    """{step id: [ids of the states it changed]} of the salt.state steps."""
    return {sid: sorted(r.get("__id__", key) for states in step["changes"]["ret"].values()
                        if isinstance(states, dict)
                        for key, r in states.items() if isinstance(r, dict) and r.get("changes"))
            for sid, step in steps.items()
            if sid != "nova-orch-sync-modules" and (step.get("changes") or {}).get("ret")}


def orchestrate_failures(steps):
    """{step id: comment} of the steps that did not succeed."""
    return {sid: step["comment"] for sid, step in steps.items() if step["result"] is not True}


def test_orchestrate_on_master_and_minion_changes_nothing(deployed, salt_factories):
    """The converged all-in-one through a real salt-master and minion: the
    orchestrate's steps for one host that is controller and compute (its
    databases and Keystone records come with the sync node's own run, no
    step of their own) all succeed, change nothing and restart nothing. The
    same orchestrate from a bare host: tests/test_e2e_clean.py; on separate
    hosts: tests/fleet."""
    pids, support = nova_pids(), support_pids()
    start = time.monotonic()
    returncode, steps = orchestrate_deploy(salt_factories)
    TIMINGS["orchestrate no-op"] = time.monotonic() - start
    assert returncode == 0, orchestrate_failures(steps)
    assert list(steps) == ORCH_STEPS, list(steps)
    assert not orchestrate_failures(steps), orchestrate_failures(steps)
    changed = orchestrate_changes(steps)
    assert not any(changed.values()), changed
    assert nova_pids() == pids and support_pids() == support


def test_zz_timings(deployed):
    """Not an assertion on speed: prints what this run measured."""
    print("\n" + "\n".join(f"  {k}: {v:.1f} s" for k, v in TIMINGS.items()))
