"""``salt-run state.orchestrate nova.orch.deploy`` on a real salt-master with
two real minions (a controller and a compute), through pytest-salt-factories.

No OpenStack runs here, so the concerns that need it are switched off by
pillar (nova:manage:*: false): they are left out of each minion's run, and
the validation state says so. What stays real: the master, the minions, the
module sync, the orchestration with its requisites and batches, the config
files written by the INI engine, and the databases created in the local
MariaDB. The DB sync and the services, for real and in order, are proven by
tests/test_e2e.py (one host) and the fleet tests (several).

Asserted: the order of the steps and which minions each one targets, that
the compute got no database URL, that a second rollout changes nothing, and
that a failed step stops the rollout."""
import datetime
import json
import types
import uuid

import pymysql
import pytest
import yaml

from formula_support import (GRAINS, SECRETS, drop_scratch_databases, pillar, render,
                             sandboxed)
from harness import formula_roots, host_minion_opts, load_module

CTL, CMP = "nova-orch-ctl", "nova-orch-cmp"
# one controller, which is the sync conductor: no "other controllers" step
# (the databases and Keystone records are the sync conductor's: made in its run)
STEPS = ["nova-orch-sync-modules", "nova-orch-sync-node",
         "nova-orch-computes-1", "nova-orch-discover", "nova-orch-report"]
SWITCHED_OFF = {k: False for k in ("packages", "identity", "firewall", "sysctl", "libvirt",
                              "nova_network", "db_sync", "services", "discover")}
SOCKET = "/run/mysqld/mysqld.sock"
NOVA_CONF = "[DEFAULT]\n#my_ip = <host_ipv4>\nmy_ip = 192.0.2.2\n\n[database]\n\n[placement]\nusername =\n"


def _root_db():
    return pymysql.connect(unix_socket=SOCKET, user="root")


@pytest.fixture(scope="module")
def fleet(salt_factories, tmp_path_factory):
    """A master whose file_roots are this repo, and two minions with their
    own pillar (common fleet data + per-minion roles and config paths)."""
    base = tmp_path_factory.mktemp("orch")
    prefix = "novaorch_" + uuid.uuid4().hex[:6]
    files = {}
    for minion in (CTL, CMP):
        folder = base / minion
        folder.mkdir()
        (folder / "nova.conf").write_text(NOVA_CONF)
        (folder / "nova-compute.conf").write_text("[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n")
        files[minion] = folder
    pillar_dir = base / "pillar"
    pillar_dir.mkdir()
    common = {"nova": {
        "release": "zed",
        "my_ip": "127.0.0.1",
        "database": {"host": "127.0.0.1", "user": prefix, "password": SECRETS["database"],
                     "name": prefix, "api_name": prefix + "_api", "grant_hosts": ["localhost"],
                     "admin": {"unix_socket": SOCKET, "user": "root"}},
        "messaging": {"host": "127.0.0.1", "password": SECRETS["messaging"]},
        "identity": {"password": SECRETS["identity"]},
        "placement": {"password": SECRETS["placement"]},
        "network": {"neutron": {"password": SECRETS["neutron"],
                                "metadata_secret": SECRETS["metadata"]}},
        "compute": {"driver": "fake.FakeDriver"},
        "fleet": {"controllers": [CTL], "computes": [CMP], "batch": 1,
                  "discover": {"attempts": 2, "interval": 1}},
        "manage": SWITCHED_OFF,
    }}
    (pillar_dir / "common.sls").write_text(yaml.safe_dump(common))
    for minion, roles in ((CTL, ["api", "scheduler", "conductor"]), (CMP, ["compute"])):
        # every file the plan writes goes to the test's folder, the machine's
        # /etc/default/nova-* and policy.yaml never (they are the AIO's)
        own = {"nova": {"roles": roles, "lookup": {"group": "root", "files": {
            "nova_conf": str(files[minion] / "nova.conf"), "api_paste": None,
            "compute_conf": str(files[minion] / "nova-compute.conf")},
            **sandboxed(files[minion])}}}
        (pillar_dir / f"{minion}.sls").write_text(yaml.safe_dump(own))
    (pillar_dir / "top.sls").write_text(
        f"base:\n  '*':\n    - common\n  '{CTL}':\n    - {CTL}\n  '{CMP}':\n    - {CMP}\n")
    master = salt_factories.salt_master_daemon("nova-orch-master", overrides={
        "file_roots": {"base": [formula_roots()]},
        "pillar_roots": {"base": [str(pillar_dir)]},
        "open_mode": True,
        "pillar_merge_lists": False,
    })
    with master.started():
        # the orchestrate renders with the formula's modules: synced to the
        # master once, as an operator does (docs/operations.md)
        synced = master.salt_run_cli(timeout=300).run("saltutil.sync_all")
        assert synced.returncode == 0, synced
        ctl = master.salt_minion_daemon(CTL, overrides=host_minion_opts())
        cmp_ = master.salt_minion_daemon(CMP, overrides=host_minion_opts())
        with ctl.started(), cmp_.started():
            yield {"master": master, "files": files, "prefix": prefix, "pillar_dir": pillar_dir,
                   "minions": {CTL: ctl, CMP: cmp_}}
    drop_scratch_databases(prefix)


