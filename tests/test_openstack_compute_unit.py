"""Unit tests of openstack_compute (module + states) against a fake Keystone,
Nova and Placement served over HTTP on 127.0.0.1 by a thread of this process
(tests/compute_fake.py). Everything on our side is real: the keystoneauth1
Session and its catalog lookup, the microversion headers, request counting,
the module and the states, loaded as Salt would (tests/harness.load_module).
"""
import json
import logging
import time
import uuid

import pytest
import yaml

from compute_fake import ADMIN_PW, Cloud, serve
from harness import load_module

MICROVERSIONS = {"/os-services": "2.53", "/servers": "2.25", "/os-migrations": "2.59",
                 "/os-aggregates": "2.41", "/os-hypervisors": "2.53"}
FAST = {"poll_interval": 0.01, "timeout": 10}


# --------------------------------------------------------------------------
# the engine, loaded with its dunders, talking to the fake
# --------------------------------------------------------------------------
class Env:
    def __init__(self, cloud, pillar=None):
        self.cloud = cloud
        self.auth = {"auth_url": cloud.base + "/identity/v3", "username": "admin",
                     "password": ADMIN_PW, "project_name": "admin",
                     "user_domain_name": "Default", "project_domain_name": "Default",
                     "region_name": "RegionOne"}
        self.pillar = pillar if pillar is not None else {"openstack_compute:auth": self.auth}
        tag = uuid.uuid4().hex
        self.mod = load_module("modules", "openstack_compute", f"oc_modules_{tag}")
        self.states = load_module("states", "openstack_compute", f"oc_states_{tag}")
        self.opts = {"test": False}
        self.mod.__salt__ = {"config.get": lambda key, default="": self.pillar.get(key, default)}
        self.mod.__opts__ = self.opts
        self.states.__salt__ = {f"openstack_compute.{n}": getattr(self.mod, n)
                                for n in dir(self.mod) if not n.startswith("_")
                                and callable(getattr(self.mod, n))}
        self.states.__opts__ = self.opts
        self.returns = []  # every state return, for the secret checks
        self.new_run()

    def new_run(self):
        """A fresh __context__, as in the next salt-call."""
        self.mod.__context__ = {}
        self.cloud.log.clear()

    def requests(self):
        return self.mod.request_count()

    def __getattr__(self, name):
        fun = getattr(self.states, name)

        def call(*args, test=False, **kwargs):
            self.opts["test"] = test
            ret = fun(*args, **kwargs)
            self.returns.append(ret)
            return ret
        return call


@pytest.fixture
def cloud():
    fake = Cloud()
    server = serve(fake)
    fake.add_compute("cmp1")
    fake.add_compute("cmp2")
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(cloud):
    return Env(cloud)


def paths(cloud, method=None):
    return [(m, p) for m, _, p, _, _ in cloud.log if method is None or m == method]


def service(cloud, host):
    return next(s for s in cloud.services.values() if s["host"] == host)


# --------------------------------------------------------------------------
# service_disabled / service_enabled
# --------------------------------------------------------------------------
def test_service_disabled_then_noop_in_two_requests(env, cloud):
    ret = env.service_disabled("cmp1", reason="disk swap")
    assert ret["result"] is True, ret
    assert ret["changes"] == {"status": {"old": "enabled", "new": "disabled"},
                              "disabled_reason": {"old": None, "new": "disk swap"}}
    assert service(cloud, "cmp1")["status"] == "disabled"
    assert service(cloud, "cmp1")["disabled_reason"] == "disk swap"
    assert ("PUT", "/compute/v2.1/os-services/" + service(cloud, "cmp1")["id"]) in paths(cloud)
    env.new_run()
    ret = env.service_disabled("cmp1", reason="disk swap")
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert ret["comment"] == "nova-compute service of host 'cmp1' is disabled (disk swap)"
    assert env.requests() == 2  # token, one service list
    assert not cloud.writes()


def test_service_disabled_reason_only_and_kept(env, cloud):
    env.service_disabled("cmp1", reason="a")
    env.new_run()
    ret = env.service_disabled("cmp1", reason="b")
    assert ret["changes"] == {"disabled_reason": {"old": "a", "new": "b"}}
    env.new_run()
    assert env.service_disabled("cmp1")["changes"] == {}  # no reason given: any is fine
    assert service(cloud, "cmp1")["disabled_reason"] == "b"


def test_service_test_mode_reports_exactly_and_writes_nothing(env, cloud):
    ret = env.service_disabled("state-id", host="cmp2", reason="r", test=True)
    assert ret["result"] is None
    assert ret["changes"] == {"status": {"old": "enabled", "new": "disabled"},
                              "disabled_reason": {"old": None, "new": "r"}}
    assert ret["comment"] == "nova-compute service of host 'cmp2' would be disabled"
    assert env.service_enabled("cmp2", test=True)["changes"] == {}
    assert not cloud.writes()
    assert service(cloud, "cmp2")["status"] == "enabled"


