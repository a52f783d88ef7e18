"""A real point update across the fleet (issue 15): Nova 2:26.2.2-1~deb12u4
(bookworm), deployed with nova:version on every host, rolled to ~deb12u5
(bookworm-security) by ``salt-run state.orchestrate nova.orch.upgrade`` on ctl.

Carries on after test_fleet_1_rollout on the fleet of the ``nf`` fixture
(whatever hosts it has by then: ctl, cmp1, cmp2 and, after it, cmp3 and the
conductor host cond1); run alone, it deploys first. In order: a dry run
lists each host's changes and changes nothing; a real failing pre-check (the
cell0 mapping removed by hand) stops the run with the check's message before
any other host changes; the roll itself (versions, restarts counted from the
PIDs seen while it runs, the RPC pin seen during and gone after, online
migrations, servers); a rerun that changes and restarts nothing.
"""
import json
import re
import threading
import time

import pytest

from nova_fleet import CTL, NOVA_VERSIONS, steps_ok

U4, U5 = NOVA_VERSIONS
UPGRADE = "nova.orch.upgrade"
NOVA_PKGS = ("nova-common", "python3-nova", "nova-api", "nova-conductor", "nova-scheduler",
             "nova-compute", "nova-consoleproxy")
SAVE_DB = "nfupg_save"


def hosts(nf):
    return list(dict.fromkeys([CTL] + nf.conductors + nf.compute_hosts()))


def versions(nf, host):
    """{package: version} of the Nova packages installed on ``host``."""
    out = nf.fleet.run(host, ["dpkg-query", "-W", "-f", "${Package} ${Version} ${Status}\n"]
                       + list(NOVA_PKGS)).stdout
    return {p: v for p, v, *status in (line.split(" ", 2) for line in out.splitlines())
            if "installed" in " ".join(status) and "not-installed" not in " ".join(status)}


def pin(nf, host):
    """[upgrade_levels] compute of ``host``'s nova.conf, or None."""
    section = None
    for line in nf.fleet.read_file(host, "/etc/nova/nova.conf").splitlines():
        if line.startswith("["):
            section = line.strip()
        elif section == "[upgrade_levels]" and re.match(r"compute\s*=", line):
            return line.split("=", 1)[1].strip()
    return None


def host_changes(steps):
    """{step: {minion: [state ids with changes]}} of the salt.state steps."""
    out = {}
    for sid, step in steps.items():
        ret = (step.get("changes") or {}).get("ret") or {}
        if not isinstance(ret, dict) or sid.endswith("sync-modules"):
            continue
        for minion, states in ret.items():
            if isinstance(states, dict):
                ids = sorted(r.get("__id__", k) for k, r in states.items()
                             if isinstance(r, dict) and r.get("changes"))
                if ids:
                    out.setdefault(sid, {})[minion] = ids
    return out


def mysql(nf, sql):
    return nf.fleet.run(CTL, ["mysql", "-N", "-B"], input=sql, check=True).stdout


@pytest.fixture(scope="module")
def deployed(nf):
    """The fleet deployed at deb12u4 with a server running on it."""
    nf.version = U4
    nf.write_pillar()
    if nf.fleet.run(CTL, ["test", "-e", "/etc/nova/nova.conf"]).returncode != 0:
        rc, steps, _ = nf.orchestrate()
        assert rc == 0, {k: v["comment"] for k, v in steps.items()}
    for host in hosts(nf):
        assert set(versions(nf, host).values()) == {U4}, host
    nf.wait(lambda: all(s["State"] == "up" for s in nf.compute_services().values()) or None,
            "every Nova service up")
    nf.boot("before-upgrade")
    yield nf
    nf.delete_servers("before-upgrade", "after-upgrade")


def test_dry_run_lists_each_hosts_changes_and_changes_nothing(deployed):
    nf = deployed
    before = {h: (versions(nf, h), pin(nf, h)) for h in hosts(nf)}
    pids = nf.all_pids()
    nf.version = U5
    nf.write_pillar()
    rc, steps, _ = nf.orchestrate(UPGRADE, test=True)
    assert not [s for s, step in steps.items() if step["result"] is False], steps
    changes = host_changes(steps)
    # the new packages on the sync conductor first, the pin on every host,
    # the packages of each compute in its batch
    assert "nova-packages" in changes["nova-orch-upgrade-check"][CTL]
    assert set(changes["nova-orch-upgrade-pin"]) == set(hosts(nf))
    rolled = {m for sid, ms in changes.items() if sid.startswith("nova-orch-upgrade-computes-")
              for m in ms}
    assert rolled == set(nf.compute_hosts())
    assert {h: (versions(nf, h), pin(nf, h)) for h in hosts(nf)} == before
    assert nf.all_pids() == pids