def _jid_now():
    return datetime.datetime.now().strftime("%Y%m%d%H%M%S%f")


def _orchestrate(master):
    """Run the orchestrate; return (result, {step id: step return}, jobs) where
    jobs lists the state.sls jobs it sent, oldest first, as
    (sls, {minion: {state id: state return}}), read from the master's job cache
    (the orchestrate's own output holds minion returns only for changes)."""
    since = _jid_now()
    ret = master.salt_run_cli(timeout=600).run("state.orchestrate", "nova.orch.deploy")
    data = ret.data
    if isinstance(data, dict) and "data" in data:
        data = data["data"]
    assert isinstance(data, dict), ret
    (steps,) = data.values()
    assert isinstance(steps, dict), ret
    steps = {key.split("_|-")[1]: step for key, step in steps.items()}
    listed = master.salt_run_cli(timeout=120).run("jobs.list_jobs", search_function="state.sls")
    jobs = []
    for jid in sorted(j for j in listed.data if j > since):
        sls = listed.data[jid]["Arguments"][0]
        found = master.salt_run_cli(timeout=120).run("jobs.lookup_jid", jid).data
        jobs.append((sls, {minion: {key.split("_|-")[1]: res for key, res in states.items()}
                           for minion, states in found.items() if isinstance(states, dict)}))
    return ret, steps, jobs


def test_rollout_order_and_db_sync_once(fleet):
    ret, steps, jobs = _orchestrate(fleet["master"])
    assert ret.returncode == 0, json.dumps(ret.data, indent=1)[-4000:]
    ran = sorted(steps, key=lambda s: steps[s]["__run_num__"])
    assert ran == STEPS
    assert all(steps[s]["result"] is True for s in STEPS)

    assert steps["nova-orch-report"]["comment"] == "every minion of every step succeeded"

    # The jobs the orchestrate sent, in the order the minions got them.
    assert [sls for sls, _ in jobs] == ["nova", "nova", "nova.discover"], jobs
    per_step = dict(zip(STEPS[1:-1], (job for _, job in jobs)))
    assert set(per_step["nova-orch-sync-node"]) == {CTL}
    assert set(per_step["nova-orch-computes-1"]) == {CMP}
    for job in per_step.values():
        for minion, states in job.items():
            assert all(r["result"] is True for r in states.values()), (minion, states)

    # The DB sync belongs to the chosen conductor's run only; switched off by
    # nova:manage here, it is left out (named), never faked
    sync_ids = {"nova-api-db-sync", "nova-cell0-mapped", "nova-cell1-present", "nova-db-sync"}
    for job in per_step.values():
        for minion, states in job.items():
            assert not sync_ids & set(states), (minion, sorted(states))
            assert not [s for s in states if s.startswith("nova-service-")], sorted(states)
    valid = per_step["nova-orch-sync-node"][CTL]["nova-pillar-valid"]["comment"]
    assert "left out by nova:manage:" in valid and "db_sync" in valid and "service" in valid
    assert "nova-discover-hosts" not in per_step["nova-orch-discover"][CTL]

    # Databases were really created by the database minion (the conductor),
    # in its own run.
    db = per_step["nova-orch-sync-node"]
    assert set(db) == {CTL}
    assert db[CTL]["nova-db-" + fleet["prefix"]]["changes"]
    conn = _root_db()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (fleet["prefix"] + "%",))
            names = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    assert names == {fleet["prefix"], fleet["prefix"] + "_api", fleet["prefix"] + "_cell0"}

    # Config really written: the URL on the controller, none on the compute.
    ctl_conf = (fleet["files"][CTL] / "nova.conf").read_text()
    cmp_conf = (fleet["files"][CMP] / "nova.conf").read_text()
    assert f"connection = mysql+pymysql://{fleet['prefix']}:" in ctl_conf
    assert "mysql" not in cmp_conf and "compute_driver = fake.FakeDriver" in cmp_conf
    # Debian's placeholder replaced in place, not duplicated
    assert [ln for ln in cmp_conf.splitlines() if ln.startswith("my_ip")] == ["my_ip = 127.0.0.1"]
    placement = cmp_conf.split("[placement]")[1].split("\n[")[0]
    assert [ln for ln in placement.splitlines() if ln.startswith("username")] == [
        "username = placement"]
    assert "compute_driver = fake.FakeDriver" in (
        fleet["files"][CMP] / "nova-compute.conf").read_text()
    # No secret in any job return.
    dump = json.dumps(jobs)
    for secret in SECRETS.values():
        assert secret not in dump and json.dumps(secret)[1:-1] not in dump

    # A second rollout changes nothing anywhere.
    ret2, steps2, jobs2 = _orchestrate(fleet["master"])
    assert ret2.returncode == 0
    assert [sls for sls, _ in jobs2] == [sls for sls, _ in jobs]
    for sls, job in jobs2:
        for minion, states in job.items():
            changed = {s: r["changes"] for s, r in states.items() if r.get("changes")}
            assert not changed, (sls, minion, changed)