def test_service_enabled_clears_reason(env, cloud):
    env.service_disabled("cmp1", reason="maint")
    env.new_run()
    ret = env.service_enabled("cmp1")
    assert ret["changes"] == {"status": {"old": "disabled", "new": "enabled"},
                              "disabled_reason": {"old": "maint", "new": None}}
    assert service(cloud, "cmp1")["disabled_reason"] is None
    env.new_run()
    assert env.service_enabled("cmp1")["changes"] == {}
    assert not cloud.writes() and env.requests() == 2


def test_unknown_host_fails_cleanly(env, cloud):
    for ret in (env.service_disabled("cmp9"), env.service_enabled("cmp9"),
                env.host_drained("cmp9", **FAST)):
        assert ret["result"] is False
        assert ret["comment"] == "no nova-compute service is registered for host 'cmp9'"
    assert not cloud.writes()


def test_services_listed_once_per_run(env, cloud):
    env.service_disabled("cmp1")
    env.service_disabled("cmp2")
    env.service_enabled("cmp1")
    assert paths(cloud, "GET").count(("GET", "/compute/v2.1/os-services")) == 1


# --------------------------------------------------------------------------
# host_drained
# --------------------------------------------------------------------------
def test_drain_live_and_cold_then_noop(env, cloud):
    cloud.add_server("web1", "cmp1", project="p1")
    cloud.add_server("web2", "cmp1", project="p2")  # another project: all_tenants
    off = cloud.add_server("stopped", "cmp1", status="SHUTOFF")
    ret = env.host_drained("cmp1", reason="maint", **FAST)
    assert ret["result"] is True, ret
    assert ret["changes"]["service"] == {"old": "enabled", "new": "disabled (maint)"}
    assert len(ret["changes"]["live migration"]) == 2
    assert ret["changes"]["cold migration"] == [f"stopped ({off})"]
    assert ret["comment"].startswith("host 'cmp1' drained (2 live-migrated, 1 cold-migrated")
    assert cloud.on_host("cmp1") == [] and cloud.on_host("cmp2") == ["stopped", "web1", "web2"]
    assert cloud.servers[off]["status"] == "SHUTOFF"  # confirmed: back to its state
    actions = [p for _, p in paths(cloud, "POST") if p.endswith("/action")]
    assert len(actions) == 4  # 2 live, 1 migrate, 1 confirmResize
    assert actions.count(f"/compute/v2.1/servers/{off}/action") == 2
    env.new_run()
    ret = env.host_drained("cmp1", reason="maint", **FAST)
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert ret["comment"] == "host 'cmp1' is drained: no instance on it, nova-compute disabled (maint)"
    assert env.requests() == 4  # token, services, servers on the host, migrations
    assert not cloud.writes()


def test_drain_test_mode_lists_moves_and_writes_nothing(env, cloud):
    a = cloud.add_server("a", "cmp1")
    b = cloud.add_server("b", "cmp1", status="PAUSED")
    c = cloud.add_server("c", "cmp1", status="SHUTOFF")
    e = cloud.add_server("e", "cmp1", status="ERROR")
    ret = env.host_drained("cmp1", test=True, **FAST)
    assert ret["result"] is None
    assert ret["changes"] == {
        "service": {"old": "enabled",
                    "new": "disabled (drained by Salt (openstack_compute.host_drained))"},
        "live migration": [f"a ({a})", f"b ({b})"], "cold migration": [f"c ({c})"]}
    assert ret["comment"] == (f"host 'cmp1' would be drained (cannot be moved: e ({e}): status "
                              "ERROR: Nova moves ACTIVE and PAUSED servers live, ACTIVE and "
                              "SHUTOFF ones cold)")
    assert not cloud.writes()
    assert env.requests() == 5  # token, services, 2 pages of 3 servers, migrations
    assert cloud.on_host("cmp1") == ["a", "b", "c", "e"]


def test_drain_live_refused_or_failed_falls_back_to_cold(env, cloud):
    r409 = cloud.add_server("r409", "cmp1", live="refuse409")
    r400 = cloud.add_server("r400", "cmp1", live="refuse400")
    err = cloud.add_server("err", "cmp1", live="error")
    ret = env.host_drained("cmp1", **FAST)
    assert ret["result"] is True, ret
    assert ret["changes"]["cold migration"] == sorted([f"r409 ({r409})", f"r400 ({r400})",
                                                       f"err ({err})"])
    assert "live migration" not in ret["changes"]
    assert cloud.on_host("cmp1") == []
    kinds = [m["migration_type"] + ":" + m["status"] for m in cloud.migrations
             if m["instance_uuid"] == err]
    assert kinds == ["live-migration:error", "migration:confirmed"]


