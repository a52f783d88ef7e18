"""A real fleet, rolled out by the formula through a real salt-master:
``salt-run state.orchestrate nova.orch.deploy`` on ctl (api, scheduler,
conductor; Keystone, Placement, Glance, Neutron, MariaDB, RabbitMQ) and the
computes cmp1 (init scripts) and cmp2 (systemd as PID 1, so Salt's
systemd_service path is proven too), then cmp3 and a conductor host cond1
joining later. Every Nova package, file, database, grant and Keystone record is
made by the formula; the tests only give the pillar, the RabbitMQ user and a
flavor, as an operator would.

The tests run in order on the fleet of the ``nf`` fixture (tests/fleet/conftest.py),
which the next modules (test_fleet_2_*, test_fleet_3_*) carry on with.
"""
import hashlib
import hmac
import json
import os
import re

from nova_fleet import CTL, changed_minions, steps_ok


def test_rollout_from_nothing(nf):
    rc, steps, took = nf.orchestrate()
    assert rc == 0, {k: v["comment"] for k, v in steps.items()}
    steps_ok(steps)
    assert [s for s in sorted(steps, key=lambda s: steps[s]["__run_num__"])] == [
        "nova-orch-sync-modules", "nova-orch-sync-node", "nova-orch-computes-1", "nova-orch-computes-2",
        "nova-orch-discover", "nova-orch-migration-trust", "nova-orch-report"]
    assert steps["nova-orch-report"]["comment"] == "every minion of every step succeeded"
    services = nf.wait(lambda: (lambda s: s if all(
        s.get(k, {}).get("State") == "up" for k in (
            ("nova-conductor", "ctl"), ("nova-scheduler", "ctl"),
            ("nova-compute", "cmp1"), ("nova-compute", "cmp2"))) else None)(
        nf.compute_services()), "conductor, scheduler and both computes up")
    assert services[("nova-conductor", "ctl")]["Status"] == "enabled"
    assert nf.wait(lambda: nf.hypervisors() == ["cmp1", "cmp2"] or None,
                   "both hypervisors listed")
    for host in ("cmp1", "cmp2"):
        server = nf.boot(f"first-{host}", host=host)
        assert server["OS-EXT-SRV-ATTR:host"] == host and server["status"] == "ACTIVE"
    nf.delete_servers("first-cmp1", "first-cmp2")
    # cmp2 is a systemd host: Salt used systemd_service there, and it acted
    assert nf.fleet.salt_json("cmp2", "grains.get", "init") == {"cmp2": "systemd"}
    assert nf.fleet.run("cmp2", ["systemctl", "is-active", "nova-compute"]).stdout.strip() \
        == "active"
    assert nf.fleet.run("cmp2", ["systemctl", "is-enabled", "nova-compute"]).stdout.strip() \
        == "enabled"


def _secrets_on(nf, host, needles):
    """Files of ``host``'s own filesystem layer (minion cache included) that
    hold any of ``needles``."""
    found = []
    for root, _, files in os.walk(nf.fleet.upper_dir(host)):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            found += [f"{path}: {needle!r}" for needle in needles if needle.encode() in data]
    return found


def _controller_only_secrets(nf):
    """What no compute may hold: the DB password and URLs, the Keystone
    admin password, the metadata secret (the metadata API runs on ctl)."""
    admin = re.search(r"password: (\S+)", nf.fleet.clouds_yaml()).group(1)
    conf = nf.fleet.read_file("ctl", "/etc/nova/nova.conf")
    urls = re.findall(r"^connection = (\S+)", conf, re.M)
    assert len(urls) == 2, "the controller's [api_database] and [database] URLs"
    return [nf.passwords["db"], admin, nf.passwords["metadata"], *urls]


def test_computes_hold_no_database_url_or_admin_credential(nf):
    needles = _controller_only_secrets(nf)
    found = _secrets_on(nf, "ctl", needles)
    for needle in needles:  # the search finds each where it is
        assert [f for f in found if f.endswith(repr(needle))], needle
    for host in ("cmp1", "cmp2"):
        assert _secrets_on(nf, host, needles) == [], host