def test_failed_step_stops_the_rollout(fleet):
    # The compute's nova.conf vanishes: the computes step fails there, so
    # host discovery after it must not run.
    cmp_pillar = fleet["pillar_dir"] / f"{CMP}.sls"
    saved = cmp_pillar.read_text()
    data = yaml.safe_load(saved)
    data["nova"]["lookup"]["files"]["nova_conf"] = str(fleet["files"][CMP] / "missing.conf")
    cmp_pillar.write_text(yaml.safe_dump(data))
    try:
        ret, steps, jobs = _orchestrate(fleet["master"])
    finally:
        cmp_pillar.write_text(saved)
    assert ret.returncode != 0
    assert steps["nova-orch-computes-1"]["result"] is False
    for later in STEPS[STEPS.index("nova-orch-computes-1") + 1:]:
        if later in steps:
            assert steps[later]["result"] is False, later
    # the minions never got a job after the failed step
    assert [sls for sls, _ in jobs] == ["nova", "nova"]
    failed = jobs[-1][1][CMP]["nova-config-nova_conf-permissions"]
    assert failed["result"] is False and "missing.conf" in failed["comment"]
    assert jobs[-1][1][CMP]["nova-config-nova_conf"]["result"] is False


# A compute whose minion is down (its batch fails naming it, max_fail lets the
# rollout go on and the report names it) is proven on real separate hosts by
# tests/fleet/test_fleet_1_rollout.py; the rendering of it is tested below.


# ------------------------------------------------------------ rendering only

@pytest.fixture
def minion(make_salt_call):
    return make_salt_call(minion_id="ctl1", grains=GRAINS["debian12"])


def test_render_a_down_minion_fails_its_own_step_not_the_sync(minion):
    """The module sync expects no minion (one that does not answer is left
    to the step that targets it); every compute batch expects its minions,
    each allowed nova:fleet:max_fail failures; the report step comes last."""
    fleet = {"controllers": ["ctl1"], "computes": ["cmp1", "cmp2", "cmp3"], "batch": 2,
             "max_fail": 1}
    states = render(minion, pillar("zed", [], fleet=fleet), sls="nova.orch.deploy")
    fun, sync = states["nova-orch-sync-modules"]
    assert (fun, sync["expect_minions"], sync["failhard"]) == ("salt.function", False, True)
    for step, tgt in (("nova-orch-computes-1", ["cmp1", "cmp2"]),
                      ("nova-orch-computes-2", ["cmp3"])):
        fun, args = states[step]
        assert fun == "salt.state" and args["tgt"] == tgt
        assert (args["expect_minions"], args["allow_fail"], args["failhard"]) == (True, 1, True)
    assert list(states)[-1] == "nova-orch-report"
    fun, args = states["nova-orch-report"]
    # the last step before it: the computes' migration trust (two computes)
    assert fun == "nova_orch.report" and args["require"] == ["nova-orch-migration-trust"]