def test_drain_failure_names_each_instance_left_and_why(env, cloud):
    bad = cloud.add_server("bad", "cmp1", live="error", cold="error")
    paused = cloud.add_server("paused", "cmp1", status="PAUSED", live="refuse409")
    ok = cloud.add_server("fine", "cmp1")
    ret = env.host_drained("cmp1", **FAST)
    assert ret["result"] is False
    assert ret["changes"]["live migration"] == [f"fine ({ok})"]
    assert ret["comment"].startswith("host 'cmp1' is not drained: 2 instance(s) left: ")
    assert f"bad ({bad}): live migration " in ret["comment"]
    assert "ended in status error; cold migration" in ret["comment"]
    assert (f"paused ({paused}): live migration refused (HTTP 409: live-migration of paused "
            "refused by the fake); a PAUSED server cannot be cold-migrated") in ret["comment"]
    assert cloud.on_host("cmp1") == ["bad", "paused"]


def test_drain_without_cold_migration(env, cloud):
    off = cloud.add_server("off", "cmp1", status="SHUTOFF")
    plan = env.mod.drain_plan("cmp1", cold_migration=False)
    assert plan["stuck"] == {f"off ({off})": "SHUTOFF: only a cold migration moves it "
                                             "(cold_migration is off)"}
    ret = env.host_drained("cmp1", cold_migration=False, test=True, **FAST)
    assert ret["result"] is None and "cannot be moved: off" in ret["comment"]
    env.service_disabled("cmp1")
    ret = env.host_drained("cmp1", cold_migration=False, test=True, **FAST)
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith("host 'cmp1' cannot be drained (cannot be moved: off")
    ret = env.host_drained("cmp1", cold_migration=False, **FAST)
    assert ret["result"] is False
    assert ret["comment"].startswith("host 'cmp1' is not drained: 1 instance(s) cannot be moved")
    assert [m for m, _, _ in cloud.writes()] == ["PUT"]  # the disable only


def test_every_instance_left_is_named(env, cloud):
    ids = [cloud.add_server(f"err{i:02}", "cmp1", status="ERROR") for i in range(12)]
    ret = env.host_drained("cmp1", **FAST)
    assert ret["result"] is False and "12 instance(s) cannot be moved" in ret["comment"]
    assert all(f"err{i:02} ({sid})" in ret["comment"] for i, sid in enumerate(ids))


def test_drain_times_out_bounded_and_names_the_server(env, cloud):
    slow = cloud.add_server("slow", "cmp1", live="hang")
    started = time.monotonic()
    ret = env.host_drained("cmp1", timeout=0.3, poll_interval=0.05)
    elapsed = time.monotonic() - started
    assert ret["result"] is False
    assert ret["comment"].startswith("host 'cmp1' is not drained (timed out after 0.3 s): "
                                     f"1 instance(s) left: slow ({slow}): live migration ")
    assert "still running when the timeout (0.3 s) ran out" in ret["comment"]
    assert elapsed < 3, elapsed
    polls = paths(cloud, "GET").count(("GET", "/compute/v2.1/os-migrations"))
    assert polls <= 0.3 / 0.05 + 3, polls  # plan + baseline + at most timeout/interval + 1


def test_no_migration_starts_after_the_deadline(env, cloud):
    sid = cloud.add_server("x", "cmp1", live="error")
    env.service_disabled("cmp1")
    ret = env.host_drained("cmp1", timeout=0.001, poll_interval=1)
    assert ret["result"] is False and not [p for _, p in paths(cloud, "POST") if "action" in p]
    assert ret["comment"].startswith(f"host 'cmp1' is not drained (timed out after 0.001 s): "
                                     f"1 instance(s) left: x ({sid}): not started when")
    # the live migration goes and fails; the deadline comes before the cold one may start
    env.new_run()
    ret = env.host_drained("cmp1", timeout=0.5, poll_interval=0.4)
    assert ret["result"] is False
    assert [p for _, p in paths(cloud, "POST") if "action" in p] == [
        f"/compute/v2.1/servers/{sid}/action"]
    assert ("ended in status error; cold migration not started when the timeout (0.5 s) ran out"
            in ret["comment"])


def test_drain_waits_for_a_busy_server(env, cloud):
    busy = cloud.add_server("busy", "cmp1", task="rebooting", busy_polls=4)
    ret = env.host_drained("cmp1", test=True, **FAST)
    assert ret["changes"]["service"]["old"] == "enabled"
    assert f"busy, waited for: busy ({busy}): task rebooting" in ret["comment"]
    env.new_run()
    ret = env.host_drained("cmp1", **FAST)
    assert ret["result"] is True, ret
    assert ret["changes"]["live migration"] == [f"busy ({busy})"]


def test_unconfirmed_cold_migration_away_is_confirmed(env, cloud):
    sid = cloud.add_server("resized", "cmp2", status="VERIFY_RESIZE")
    cloud.servers[sid]["was"] = "ACTIVE"
    cloud.add_migration(sid, "migration", "finished", "cmp1", "cmp2")
    env.service_disabled("cmp1")
    env.new_run()
    ret = env.host_drained("cmp1", test=True, **FAST)
    assert ret["changes"] == {"confirm resize": [f"instance ({sid})"]}
    ret = env.host_drained("cmp1", **FAST)
    assert ret["result"] is True and ret["changes"] == {"confirm resize": [f"instance ({sid})"]}
    assert cloud.servers[sid]["status"] == "ACTIVE"
    env.new_run()
    assert env.host_drained("cmp1", **FAST)["changes"] == {}