def _curl(nf, host, url, headers=()):
    """(HTTP status, body) of a GET sent from ``host``; the headers go on
    stdin (curl -H @-), never on an argv."""
    cp = nf.fleet.run(host, ["curl", "-sS", "--max-time", "30", "-H", "@-",
                             "-w", "\n%{http_code}", url],
                      input="".join(f"{k}: {v}\n" for k, v in headers), timeout=60)
    body, _, status = cp.stdout.rpartition("\n")
    assert cp.returncode == 0, cp.stderr
    return int(status), body


def test_console_and_metadata_answer_a_compute_from_the_controller(nf):
    """Issue 16 across hosts: the console URL of a server on cmp1 points at
    the proxy on ctl (pillar console:base_url, written on the compute), and
    cmp1 gets the noVNC page from it; a metadata request signed the way
    Neutron's metadata agent signs it, sent from cmp1 to ctl:8775, gets the
    server's metadata, and a wrong signature is refused."""
    server = nf.boot("cp-cmp1", host="cmp1")
    try:
        docs, cp = nf.openstack(f"console url show {server['id']} -f json")
        assert docs, cp.stderr[-2000:]
        url = docs[0]["url"]
        assert url.startswith(f"http://{nf.ctl}:6080/vnc_auto.html?"), url
        status, body = _curl(nf, "cmp1", url)
        assert status == 200 and "noVNC" in body, (status, body[:300])
        assert nf.daemon_pids(CTL).get("nova-novncproxy")

        iid, project = server["id"], server["project_id"]
        good = hmac.new(nf.passwords["metadata"].encode(), iid.encode(),
                        hashlib.sha256).hexdigest()
        meta_url = f"http://{nf.ctl}:8775/openstack/latest/meta_data.json"
        base = [("X-Instance-ID", iid), ("X-Tenant-ID", project),
                ("X-Forwarded-For", "10.0.0.5")]
        status, body = _curl(nf, "cmp1", meta_url, base + [("X-Instance-ID-Signature", good)])
        assert status == 200, (status, body[:500])
        meta = json.loads(body)
        assert meta["uuid"] == iid and meta["name"] == "cp-cmp1", meta
        status, _ = _curl(nf, "cmp1", meta_url, base + [("X-Instance-ID-Signature", "0" * 64)])
        assert status == 403
    finally:
        nf.delete_servers("cp-cmp1")


def test_second_rollout_changes_and_restarts_nothing(nf):
    before = nf.all_pids()
    assert all(before.values()), before
    rc, steps, _ = nf.orchestrate()
    assert rc == 0
    steps_ok(steps)
    assert changed_minions(steps) == {}
    applied = nf.apply("*")
    changed = {m: [sid for sid, r in states.items() if r.get("changes")]
               for m, states in applied.items()}
    assert changed == {"ctl": [], "cmp1": [], "cmp2": []}, changed
    assert nf.all_pids() == before


def test_drift_on_one_compute_is_fixed_there_alone(nf):
    nf.fleet.run("cmp1", ["sed", "-i", "s/^cpu_allocation_ratio = .*/cpu_allocation_ratio = 3.0/",
                          "/etc/nova/nova.conf"], check=True)
    nf.fleet.run("cmp1", ["/etc/init.d/nova-compute", "stop"], check=True)
    before = nf.all_pids()
    dry = nf.apply("*", test=True)
    pending = {m: sorted(sid for sid, r in states.items() if r["result"] is None)
               for m, states in dry.items()}
    assert pending == {"ctl": [], "cmp2": [],
                       "cmp1": ["nova-config-nova_conf", "nova-service-compute"]}, pending
    fix = nf.apply("*")
    changed = {m: sorted(sid for sid, r in states.items() if r.get("changes"))
               for m, states in fix.items()}
    assert changed == {"ctl": [], "cmp2": [],
                       "cmp1": ["nova-config-nova_conf", "nova-service-compute"]}, changed
    after = nf.all_pids()
    assert after["ctl"] == before["ctl"] and after["cmp2"] == before["cmp2"]
    assert after["cmp1"].get("nova-compute")


