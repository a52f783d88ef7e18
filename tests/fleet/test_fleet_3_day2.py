"""Day-2 operations on the fleet of the ``nf`` fixture, after
test_fleet_1_rollout, or alone (as tests/run-all.sh runs it, on a fleet of
its own: the module's fixture rolls the fleet out first): real salt-master, minions, Nova (fake virt driver), Placement,
sshd and OpenSSH clients on separate hosts.

1. drain cmp1 (``nova.orch.maintenance``): its servers move (an ACTIVE one
   live, a SHUTOFF one cold: both paths real), cmp1 is disabled and takes no
   new server; enable: it takes servers again; reruns change nothing;
2. the nova user on cmp1 runs ``ssh cmp2 true`` and ``sftp`` with
   StrictHostKeyChecking=yes; a changed host key on cmp2 fails until the
   next rollout refreshes known_hosts;
3. canary: a compute whose driver cannot boot stays disabled and the
   rollout says why; fixed, it ends enabled;
4. ``nova.orch.remove_compute`` cmp2: service, host mapping and Placement
   provider gone, the others' authorized_keys/known_hosts without it;
5. a second run of each orchestrate: zero changes, no restarts.
"""
import json

import pytest

from nova_fleet import CLOUD, CTL, FLAVOR, IMAGE, changed_minions, steps_ok

STRICT = "-o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=15"
NOVA_SSH = "/var/lib/nova/.ssh"
MIGRATIONS = {}  # what the drain did, for the report


def _ok(rc, steps):
    assert rc == 0, {k: v["comment"] for k, v in steps.items()}
    steps_ok(steps)


def _state(step, minion, sid):
    """A minion's state return inside an orchestrate step (present when the
    step changed something, or in test mode would)."""
    for key, ret in (((step.get("changes") or {}).get("ret") or {}).get(minion) or {}).items():
        if key.split("_|-")[1] == sid:
            return ret
    return None


def _as_nova(nf, host, command, timeout=120):
    return nf.fleet.run(host, ["su", "-s", "/bin/sh", "nova", "-c", command], timeout=timeout)


def _show(nf, name):
    docs, _ = nf.openstack(f"server show {name} -f json")
    return docs[0]


def _service(nf, host):
    return nf.compute_services().get(("nova-compute", host))


@pytest.fixture(scope="module")
def day2(nf):
    """The fleet rolled out (a no-op after test_fleet_1_rollout), with every
    compute's migration trust; cmp1 and cmp2 up."""
    _ok(*nf.orchestrate()[:2])
    nf.wait(lambda: all((_service(nf, h) or {}).get("State") == "up" for h in ("cmp1", "cmp2"))
            or None, "cmp1 and cmp2 up")
    return nf