def test_old_migration_records_are_not_ours(env, cloud):
    """A completed live migration of the same server from an earlier visit must
    not count as this drain's: the drain waits for its own record."""
    sid = cloud.add_server("back-again", "cmp1", live="hang")
    cloud.add_migration(sid, "live-migration", "completed", "cmp1", "cmp2")
    ret = env.host_drained("cmp1", timeout=0.2, poll_interval=0.02)
    assert ret["result"] is False and "back-again" in ret["comment"]
    assert "live migration" not in ret["changes"]


def test_many_servers_paged(env, cloud):
    ids = [cloud.add_server(f"vm{i}", "cmp1") for i in range(7)]
    ret = env.host_drained("cmp1", **FAST)
    assert ret["result"] is True and len(ret["changes"]["live migration"]) == 7
    assert cloud.on_host("cmp2") == sorted(f"vm{i}" for i in range(7))
    lists = [q for m, _, p, q, _ in cloud.log if p.endswith("/servers/detail")]
    assert {"all_tenants": "1", "host": "cmp1", "marker": ids[2]} in lists


def test_server_arriving_or_vanishing_during_the_drain(env, cloud):
    keep = cloud.add_server("keep", "cmp1", task="rebooting", busy_polls=3)
    state = {"n": 0}

    def meddle(fake):
        state["n"] += 1
        if state["n"] == 3:  # during the drain's polls
            fake.servers.pop(keep)
            fake.add_server("newcomer", "cmp1")
    cloud.on_migrations_get = meddle
    ret = env.host_drained("cmp1", **FAST)
    assert ret["result"] is False
    assert "newcomer" in ret["comment"] and "arrived on the host during the drain" in ret["comment"]
    assert "keep" not in ret["comment"] and "1 gone meanwhile" in ret["comment"]


def test_a_server_deleted_before_its_action_is_gone(env, cloud):
    doomed = cloud.add_server("doomed", "cmp1")
    cloud.add_server("stays", "cmp1")
    lists = {"n": 0}
    real = cloud.server_list

    def server_list(query):
        answer = real(query)
        lists["n"] += 1
        if lists["n"] == 2:  # the drain's own listing: deleted before its POST
            cloud.servers.pop(doomed)
        return answer
    cloud.server_list = server_list
    ret = env.host_drained("cmp1", **FAST)
    assert ret["result"] is True, ret
    assert ret["changes"]["live migration"] == [f"stays ({next(iter(cloud.servers))})"]
    assert "1 gone meanwhile" in ret["comment"]


def test_drain_plan_and_drain_as_functions(env, cloud):
    sid = cloud.add_server("a", "cmp1")
    assert env.mod.drain_plan("cmp1") == {"live": [f"a ({sid})"], "cold": [], "confirm": [],
                                          "busy": {}, "stuck": {}}
    done = env.mod.drain("cmp1", poll_interval=0.01, timeout=5)
    assert done["moved"] == {"live": [f"a ({sid})"], "cold": []} and done["left"] == {}
    assert done["timed_out"] is False


def test_bad_drain_input_fails_before_any_request(env, cloud):
    for kwargs in ({"timeout": 0}, {"timeout": "soon"}, {"poll_interval": -1},
                   {"reason": ""}, {"timeout": True}):
        ret = env.host_drained("cmp1", **kwargs)
        assert ret["result"] is False and "must be" in ret["comment"], ret
    assert cloud.log == []


# --------------------------------------------------------------------------
# host_decommissioned
# --------------------------------------------------------------------------
def test_decommission_refused_while_instances_remain(env, cloud):
    sid = cloud.add_server("last-one", "cmp1")
    cloud.services[service(cloud, "cmp1")["id"]]["state"] = "down"
    for test in (True, False):
        ret = env.host_decommissioned("cmp1", test=test)
        assert ret["result"] is False
        assert ret["comment"] == (f"cannot decommission host 'cmp1': 1 instance(s) still on it: "
                                  f"last-one ({sid}); drain it first "
                                  "(openstack_compute.host_drained)")
    assert not cloud.writes()


def test_decommission_refused_while_the_service_is_up(env, cloud):
    ret = env.host_decommissioned("cmp1")
    assert ret["result"] is False
    assert "its nova-compute is still up (last report 2026-12-02T10:00:00.000000)" in ret["comment"]
    assert not cloud.writes()
    ret = env.host_decommissioned("cmp1", require_down=False)
    assert ret["result"] is True and ret["changes"]["service"]["new"] is None