def _failed_steps(steps):
    return sorted(sid for sid, s in steps.items() if s["result"] is not True)


def test_a_failed_batch_stops_the_rollout_and_names_the_host(nf):
    """cmp1's apply fails (its nova.conf path is wrong in pillar): batch 1
    fails naming it and batch 2 (cmp2) never runs; with max_fail: 1 the
    rollout goes on, and the report step fails naming cmp1, its step and its
    failed states (Salt's own step says "States ran successfully"); fixed, a
    rerun converges."""
    broken = {"cmp1": {"nova": {"lookup": {"files": {"nova_conf": "/nonexistent/nova.conf"}}}}}
    nf.fleet.run("cmp2", ["sed", "-i", "s/^cpu_allocation_ratio = .*/cpu_allocation_ratio = 3.0/",
                          "/etc/nova/nova.conf"], check=True)  # a change cmp2 would get
    try:
        nf.write_pillar(per_host=broken)
        rc, steps, _ = nf.orchestrate()
        assert rc != 0
        assert _failed_steps(steps) == ["nova-orch-computes-1"], steps
        assert steps["nova-orch-computes-1"]["comment"].startswith(
            "Run failed on minions: cmp1"), steps["nova-orch-computes-1"]["comment"]
        assert "nova-orch-computes-2" not in steps and "nova-orch-report" not in steps
        assert "3.0" in nf.fleet.read_file("cmp2", "/etc/nova/nova.conf")  # never applied
        nf.fleet_pillar["max_fail"] = 1
        nf.write_pillar(per_host=broken)
        rc, steps, _ = nf.orchestrate()
        assert rc != 0
        assert _failed_steps(steps) == ["nova-orch-report"], steps
        assert steps["nova-orch-computes-1"]["comment"].startswith("States ran successfully")
        assert steps["nova-orch-computes-2"]["result"] is True
        report = steps["nova-orch-report"]["comment"]
        assert report.startswith("1 failure(s) in this rollout (minions: cmp1):\n"
                                 "nova-orch-computes-1: cmp1: failed states: "), report
        assert "nova-config-nova_conf" in report and "cmp2" not in report, report
        assert "cpu_allocation_ratio = 16.0" in nf.fleet.read_file("cmp2", "/etc/nova/nova.conf")
    finally:
        nf.fleet_pillar.pop("max_fail", None)
        nf.write_pillar()
    rc, steps, _ = nf.orchestrate()
    assert rc == 0
    steps_ok(steps)


def test_a_compute_whose_minion_is_down_fails_at_its_batch(nf):
    """cmp1's minion is down: the module sync goes on with the minions that
    answer, the controller gets its run, and batch 1 (cmp1) fails naming it,
    so batch 2 never runs; with max_fail: 1 the rollout carries on past it
    (cmp2 and discovery run) and the report step fails naming cmp1 and its
    step; the minion back, a rerun converges."""
    nf.fleet.minion_stop("cmp1")
    try:
        rc, steps, _ = nf.orchestrate()
        assert rc != 0
        assert _failed_steps(steps) == ["nova-orch-computes-1"], steps
        assert steps["nova-orch-sync-modules"]["result"] is True
        assert steps["nova-orch-sync-node"]["result"] is True
        comment = steps["nova-orch-computes-1"]["comment"]
        assert comment.startswith("Run failed on minions: cmp1") and "cmp2" not in comment, comment
        assert "nova-orch-computes-2" not in steps and "nova-orch-discover" not in steps

        nf.fleet_pillar["max_fail"] = 1
        nf.write_pillar()
        rc, steps, _ = nf.orchestrate()
        assert rc != 0
        assert _failed_steps(steps) == ["nova-orch-report"], steps
        assert steps["nova-orch-computes-1"]["comment"].startswith("States ran successfully")
        assert steps["nova-orch-computes-2"]["result"] is True
        assert steps["nova-orch-discover"]["result"] is True
        assert steps["nova-orch-report"]["comment"] == (
            "1 failure(s) in this rollout (minions: cmp1):\n"
            "nova-orch-computes-1: cmp1: no return (minion down or not answering)")
    finally:
        nf.fleet_pillar.pop("max_fail", None)
        nf.fleet.minion_start("cmp1")
        nf.fleet.wait_minions(["cmp1"])
        nf.write_pillar()
    rc, steps, _ = nf.orchestrate()
    assert rc == 0, steps
    steps_ok(steps)
    assert changed_minions(steps) == {}


