"""Render tests of the day-2 orchestrates and SLS (nova.orch.maintenance,
nova.orch.remove_compute, the deploy's trust and canary steps; nova.migration,
nova.maintenance*, nova.canary on their minions): the real
``salt-call --local state.show_sls`` with the formula's modules. What they do
on real hosts: tests/fleet/test_fleet_3_day2.py."""
import pytest

from formula_support import GRAINS, pillar, render

FLEET = {"controllers": ["ctl1"], "computes": ["cmp1", "cmp2", "cmp3"]}


@pytest.fixture
def minion(make_salt_call):
    def make(minion_id="ctl1"):
        return make_salt_call(minion_id=minion_id, grains=GRAINS["debian12"])
    return make


def _order(states):
    return list(states)


def test_maintenance_drain_then_enable(minion):
    sc = minion()
    mt = {"hosts": ["cmp1"], "action": "drain", "reason": "disk swap"}
    states = render(sc, pillar("zed", [], fleet=FLEET, maintenance=mt), sls="nova.orch.maintenance")
    assert _order(states) == ["nova-orch-sync-modules", "nova-orch-maintenance"]
    assert states["nova-orch-sync-modules"][1]["tgt"] == ["ctl1", "cmp1"]
    step = states["nova-orch-maintenance"][1]
    assert step["tgt"] == ["ctl1"] and step["sls"] == "nova.maintenance"
    assert step["pillar"] == {"nova": {"maintenance": mt}} and step["failhard"] is True
    # enable: the host's own run (nova-compute running) before its service is enabled
    states = render(sc, pillar("zed", [], fleet=FLEET, maintenance=dict(mt, action="enable")),
                    sls="nova.orch.maintenance")
    assert _order(states) == ["nova-orch-sync-modules", "nova-orch-maintenance-hosts",
                              "nova-orch-maintenance"]
    assert states["nova-orch-maintenance-hosts"][1]["tgt"] == ["cmp1"]
    assert states["nova-orch-maintenance-hosts"][1]["sls"] == "nova"
    assert states["nova-orch-maintenance"][1]["require"] == ["nova-orch-maintenance-hosts"]


@pytest.mark.parametrize("mt, needle", [
    ({}, "nova:maintenance:hosts: name the computes"),
    ({"hosts": ["cmp9"]}, "nova:maintenance:hosts: not in nova:fleet:computes: cmp9")])
def test_maintenance_without_a_known_host_fails_naming_the_key(minion, mt, needle):
    states = render(minion(), pillar("zed", [], fleet=FLEET, maintenance=mt),
                    sls="nova.orch.maintenance")
    assert list(states) == ["nova-orch-maintenance"]
    assert states["nova-orch-maintenance"][0] == "test.fail_without_changes"
    assert needle in states["nova-orch-maintenance"][1]["comment"]


def test_remove_compute_steps(minion):
    mt = {"hosts": ["cmp2"]}
    states = render(minion(), pillar("zed", [], fleet=FLEET, maintenance=mt),
                    sls="nova.orch.remove_compute")
    order = ["nova-orch-sync-modules", "nova-orch-remove-drained", "nova-orch-remove-stopped",
             "nova-orch-remove-decommissioned", "nova-orch-remove-trust"]
    assert _order(states) == order
    for before, after in zip(order, order[1:]):
        assert states[after][1]["require"] == [before]
        assert states[after][1]["failhard"] is True
    assert states["nova-orch-remove-drained"][1]["sls"] == "nova.maintenance.removing"
    assert states["nova-orch-remove-stopped"][1]["tgt"] == ["cmp2"]
    assert states["nova-orch-remove-stopped"][1]["sls"] == ["nova.service.clean",
                                                            "nova.migration.clean"]
    assert states["nova-orch-remove-decommissioned"][1]["tgt"] == ["ctl1"]
    assert states["nova-orch-remove-trust"][1]["tgt"] == ["cmp1", "cmp3"]
    assert states["nova-orch-remove-trust"][1]["sls"] == "nova.migration"


def test_deploy_ends_with_trust_and_canary(minion):
    canary = {"enabled": True, "flavor": "m1.tiny", "image": "cirros"}
    states = render(minion(), pillar("zed", [], fleet=FLEET, canary=canary),
                    sls="nova.orch.deploy")
    assert _order(states)[-4:] == ["nova-orch-discover", "nova-orch-migration-trust",
                                   "nova-orch-canary", "nova-orch-report"]
    assert states["nova-orch-report"][1]["require"] == ["nova-orch-canary"]
    trust = states["nova-orch-migration-trust"][1]
    assert trust["tgt"] == ["cmp1", "cmp2", "cmp3"] and trust["sls"] == "nova.migration"
    # a compute down was named at its batch (max_fail): not failed again here
    assert trust["expect_minions"] is False
    step = states["nova-orch-canary"][1]
    assert step["tgt"] == ["ctl1"] and step["sls"] == "nova.canary"
    assert step["pillar"] == {"nova": {"canary": {"hosts": ["cmp1", "cmp2", "cmp3"]}}}
    assert step["require"] == ["nova-orch-migration-trust"]
    # no canary by default; no trust step with one compute
    states = render(minion(), pillar("zed", [], fleet=dict(FLEET, computes=["cmp1"])),
                    sls="nova.orch.deploy")
    assert not {"nova-orch-migration-trust", "nova-orch-canary"} & set(states)