def test_decommission_waits_for_the_stopped_service_to_be_reported_down(env, cloud):
    """wait_down lists the services again (the run's cached list would say
    "up" forever, as Salt's retry saw on the fleet)."""
    (svc,) = [s for s in cloud.services.values() if s["host"] == "cmp1"]
    assert env.mod.compute_service("cmp1")["state"] == "up"  # the run's list: up
    lists = []

    def goes_down():  # the next list (after the first wait) says down
        lists.append(1)
        svc["state"] = "down"
    cloud.on_services_get = goes_down
    ret = env.host_decommissioned("cmp1", wait_down=5)
    assert ret["result"] is True, ret["comment"]
    assert lists == [1]  # listed again once
    assert ret["changes"]["service"]["new"] is None and not cloud.hosts_of_services("cmp1")
    cloud.on_services_get = None
    ret = env.host_decommissioned("cmp2", wait_down=0.05)  # never down: refused in time
    assert ret["result"] is False and "still up" in ret["comment"]
    assert cloud.hosts_of_services("cmp2")


def test_decommission_then_noop(env, cloud):
    sid, node = cloud.add_compute("cmp3", state="down", status="disabled", reason="gone")
    cloud.aggregates[1] = {"id": 1, "uuid": "u1", "name": "ssd", "hosts": ["cmp3", "cmp1"],
                           "metadata": {}}
    ret = env.host_decommissioned("cmp3", test=True)
    expected = {"service": {"old": f"{sid} (disabled (gone))", "new": None},
                "compute nodes": {"old": [f"cmp3.example ({node})"], "new": None},
                "aggregates": {"old": ["ssd"], "new": []}}
    assert ret["result"] is None and ret["changes"] == expected
    assert ret["comment"] == "nova-compute service of host 'cmp3' would be deleted"
    assert not cloud.writes()
    ret = env.host_decommissioned("cmp3")
    assert ret["result"] is True and ret["changes"] == expected, ret
    assert sid not in cloud.services and node not in cloud.providers
    assert "cmp3" not in cloud.host_mappings and cloud.aggregates[1]["hosts"] == ["cmp1"]
    assert cloud.writes() == [("DELETE", "compute", f"/compute/v2.1/os-services/{sid}")]
    env.new_run()
    ret = env.host_decommissioned("cmp3")
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == ("nova-compute service of host 'cmp3' is absent: the host is "
                              "decommissioned")
    assert env.requests() == 2 and not cloud.writes()


def test_decommission_removes_a_provider_tree_nova_left(env, cloud):
    sid, node = cloud.add_compute("cmp3", state="down")
    child = str(uuid.uuid4())
    cloud.providers[child] = {"uuid": child, "name": "cmp3:NIC", "parent_provider_uuid": node}
    cloud.nova_drops_provider_delete = True
    ret = env.host_decommissioned("cmp3")
    assert ret["result"] is True, ret
    assert ret["changes"]["placement providers removed"] == [
        f"cmp3:NIC ({child})", f"cmp3.example ({node})"]  # leaves first
    assert node not in cloud.providers and child not in cloud.providers
    assert [p for m, _, p in cloud.writes()][1:] == [f"/placement/resource_providers/{child}",
                                                     f"/placement/resource_providers/{node}"]


def test_decommission_names_consumers_of_a_provider_in_use(env, cloud):
    sid, node = cloud.add_compute("cmp3", state="down")
    cloud.nova_drops_provider_delete = True
    cloud.allocations[node] = {"c0ffee00-0000-0000-0000-000000000001": {}}
    ret = env.host_decommissioned("cmp3")
    assert ret["result"] is False
    assert ret["comment"] == ("nova-compute service of host 'cmp3' deleted, but Placement keeps "
                              f"provider(s) with allocations: cmp3.example ({node}): "
                              "c0ffee00-0000-0000-0000-000000000001")
    assert sid not in cloud.services


def test_decommission_reports_the_delete_when_placement_fails_after_it(env, cloud):
    sid, node = cloud.add_compute("cmp3", state="down")
    cloud.placement_down = True
    ret = env.host_decommissioned("cmp3")
    assert ret["result"] is False
    assert ret["changes"] == {"done before the failure": ["deleted the nova-compute service"]}
    assert ret["comment"].startswith("Placement at http://127.0.0.1:")
    assert ret["comment"].endswith("answered GET /resource_providers with HTTP 503: "
                                   "placement is down")
    assert sid not in cloud.services


def test_decommission_refused_by_nova_is_reported(env, cloud):
    sid, _ = cloud.add_compute("cmp3", state="down")
    other = cloud.add_server("elsewhere", "cmp2")
    cloud.add_migration(other, "migration", "finished", "cmp3", "cmp2")
    ret = env.host_decommissioned("cmp3")
    assert ret["result"] is False
    assert ret["comment"].startswith("Nova at http://127.0.0.1:")
    assert ret["comment"].endswith(f"answered DELETE /os-services/{sid} with HTTP 409: Unable "
                                   "to delete compute service that has in-progress migrations.")