def test_scale_out_by_compound_target_changes_only_the_new_host(nf):
    """cmp3 joins with no id list anywhere: the top file gives every cmp*
    the compute role, and nova:fleet:computes is the pillar-role target
    I@nova:roles:compute, which the master matches (and counts for
    discovery)."""
    nf.fleet.up(["cmp3"])
    before = nf.all_pids()
    nf.computes = "cmp*"
    nf.fleet_pillar["computes"] = "I@nova:roles:compute"
    nf.write_pillar()
    nf.sync()
    rc, steps, _ = nf.orchestrate()
    assert rc == 0, {k: v["comment"] for k, v in steps.items()}
    steps_ok(steps)
    changed = changed_minions(steps)
    # the others trust cmp3 once it is in the mine (migration trust)
    assert set(changed) == {"nova-orch-computes-3", "nova-orch-discover",
                            "nova-orch-migration-trust"}, changed
    assert changed["nova-orch-computes-3"] == ["cmp3"]
    assert changed["nova-orch-migration-trust"] == ["cmp1", "cmp2"]
    assert nf.all_pids() == {**before, "cmp3": nf.daemon_pids("cmp3")}
    assert _secrets_on(nf, "cmp3", _controller_only_secrets(nf)) == []
    server = nf.boot("scale-cmp3", host="cmp3")
    assert server["OS-EXT-SRV-ATTR:host"] == "cmp3"
    nf.delete_servers("scale-cmp3")


def test_split_control_plane_conductor_host_gets_its_run(nf):
    """A conductor that is not a controller: the orchestrate gives it its
    `nova` run after the sync node, and its nova-conductor starts."""
    nf.fleet.up(["cond1"])
    nf.conductors = ["ctl", "cond1"]
    nf.fleet_pillar["sync_conductor"] = "ctl"
    nf.write_pillar()
    nf.sync()
    rc, steps, _ = nf.orchestrate()
    assert rc == 0, {k: v["comment"] for k, v in steps.items()}
    assert steps["nova-orch-controllers"]["result"] is True
    assert "cond1" in steps["nova-orch-controllers"]["comment"]
    nf.wait(lambda: nf.compute_services().get(("nova-conductor", "cond1"), {}).get("State")
            == "up" or None, "nova-conductor on cond1 up")
    assert nf.daemon_pids("cond1") == {"nova-conductor": nf.daemon_pids("cond1")["nova-conductor"]}
    # builds now go through either conductor (RabbitMQ hands them round): cond1
    # reaches the cell database the cell mappings name (not "127.0.0.1")
    for name in ("split-1", "split-2", "split-3"):
        assert nf.boot(name)["status"] == "ACTIVE"
    nf.delete_servers("split-1", "split-2", "split-3")