def test_render_the_report_comes_after_the_aggregates(minion):
    fleet = {"controllers": ["ctl1"], "computes": ["cmp1"]}
    data = pillar("zed", [], fleet=fleet)
    data["nova"]["aggregates"] = {"zone-a": {"availability_zone": "az1", "hosts": ["cmp1"]}}
    states = render(minion, data, sls="nova.orch.deploy")
    assert list(states)[-2:] == ["nova-orch-aggregates", "nova-orch-report"]
    assert states["nova-orch-report"][1]["require"] == ["nova-orch-aggregates"]
    assert states["nova-orch-computes-1"][1]["allow_fail"] == 0  # no max_fail: none may fail


# ------------------------------------------------------------ the report, unit

def _step(sid, num, result, ret=None, fun="state", comment=""):
    key = f"salt_|-{sid}_|-{sid}_|-{fun}"
    changes = {"out": "highstate", "ret": ret} if ret else {}
    return key, {"__id__": sid, "__run_num__": num, "result": result, "changes": changes,
                 "comment": comment, "name": sid}


def _running(*steps):
    """A frozen __running__, as Salt hands it to a state (Mappings, not dicts)."""
    def freeze(value):
        if isinstance(value, dict):
            return types.MappingProxyType({k: freeze(v) for k, v in value.items()})
        if isinstance(value, list):
            return tuple(freeze(v) for v in value)
        return value
    return freeze(dict(steps))


OK_STATE = {"file_|-a_|-/x_|-managed": {"__id__": "a", "result": True, "changes": {"x": 1}}}
BAD_STATE = {"file_|-a_|-/x_|-managed": {"__id__": "a", "result": True, "changes": {}},
             "ini_|-nova-config_|-/etc/nova/nova.conf_|-options_present":
                 {"__id__": "nova-config", "result": False, "changes": {}}}


def test_rollout_failures_names_each_failed_minion_and_step_even_when_allowed():
    plan = load_module("utils", "nova_plan")
    running = _running(
        _step("nova-orch-sync-modules", 0, True, {"ctl": {"states": []}}, fun="function"),
        _step("nova-orch-sync-node", 1, True, {"ctl": OK_STATE}),
        # allow_fail let both through: Salt says "States ran successfully"
        _step("nova-orch-computes-1", 2, True, {"cmp1": False, "cmp2": OK_STATE},
              comment="States ran successfully. Updating cmp1, cmp2."),
        _step("nova-orch-computes-2", 3, True, {"cmp3": BAD_STATE, "cmp4": ["Rendering SLS failed"]}),
        ("nova_orch_|-nova-orch-report_|-nova rollout_|-report", {"__run_num__": 4, "result": False}),
    )
    assert plan.rollout_failures(running) == [
        {"step": "nova-orch-computes-1", "minion": "cmp1",
         "why": "no return (minion down or not answering)"},
        {"step": "nova-orch-computes-2", "minion": "cmp3", "why": "failed states: nova-config"},
        {"step": "nova-orch-computes-2", "minion": "cmp4", "why": "errors: Rendering SLS failed"}]
    # a failed step whose minions are not in its return (a function step)
    failed_fun = _running(_step("nova-orch-sync-modules", 0, False, {"ctl": True}, fun="function",
                                comment="Running function saltutil.sync_all failed on minions: ctl"))
    assert plan.rollout_failures(failed_fun) == [{
        "step": "nova-orch-sync-modules", "minion": None,
        "why": "Running function saltutil.sync_all failed on minions: ctl"}]
    # all fine, and a dry run's pending states (None) are no failure
    pending = {"f_|-a_|-a_|-managed": {"__id__": "a", "result": None, "changes": {"x": 1}}}
    assert plan.rollout_failures(_running(
        _step("nova-orch-sync-node", 1, None, {"ctl": pending}),
        _step("nova-orch-computes-1", 2, True, {"cmp1": OK_STATE}))) == []


def test_report_state_fails_naming_them_and_passes_when_none_failed():
    states = load_module("states", "nova_orch")
    states.__opts__ = {"test": False}
    states.__running__ = _running(
        _step("nova-orch-computes-1", 2, True, {"cmp1": False, "cmp2": OK_STATE}))
    ret = states.report("nova rollout")
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"] == ("1 failure(s) in this rollout (minions: cmp1):\n"
                              "nova-orch-computes-1: cmp1: no return (minion down or not answering)")
    states.__running__ = _running(_step("nova-orch-computes-1", 2, True, {"cmp2": OK_STATE}))
    ret = states.report("nova rollout")
    assert ret == {"name": "nova rollout", "result": True, "changes": {},
                   "comment": "every minion of every step succeeded"}