def test_compute_nodes_found_when_named_unlike_the_host(env, cloud):
    sid, node = cloud.add_compute("cmp3")
    cloud.hypervisors[node]["hypervisor_hostname"] = "1f0c-ironic-node"
    assert env.mod.compute_nodes("cmp3") == [{"id": node,
                                              "hypervisor_hostname": "1f0c-ironic-node"}]


# --------------------------------------------------------------------------
# aggregates
# --------------------------------------------------------------------------
def test_aggregate_created_then_noop_in_two_requests(env, cloud):
    ret = env.aggregate_present("fast", availability_zone="az1", hosts=["cmp1", "cmp2"],
                                metadata={"ssd": True, "tier": 2, "note": "x"})
    assert ret["result"] is True, ret
    assert ret["changes"] == {
        "aggregate": {"old": None, "new": "fast"},
        "availability_zone": {"old": None, "new": "az1"},
        "hosts": {"old": [], "new": ["cmp1", "cmp2"]},
        "metadata": {"old": {"note": None, "ssd": None, "tier": None},
                     "new": {"note": "x", "ssd": "true", "tier": "2"}}}
    agg = cloud.aggregates[1]
    assert agg["hosts"] == ["cmp1", "cmp2"]
    assert agg["metadata"] == {"availability_zone": "az1", "ssd": "true", "tier": "2", "note": "x"}
    env.new_run()
    ret = env.aggregate_present("fast", availability_zone="az1", hosts=["cmp2", "cmp1"],
                                metadata={"ssd": "true", "tier": 2, "note": "x"})
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert ret["comment"] == "aggregate 'fast' is in the correct state"
    assert env.requests() == 2 and not cloud.writes()


def test_aggregate_updated_exactly_and_test_mode(env, cloud):
    env.aggregate_present("fast", availability_zone="az1", hosts=["cmp1"],
                          metadata={"ssd": "true", "old": "1"})
    cloud.add_compute("cmp3")
    env.new_run()
    args = {"availability_zone": "az2", "hosts": ["cmp2", "cmp3"], "metadata": {"ssd": "false"}}
    expected = {"availability_zone": {"old": "az1", "new": "az2"},
                "hosts": {"old": ["cmp1"], "new": ["cmp2", "cmp3"]},
                "metadata": {"old": {"old": "1", "ssd": "true"},
                             "new": {"old": None, "ssd": "false"}}}
    ret = env.aggregate_present("fast", test=True, **args)
    assert ret["result"] is None and ret["changes"] == expected
    assert ret["comment"] == "aggregate 'fast' would be updated"
    assert not cloud.writes()
    ret = env.aggregate_present("fast", **args)
    assert ret["result"] is True and ret["changes"] == expected
    assert cloud.aggregates[1]["hosts"] == ["cmp2", "cmp3"]
    assert cloud.aggregates[1]["metadata"] == {"availability_zone": "az2", "ssd": "false"}
    bodies = [p for m, _, p in cloud.writes()]
    assert bodies.count("/compute/v2.1/os-aggregates/1/action") == 4  # -1, +2, metadata once


def test_aggregate_arguments_left_out_are_left_alone(env, cloud):
    env.aggregate_present("fast", availability_zone="az1", hosts=["cmp1"], metadata={"a": "1"})
    env.new_run()
    assert env.aggregate_present("fast")["changes"] == {}
    assert env.aggregate_present("fast", hosts=[], metadata={})["changes"] == {
        "hosts": {"old": ["cmp1"], "new": []}, "metadata": {"old": {"a": "1"}, "new": {"a": None}}}
    assert cloud.aggregates[1]["metadata"] == {"availability_zone": "az1"}


def test_aggregate_zone_cannot_be_taken_away(env, cloud):
    """Nova 26.x refuses an empty zone (PUT and set_metadata alike): '' asserts
    "no zone", and fails before any write on an aggregate that has one."""
    assert env.aggregate_present("plain", availability_zone="")["result"] is True
    env.aggregate_present("fast", availability_zone="az1", hosts=["cmp1"])
    env.new_run()
    for test in (True, False):
        ret = env.aggregate_present("fast", availability_zone="", hosts=[], test=test)
        assert ret["result"] is False and ret["changes"] == {}
        assert ret["comment"] == ("aggregate 'fast' is in availability zone 'az1', and Nova "
                                  "26.x refuses to take a zone away (an empty one): remove the "
                                  "aggregate (aggregate_absent) and create it again")
    assert not cloud.writes()
    with pytest.raises(Exception, match="does not support empty named availability zone"):
        env.mod.aggregate_set_zone(1, None)