def test_drain_moves_servers_away_and_enable_takes_them_again(day2):
    nf = day2
    nf.boot("d2-live", host="cmp1")
    nf.boot("d2-cold", host="cmp1")
    nf.openstack("server stop d2-cold")
    nf.wait(lambda: _show(nf, "d2-cold")["status"] == "SHUTOFF" or None, "d2-cold SHUTOFF")
    drain = {"nova": {"maintenance": {"hosts": ["cmp1"], "action": "drain",
                                      "reason": "fleet test: disk swap"}}}
    # test=True: what would move, and how; nothing moves
    rc, steps, _ = nf.orchestrate("nova.orch.maintenance", test=True, pillar=drain)
    assert rc == 0, steps
    dry = _state(steps["nova-orch-maintenance"], CTL, "nova-maintenance-cmp1-drained")
    assert dry and dry["result"] is None, steps
    assert [s.split(" (")[0] for s in dry["changes"]["live migration"]] == ["d2-live"]
    assert [s.split(" (")[0] for s in dry["changes"]["cold migration"]] == ["d2-cold"]
    assert _show(nf, "d2-live")["OS-EXT-SRV-ATTR:host"] == "cmp1"
    assert _service(nf, "cmp1")["Status"] == "enabled"

    pids = nf.all_pids()
    rc, steps, took = nf.orchestrate("nova.orch.maintenance", pillar=drain)
    _ok(rc, steps)
    done = _state(steps["nova-orch-maintenance"], CTL, "nova-maintenance-cmp1-drained")
    MIGRATIONS.update({k: v for k, v in done["changes"].items() if "migration" in k})
    print(f"\ndrain of cmp1: {took:.1f} s, {json.dumps(done['changes'])}")
    live, cold = _show(nf, "d2-live"), _show(nf, "d2-cold")
    assert live["OS-EXT-SRV-ATTR:host"] != "cmp1" and live["status"] == "ACTIVE"
    assert cold["OS-EXT-SRV-ATTR:host"] != "cmp1" and cold["status"] == "SHUTOFF"
    assert "d2-live" in " ".join(done["changes"]["live migration"])  # the fake driver's live path
    assert "d2-cold" in " ".join(done["changes"]["cold migration"])
    svc = _service(nf, "cmp1")
    assert svc["Status"] == "disabled"
    docs, _ = nf.openstack("compute service list --service nova-compute --long -f json")
    assert {s["Host"]: s["Disabled Reason"] for s in docs[0]}["cmp1"] == "fleet test: disk swap"
    for i in range(2):  # the scheduler skips it
        assert nf.boot(f"d2-new{i}")["OS-EXT-SRV-ATTR:host"] != "cmp1"
    # rerun: nothing to do, nothing restarted
    rc, steps, _ = nf.orchestrate("nova.orch.maintenance", pillar=drain)
    _ok(rc, steps)
    assert changed_minions(steps) == {}, changed_minions(steps)
    assert nf.all_pids() == pids

    enable = {"nova": {"maintenance": {"hosts": ["cmp1"], "action": "enable"}}}
    rc, steps, _ = nf.orchestrate("nova.orch.maintenance", pillar=enable)
    _ok(rc, steps)
    assert changed_minions(steps) == {"nova-orch-maintenance": [CTL]}, changed_minions(steps)
    assert _service(nf, "cmp1")["Status"] == "enabled"
    rc, steps, _ = nf.orchestrate("nova.orch.maintenance", pillar=enable)
    _ok(rc, steps)
    assert changed_minions(steps) == {} and nf.all_pids() == pids
    # it takes servers again: the emptiest host wins the scheduler's weighing
    hosts = [nf.boot(f"d2-back{i}")["OS-EXT-SRV-ATTR:host"] for i in range(2)]
    assert "cmp1" in hosts, hosts
    nf.delete_servers("d2-live", "d2-cold", "d2-new0", "d2-new1", "d2-back0", "d2-back1")


def test_nova_user_ssh_and_sftp_with_host_key_checking(day2):
    nf = day2
    for cmd in (f"ssh {STRICT} cmp2 true", f"echo pwd | sftp {STRICT} -b - cmp2",
                f"ssh {STRICT} {nf.fleet.address('cmp2')} true"):
        cp = _as_nova(nf, "cmp1", cmd)
        assert cp.returncode == 0, (cmd, cp.stdout, cp.stderr)
    # the mine holds public keys only
    mine = nf.fleet.salt(["salt", "--out=json", "cmp1", "mine.get", "cmp*", "nova_migration"]).stdout
    assert "PRIVATE KEY" not in mine and "cmp2" in mine

    # cmp2's host keys change: cmp1 refuses it until the next rollout
    regen = "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null"
    restart = ("systemctl restart ssh" if nf.fleet.kind("cmp2") == "systemd"
               else "/etc/init.d/ssh restart")
    nf.fleet.run("cmp2", ["sh", "-c", f"{regen} && {restart}"], check=True)
    cp = _as_nova(nf, "cmp1", f"ssh {STRICT} cmp2 true")
    assert cp.returncode != 0 and "host key" in cp.stderr.lower(), cp.stderr
    pids = nf.all_pids()
    rc, steps, _ = nf.orchestrate()
    _ok(rc, steps)
    changed = changed_minions(steps)
    assert "cmp1" in changed.get("nova-orch-migration-trust", []), changed
    cp = _as_nova(nf, "cmp1", f"ssh {STRICT} cmp2 true")
    assert cp.returncode == 0, cp.stderr
    # and the rollout after that changes nothing, restarts nothing
    rc, steps, _ = nf.orchestrate()
    _ok(rc, steps)
    assert changed_minions(steps) == {}, changed_minions(steps)
    assert nf.all_pids() == pids