def test_a_failing_pre_check_stops_before_any_other_host_changes(deployed):
    """The cell0 mapping removed by hand: `nova-status upgrade check` fails
    for real; the run stops there, with its message. The sync conductor has
    the new packages (the check runs with the new code), no daemon anywhere
    restarted, no other host changed."""
    nf = deployed
    pids = nf.all_pids()
    others = {h: versions(nf, h) for h in hosts(nf) if h != CTL}
    cell0 = "00000000-0000-0000-0000-000000000000"
    mysql(nf, f"CREATE DATABASE IF NOT EXISTS {SAVE_DB};"
              f"CREATE TABLE {SAVE_DB}.cell0 AS SELECT * FROM nova_api.cell_mappings "
              f"WHERE uuid = '{cell0}';"
              f"DELETE FROM nova_api.cell_mappings WHERE uuid = '{cell0}';")
    try:
        rc, steps, _ = nf.orchestrate(UPGRADE)
    finally:
        mysql(nf, f"INSERT INTO nova_api.cell_mappings SELECT * FROM {SAVE_DB}.cell0;"
                  f"DROP DATABASE {SAVE_DB};")
    assert rc != 0
    check = steps["nova-orch-upgrade-check"]
    assert check["result"] is False
    assert "nova-status upgrade check failed" in json.dumps(check)
    assert "cell0" in json.dumps(check), check
    ran = [s for s, step in steps.items() if step["result"] is True
           and s not in ("nova-orch-upgrade-sync-modules",)]
    assert ran == [], ran
    assert {h: versions(nf, h) for h in others} == others
    assert all(pin(nf, h) is None for h in hosts(nf))
    assert nf.all_pids() == pids


def test_upgrade_rolls_every_host_restarting_each_daemon_twice(deployed):
    """Every host ends on u5, held; each Nova daemon restarted exactly twice
    (once onto the new code with the pin, once when the pin is lifted: the
    orchestrate's own report, and the PIDs seen while it ran); the pin seen
    on the computes during the roll and gone after; online migrations run;
    the server booted before is ACTIVE and a new one boots."""
    nf = deployed
    before = nf.all_pids()
    seen = {(h, d): {pid} for h, daemons in before.items() for d, pid in daemons.items()}
    pins, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            for host, daemons in nf.all_pids().items():
                for daemon, pid in daemons.items():
                    seen.setdefault((host, daemon), set()).add(pid)
            for host in nf.compute_hosts():
                pins.add((host, pin(nf, host)))
            time.sleep(0.5)

    poller = threading.Thread(target=watch, daemon=True)
    poller.start()
    try:
        rc, steps, took = nf.orchestrate(UPGRADE)
    finally:
        stop.set()
        poller.join(60)
    assert rc == 0, {k: v["comment"] for k, v in steps.items()}
    steps_ok(steps)
    print(f"upgrade orchestrate: {took:.0f} s; steps: {list(steps)}")
    for host in hosts(nf):
        assert set(versions(nf, host).values()) == {U5}, host
        held = nf.fleet.run(host, ["apt-mark", "showhold"]).stdout.split()
        assert "python3-nova" in held, host
        assert pin(nf, host) is None, host
    # the pin was in place on every compute while the roll ran
    assert {h for h, value in pins if value == "auto"} == set(nf.compute_hosts()), pins
    # restarts as the orchestrate reports them: each daemon twice
    changes = host_changes(steps)
    restarts = {}
    for sid, minions in changes.items():
        for minion, ids in minions.items():
            for state in ids:
                m = re.fullmatch(r"nova-(?:service|upgrade)-(\w+?)(?:-current)?", state)
                if m and m.group(1) not in ("libvirt", "messagebus"):
                    restarts[(minion, m.group(1))] = restarts.get((minion, m.group(1)), 0) + 1
    after = nf.all_pids()
    for host, daemons in before.items():
        for daemon, pid in daemons.items():
            svc = {"nova-api-metadata": "metadata", "nova-novncproxy": "novncproxy"}.get(
                daemon, daemon.replace("nova-", ""))
            assert restarts.get((host, svc)) == 2, (host, daemon, restarts)
            assert after[host][daemon] != pid, (host, daemon)
            # the PIDs seen: the first, the one after the first restart, the last
            assert len(seen[(host, daemon)] | {after[host][daemon]}) <= 3, (host, daemon, seen)
    # the online migrations ran (a salt.state step shows a minion's states
    # only when they changed something): run again, they report done and
    # nothing left to migrate
    assert steps["nova-orch-upgrade-migrations"]["result"] is True
    (again,) = [r for sid, r in nf.apply(CTL, sls="nova.upgrade.migrations")[CTL].items()
                if sid == "nova-upgrade-online-migrations"]
    assert again["result"] is True and again["changes"] == {}, again
    assert again["comment"] == "online data migrations done, none pending", again
    nf.wait(lambda: all(s["State"] == "up" and s["Status"] == "enabled"
                        for s in nf.compute_services().values()) or None,
            "every Nova service up and enabled")
    docs, _ = nf.openstack("server show before-upgrade -f json")
    assert docs[0]["status"] == "ACTIVE"
    assert nf.boot("after-upgrade")["status"] == "ACTIVE"


def test_rerun_changes_nothing_and_restarts_nothing(deployed):
    nf = deployed
    pids = nf.all_pids()
    rc, steps, _ = nf.orchestrate(UPGRADE)
    assert rc == 0, {k: v["comment"] for k, v in steps.items()}
    steps_ok(steps)
    assert host_changes(steps) == {}
    assert not [s for s in steps if s.startswith(("nova-orch-upgrade-computes-",
                                                  "nova-orch-upgrade-pin"))]
    assert nf.all_pids() == pids