def test_aggregate_partial_failure_reports_what_was_done(env, cloud):
    env.aggregate_present("a", availability_zone="az1", hosts=["cmp1"])
    env.aggregate_present("b", availability_zone="az2", hosts=["cmp2"], metadata={"k": "v"})
    env.new_run()
    ret = env.aggregate_present("b", hosts=["cmp1"], metadata={})
    assert ret["result"] is False
    assert ret["changes"] == {"done before the failure": ["removed host cmp2"]}
    assert ret["comment"].endswith("answered POST /os-aggregates/2/action with HTTP 409: Cannot "
                                   "add host to aggregate. Reason: One or more hosts already in "
                                   "availability zone(s) ['az1'].")
    assert cloud.aggregates[2]["hosts"] == [] and cloud.aggregates[2]["metadata"]["k"] == "v"


def test_aggregate_unknown_host_fails_before_any_write(env, cloud):
    ret = env.aggregate_present("fast", hosts=["cmp1", "nope", "zzz"])
    assert ret["result"] is False
    assert ret["comment"] == ("cannot add host(s) nope, zzz to aggregate 'fast': no nova-compute "
                              "service is registered for them")
    assert not cloud.writes()


def test_aggregate_bad_input_fails_before_any_request(env, cloud):
    for kwargs in ({"hosts": "cmp1"}, {"metadata": ["a"]}, {"availability_zone": 3},
                   {"metadata": {"availability_zone": "x"}}, {"metadata": {"k": [1]}}):
        ret = env.aggregate_present("fast", **kwargs)
        assert ret["result"] is False, (kwargs, ret)
    assert env.aggregate_present("", hosts=[])["result"] is False
    assert cloud.log == []


def test_hosts_leave_an_aggregate_before_another_takes_them(env, cloud):
    """aggregate_hosts_left only removes (nothing added, nothing created):
    two hosts swap zones when every aggregate's leavers run first."""
    env.aggregate_present("a", availability_zone="az1", hosts=["cmp1"])
    env.aggregate_present("b", availability_zone="az2", hosts=["cmp2"])
    env.new_run()
    dry = env.aggregate_hosts_left("a", hosts=["cmp2"], test=True)
    assert dry["result"] is None and dry["changes"] == {"hosts": {"old": ["cmp1"], "new": []}}
    assert dry["comment"] == "aggregate 'a': host(s) cmp1 would be removed"
    assert not cloud.writes()
    for name, hosts in (("a", ["cmp2"]), ("b", ["cmp1"])):
        ret = env.aggregate_hosts_left(name, hosts=hosts)
        assert ret["result"] is True and ret["changes"]["hosts"]["new"] == [], ret
    for name, zone, hosts in (("a", "az1", ["cmp2"]), ("b", "az2", ["cmp1"])):
        assert env.aggregate_present(name, availability_zone=zone, hosts=hosts)["result"] is True
    assert {a["name"]: a["hosts"] for a in cloud.aggregates.values()} == {
        "a": ["cmp2"], "b": ["cmp1"]}
    env.new_run()
    assert env.aggregate_hosts_left("a", hosts=["cmp2"])["changes"] == {}
    missing = env.aggregate_hosts_left("nope", hosts=[])
    assert missing["result"] is True and missing["changes"] == {} and not cloud.writes()


def test_aggregate_absent(env, cloud):
    env.aggregate_present("fast", hosts=["cmp1", "cmp2"])
    env.new_run()
    ret = env.aggregate_absent("fast", test=True)
    assert ret["result"] is None and ret["changes"] == {
        "aggregate": {"old": "fast", "new": None}, "hosts": {"old": ["cmp1", "cmp2"], "new": []}}
    assert not cloud.writes()
    ret = env.aggregate_absent("fast")
    assert ret["result"] is True and cloud.aggregates == {}
    assert [m for m, _, _ in cloud.writes()] == ["POST", "POST", "DELETE"]
    env.new_run()
    ret = env.aggregate_absent("fast")
    assert ret["changes"] == {} and ret["comment"] == "aggregate 'fast' is already absent"
    assert env.requests() == 2 and not cloud.writes()


# --------------------------------------------------------------------------
# one run, many states: one token, one list per kind; microversions
# --------------------------------------------------------------------------
def test_a_whole_noop_run_and_the_microversions(env, cloud):
    cloud.add_compute("cmp3", state="down")
    cloud.add_server("vm", "cmp1")

    def run():
        return [env.service_disabled("cmp1", reason="maint"),
                env.host_drained("cmp1", reason="maint", **FAST),
                env.aggregate_present("fast", hosts=["cmp2"], metadata={"a": "b"}),
                env.host_decommissioned("cmp3"),
                env.service_enabled("cmp2")]
    assert all(r["result"] for r in run())
    for _, api, path, _, mv in cloud.log:
        if api == "compute":
            route = "/" + path.split("/")[3]
            assert mv == MICROVERSIONS[route], (path, mv)
        elif api == "placement":
            assert mv == "1.14"
    env.new_run()
    rets = run()
    assert all(r["result"] is True and r["changes"] == {} for r in rets), rets
    assert not cloud.writes()
    # token, services, servers on cmp1, migrations of cmp1, aggregates
    assert env.requests() == 5, cloud.log