def test_systemd_compute_comes_back_after_a_reboot(nf):
    """cmp2 boots again (systemd as PID 1): nova-compute starts (enabled by
    the formula) and the firewall rules the formula saved are restored."""
    rules = nf.fleet.run("cmp2", ["iptables", "-S", "INPUT"]).stdout
    assert "--dports 5900:5999" in rules
    nf.fleet.down(["cmp2"])
    nf.fleet.up(["cmp2"], systemd=["cmp2"])
    assert "--dports 5900:5999" in nf.fleet.run("cmp2", ["iptables", "-S", "INPUT"]).stdout
    nf.wait(lambda: nf.fleet.run("cmp2", ["systemctl", "is-active", "nova-compute"]).stdout
            .strip() == "active" or None, "nova-compute active after the boot")
    nf.wait(lambda: nf.compute_services().get(("nova-compute", "cmp2"), {}).get("State")
            == "up" or None, "nova-compute on cmp2 up")
    applied = nf.apply("cmp2")
    assert not [sid for sid, r in applied["cmp2"].items() if r.get("changes")]


def test_aggregates_from_pillar_place_servers_and_move_hosts(nf):
    """nova:aggregates on the fleet (issue 16): the orchestrate makes them on
    the identity minion once the computes are mapped; a server asking for a
    zone lands on the host pillar put there; swapping two hosts' zones in
    pillar moves them in Nova (each leaves its old aggregate first); a rerun
    changes nothing; null removes an aggregate."""
    def aggregates():
        """{name: {"availability_zone", "hosts", ...}} of Nova's aggregates."""
        docs, _ = nf.openstack("aggregate list -f json")
        names = [a["Name"] for a in docs[0]] if docs else []
        shown, _ = nf.openstack(*[f"aggregate show {n} -f json" for n in names])
        return {a["name"]: a for a in shown}

    def zones(a, b):
        return {"zone-a": {"availability_zone": "az1", "hosts": [a], "metadata": {"ssd": True}},
                "zone-b": {"availability_zone": "az2", "hosts": [b]}}

    try:
        nf.shared = {"aggregates": zones("cmp1", "cmp2")}
        nf.write_pillar()
        rc, steps, _ = nf.orchestrate()
        assert rc == 0, {k: v["comment"] for k, v in steps.items()}
        steps_ok(steps)
        assert changed_minions(steps)["nova-orch-aggregates"] == ["ctl"]
        assert "nova-orch-aggregates" not in changed_minions(nf.orchestrate()[1])
        made = aggregates()
        assert made["zone-a"]["availability_zone"] == "az1" and made["zone-a"]["hosts"] == ["cmp1"]
        assert nf.boot("agg-1", zone="az1")["OS-EXT-SRV-ATTR:host"] == "cmp1"
        assert nf.boot("agg-2", zone="az2")["OS-EXT-SRV-ATTR:host"] == "cmp2"
        nf.delete_servers("agg-1", "agg-2")  # Nova moves no host with servers between zones

        nf.shared = {"aggregates": zones("cmp2", "cmp1")}  # swapped
        nf.write_pillar()
        dry = nf.apply(CTL, sls="nova.aggregates", test=True)[CTL]
        assert sorted(s for s, r in dry.items() if r["result"] is None) == [
            "nova-aggregate-zone-a", "nova-aggregate-zone-a-leavers",
            "nova-aggregate-zone-b", "nova-aggregate-zone-b-leavers"], dry
        assert aggregates()["zone-a"]["hosts"] == ["cmp1"]  # nothing moved yet
        run = nf.apply(CTL, sls="nova.aggregates")[CTL]
        assert all(r["result"] for r in run.values()), {s: r["comment"] for s, r in run.items()}
        assert nf.boot("agg-3", zone="az1")["OS-EXT-SRV-ATTR:host"] == "cmp2"
        nf.delete_servers("agg-3")
        again = nf.apply("*")
        assert {m: [s for s, r in states.items() if r.get("changes")]
                for m, states in again.items()} == {m: [] for m in again}

        nf.shared = {"aggregates": {"zone-a": None, "zone-b": None}}
        nf.write_pillar()
        run = nf.apply(CTL, sls="nova.aggregates")[CTL]
        assert sorted(s for s, r in run.items() if r.get("changes")) == [
            "nova-aggregate-zone-a-absent", "nova-aggregate-zone-b-absent"], run
        assert not {"zone-a", "zone-b"} & set(aggregates())
    finally:
        nf.shared = {}
        nf.write_pillar()