def test_canary_keeps_a_broken_compute_disabled(day2):
    nf = day2
    docs, _ = nf.openstack("flavor list -f json")
    if FLAVOR not in [f["Name"] for f in docs[0]]:
        nf.openstack(f"flavor create --ram 64 --disk 1 --vcpus 1 {FLAVOR} -f json")
    nf.shared["canary"] = {"enabled": True, "flavor": FLAVOR, "image": IMAGE, "timeout": 180}
    nf.fleet.up(["cmp4"])
    if not isinstance(nf.computes, str):
        nf.computes.append("cmp4")
    # a driver that registers but cannot boot a server
    nf.write_pillar(per_host={"cmp4": {"nova": {"compute": {"driver": "fake.FakeBuildAbortDriver"}}}})
    nf.sync()
    rc, steps, _ = nf.orchestrate()
    assert rc != 0
    canary = steps["nova-orch-canary"]
    assert canary["result"] is False and "Run failed on minions: ctl" in canary["comment"]
    # the rollout's output says which host and why (Nova's fault)
    failed = _state(canary, CTL, "nova-canary-cmp4")
    assert failed["result"] is False, canary
    assert "host 'cmp4' failed its canary and stays disabled" in failed["comment"], failed
    print(f"\nfailed canary: {failed['comment']}")
    docs, _ = nf.openstack("compute service list --service nova-compute --long -f json")
    svc = {s["Host"]: s for s in docs[0]}
    assert svc["cmp4"]["Status"] == "disabled"
    assert svc["cmp4"]["Disabled Reason"].startswith("nova-formula canary failed: ")
    assert all(svc[h]["Status"] == "enabled" for h in ("cmp1", "cmp2"))
    # fixed in pillar: the next rollout proves it and enables it
    nf.write_pillar()
    rc, steps, _ = nf.orchestrate()
    _ok(rc, steps)
    assert _state(steps["nova-orch-canary"], CTL, "nova-canary-cmp4")["changes"]["service"][
        "new"] == "enabled"
    assert _service(nf, "cmp4")["Status"] == "enabled"
    pids = nf.all_pids()
    rc, steps, _ = nf.orchestrate()
    _ok(rc, steps)
    assert changed_minions(steps) == {} and nf.all_pids() == pids


def test_remove_compute_decommissions_and_drops_it_from_the_trust(day2):
    nf = day2
    nf.boot("d2-rm", host="cmp2")
    docs, _ = nf.openstack("hypervisor show cmp2 -f json")
    node = docs[0]["id"]
    remove = {"nova": {"maintenance": {"hosts": ["cmp2"]}}}
    rc, steps, took = nf.orchestrate("nova.orch.remove_compute", pillar=remove)
    _ok(rc, steps)
    print(f"\nremove_compute cmp2: {took:.1f} s")
    server = _show(nf, "d2-rm")
    assert server["OS-EXT-SRV-ATTR:host"] != "cmp2" and server["status"] == "ACTIVE"
    assert ("nova-compute", "cmp2") not in nf.compute_services()
    hosts = nf.fleet.run(CTL, ["nova-manage", "cell_v2", "list_hosts"], check=True).stdout
    assert "cmp2" not in hosts and "cmp1" in hosts
    tree = nf.fleet.salt_json(CTL, "openstack_compute.provider_tree", node, f"cloud={CLOUD}")
    assert tree == {CTL: []}, tree
    for name in ("authorized_keys", "known_hosts"):
        text = nf.fleet.read_file("cmp1", f"{NOVA_SSH}/{name}")
        assert "nova-migration@cmp2" not in text and "nova-migration@" in text, name
    # rerun: nothing changes
    pids = nf.all_pids()
    rc, steps, _ = nf.orchestrate("nova.orch.remove_compute", pillar=remove)
    _ok(rc, steps)
    assert changed_minions(steps) == {}, changed_minions(steps)
    assert nf.all_pids() == pids
    nf.delete_servers("d2-rm")