# --------------------------------------------------------------------------
# credentials, endpoints, failures, secrets
# --------------------------------------------------------------------------
def test_cloud_from_clouds_yaml_with_internal_interface(cloud, tmp_path, monkeypatch):
    env = Env(cloud, {})
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"adm": {
        "auth": {k: v for k, v in env.auth.items() if k != "region_name"},
        "region_name": "RegionOne", "interface": "internal"}}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    env.pillar["openstack_keystone:cloud"] = "adm"  # the identity engine's setting serves too
    assert env.service_disabled("cmp1")["result"] is True
    compute = {p.split("/")[1] for _, api, p, _, _ in cloud.log if api == "compute"}
    assert compute == {"int-compute"}


def test_missing_endpoint_and_override(cloud):
    env = Env(cloud)
    env.pillar["openstack_compute:auth"] = dict(env.auth, interface="admin")
    ret = env.service_disabled("cmp1")
    assert ret["result"] is False
    assert ret["comment"] == ("the Keystone catalog of user 'admin' has no compute endpoint "
                              "(interface admin, region RegionOne); set "
                              "compute_endpoint_override to name one")
    env.new_run()
    env.pillar["openstack_compute:auth"] = dict(
        env.auth, compute_endpoint_override=cloud.base + "/int-compute/v2.1/")
    assert env.service_disabled("cmp1")["result"] is True
    assert {p.split("/")[1] for _, api, p, _, _ in cloud.log if api == "compute"} == {"int-compute"}


def test_no_credentials(cloud):
    env = Env(cloud, {})
    ret = env.aggregate_absent("x")
    assert ret["result"] is False and "no Keystone admin credentials" in ret["comment"]


def test_wrong_password_and_unreachable(cloud):
    env = Env(cloud)
    env.pillar["openstack_compute:auth"] = dict(env.auth, password="wrong-Pw-123")
    ret = env.aggregate_absent("x")
    assert ret["result"] is False and "refused the admin credentials" in ret["comment"]
    assert "wrong-Pw-123" not in json.dumps(ret)
    env.pillar["openstack_compute:auth"] = dict(env.auth, auth_url="http://127.0.0.1:9/v3")
    env.new_run()
    ret = env.aggregate_absent("x")
    assert ret["result"] is False
    assert ret["comment"].startswith("cannot reach Keystone at http://127.0.0.1:9/v3")


def test_each_request_is_bounded_in_time(env, cloud):
    connect = env.mod.__utils__["openstack_session.connect"]
    connect.__globals__["REQUEST_TIMEOUT"] = 0.3
    cloud.hang_seconds = 2
    started = time.monotonic()
    ret = env.service_disabled("cmp1")
    assert time.monotonic() - started < 1.8
    assert ret["result"] is False
    assert ret["comment"].startswith(f"cannot reach Nova at {cloud.base}/compute/v2.1 "
                                     "(GET /os-services): ConnectTimeout")


def test_a_dropped_read_is_sent_again_a_dropped_write_is_not(env, cloud):
    cloud.drop = {("GET", "os-services"), ("PUT", service(cloud, "cmp1")["id"])}
    ret = env.service_disabled("cmp1")
    assert ret["result"] is False
    assert ret["comment"].startswith(f"cannot reach Nova at {cloud.base}/compute/v2.1 (PUT "
                                     "/os-services/")
    assert [m for m, api, _, _, _ in cloud.log if api == "dropped"] == ["GET", "PUT"]
    assert paths(cloud, "GET").count(("GET", "/compute/v2.1/os-services")) == 1  # the retry
    assert service(cloud, "cmp1")["status"] == "enabled"


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def debug_log():
    root, handler = logging.getLogger(), _Collect()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    ksa = logging.getLogger("keystoneauth")
    ksa_level = ksa.level
    ksa.setLevel(logging.DEBUG)  # even if someone turns keystoneauth's debug on
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)
    ksa.setLevel(ksa_level)


def test_no_secret_in_any_return_comment_or_log(env, cloud, debug_log):
    cloud.echo_password = True  # Nova's refusals quote the password back
    cloud.add_server("r", "cmp1", live="refuse409", cold="refuse409")
    cloud.add_server("ok", "cmp1")
    env.host_drained("cmp1", **FAST)
    env.aggregate_present("a", hosts=["cmp1"], metadata={"k": "v"})
    env.service_enabled("cmp1")
    env.host_decommissioned("cmp2", require_down=False)
    env.mod.drain("cmp1", poll_interval=0.01, timeout=1)
    text = json.dumps(env.returns) + "\n".join(debug_log.lines)
    assert "refused by the fake ********" in text  # the echo was there, masked
    assert ADMIN_PW not in text
    assert cloud.tokens and not any(tok in text for tok in cloud.tokens)
    assert "openstack_compute: PUT /os-services/" in text  # we log: method, path, status
    keys = [k for k in env.mod.__context__ if isinstance(k, str)]
    assert all(ADMIN_PW not in k for k in keys)