def test_identity_minion_states(minion):
    sc = minion()
    cred = {"cloud": "admin"}
    base = dict(fleet=FLEET, identity=cred)
    states = render(sc, pillar("zed", None, maintenance={"hosts": ["cmp1"], "reason": "r1"},
                               **base), sls="nova.maintenance")
    fun, args = states["nova-maintenance-cmp1-drained"]
    assert fun == "openstack_compute.host_drained"
    assert args["reason"] == "r1" and args["cloud"] == "admin" and args["timeout"] == 1800
    assert "nova-maintenance-cmp1-enabled" not in states
    states = render(sc, pillar("zed", None, maintenance={"hosts": ["cmp1"], "action": "enable"},
                               **base), sls="nova.maintenance")
    assert states["nova-maintenance-cmp1-enabled"][0] == "openstack_compute.service_enabled"
    assert "nova-maintenance-cmp1-drained" not in states
    states = render(sc, pillar("zed", None, maintenance={"hosts": ["cmp2"]}, **base),
                    sls="nova.maintenance.removing")
    assert states["nova-maintenance-cmp2-drained"][1]["missing_ok"] is True
    states = render(sc, pillar("zed", None, maintenance={"hosts": ["cmp2"]}, **base),
                    sls="nova.maintenance.decommission")
    fun, args = states["nova-maintenance-cmp2-decommissioned"]
    assert fun == "openstack_compute.host_decommissioned" and args["wait_down"] == 240
    canary = {"enabled": True, "flavor": "f1", "image": "i1", "hosts": ["cmp1"]}
    states = render(sc, pillar("zed", None, canary=canary, **base), sls="nova.canary")
    fun, args = states["nova-canary-cmp1"]
    assert fun == "openstack_canary.host_proven"
    assert (args["flavor"], args["image"], args["timeout"]) == ("f1", "i1", 300)


def test_canary_needs_flavor_and_image(minion):
    sc = minion()
    states = render(sc, pillar("zed", None, fleet=FLEET, canary={"enabled": True}),
                    sls="nova.canary")
    comment = states["nova-pillar-valid"][1]["comment"]
    assert "nova:canary:flavor: required" in comment and "nova:canary:image" in comment


def test_canary_registers_new_computes_disabled_on_the_control_plane(minion):
    canary = {"enabled": True, "flavor": "f1", "image": "i1"}
    states = render(minion(), pillar("zed", ["api", "scheduler", "conductor"], fleet=FLEET,
                                     canary=canary))
    assert states["nova-config-nova_conf"][1]["sections"]["DEFAULT"]["enable_new_services"] \
        is False
    cmp_states = render(minion("cmp1"), pillar("zed", ["compute"], fleet=FLEET, canary=canary))
    assert "enable_new_services" not in cmp_states["nova-config-nova_conf"][1]["sections"][
        "DEFAULT"]


def test_migration_concern_on_a_compute_of_a_fleet(minion):
    states = render(minion("cmp1"), pillar("zed", ["compute"], fleet=FLEET), sls="nova")
    libvirt = states["nova-config-nova_conf"][1]["sections"]["libvirt"]
    assert libvirt["live_migration_scheme"] == "ssh"
    assert libvirt["live_migration_inbound_addr"] == "10.1.2.3"  # my_ip
    assert states["nova-migration-sftp"][0] == "openstack_ssh.sftp_served"
    assert states["nova-migration-sftp"][1]["name"] == "/etc/ssh/sshd_config"
    assert states["nova-migration-sshd"][1]["name"] == "ssh"  # Debian's unit
    assert states["nova-migration-sshd"][1]["watch"] == ["nova-migration-sftp"]
    assert states["nova-migration-key"][1]["name"] == "nova"
    trust = states["nova-migration-trust"][1]
    assert trust["tgt"] == ["cmp1", "cmp2", "cmp3"] and trust["tgt_type"] == "list"
    assert trust["require"] == ["nova-migration-published"]
    # TLS transport; an all-in-one (no other compute) has no trust to build
    tls = render(minion("cmp1"), pillar("zed", ["compute"], fleet=FLEET,
                                        migration={"transport": "tls"}), sls="nova")
    libvirt = tls["nova-config-nova_conf"][1]["sections"]["libvirt"]
    assert libvirt["live_migration_with_native_tls"] is True
    assert "live_migration_scheme" not in libvirt
    alone = render(minion("cmp1"), pillar("zed", ["compute"], fleet={"controllers": ["ctl1"],
                                                                     "computes": ["cmp1"]}))
    assert not [s for s in alone if s.startswith("nova-migration")]
    clean = render(minion("cmp1"), pillar("zed", ["compute"], fleet=FLEET), sls="nova.clean")
    assert clean["nova-migration-unpublished"][0] == "openstack_ssh.unpublished"
