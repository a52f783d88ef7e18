"""Rolling updates (issue 15): nova:version pins and holds every Nova package
(Debian: apt-mark hold through pkg.installed's hold; RedHat: the versionlock
plugin, render only), a new version restarts each daemon once (the services
watch the package state), [upgrade_levels] compute from pillar, and the
staged orchestrate nova.orch.upgrade. Real ``salt-call --local
state.show_sls`` renders; the fleet proves the rest
(tests/fleet/test_fleet_2_upgrade.py)."""
import pytest

from formula_support import CONTROLLER, GRAINS, pillar, render

U5 = "2:26.2.2-1~deb12u5"
NOVA_DAEMONS = ("api", "metadata", "novncproxy", "scheduler", "conductor", "compute")


@pytest.fixture
def minion(make_salt_call):
    def make(platform="debian12", minion_id="ctl1"):
        return make_salt_call(minion_id=minion_id, grains=GRAINS[platform])
    return make


def test_debian_version_pins_and_holds_every_nova_package(minion):
    states = render(minion(), pillar("zed", version=U5, compute={"block_storage": True}))
    fun, args = states["nova-packages"]
    assert fun == "pkg.installed"
    assert args["pkgs"] == [{p: U5} for p in (
        "nova-api", "nova-scheduler", "nova-conductor", "nova-compute", "nova-consoleproxy",
        "nova-common", "python3-nova")]
    assert args["hold"] is True and args["update_holds"] is True
    assert args["allow_downgrades"] is True  # a pin moved back is a rollback
    assert "nova-packages-versionlock" not in states  # apt-mark hold needs nothing
    # not a Nova package: not pinned, not held
    fun, args = states["nova-packages-others"]
    assert (fun, args["pkgs"], args.get("hold")) == (
        "pkg.installed", ["python3-cinderclient"], None)
    # installed while no daemon may start (policy-rc.d, prereq as before)
    assert states["nova-packages-hold-daemons"][1]["prereq"] == ["nova-packages"]
    # a new version restarts each Nova daemon once: they watch the packages
    for svc in NOVA_DAEMONS:
        assert "nova-packages" in states[f"nova-service-{svc}"][1]["watch"], svc
    assert "nova-packages" not in (states["nova-service-libvirt"][1].get("watch") or [])


@pytest.mark.parametrize("platform", ["rocky9", "rhel7"])
def test_redhat_version_locks_with_the_versionlock_plugin(minion, platform):
    states = render(minion(platform), pillar("zed", CONTROLLER, version="26.2.2-1.el9"))
    # dnf's plugin (RHEL 7's yum: lookup:versionlock_pkg yum-plugin-versionlock)
    fun, args = states["nova-packages-versionlock"]
    assert (fun, args["name"]) == ("pkg.installed", "python3-dnf-plugin-versionlock")
    fun, args = states["nova-packages"]
    assert args["pkgs"] == [{p: "26.2.2-1.el9"} for p in (
        "openstack-nova-api", "openstack-nova-scheduler", "openstack-nova-conductor",
        "openstack-nova-novncproxy", "openstack-nova-common", "python3-nova")]
    assert args["hold"] is True and args["require"] == ["nova-packages-versionlock"]


def test_latest_upgrades_without_hold_and_null_installs_once(minion):
    sc = minion()
    fun, args = render(sc, pillar("zed", ["compute"], version="latest"))["nova-packages"]
    assert fun == "pkg.latest" and "hold" not in args
    assert args["pkgs"] == ["nova-compute", "nova-common", "python3-nova"]
    fun, args = render(sc, pillar("zed", ["compute"]))["nova-packages"]
    assert (fun, args["pkgs"]) == ("pkg.installed", ["nova-compute"])
    assert "hold" not in args


def test_a_bad_version_is_refused_naming_the_key(minion):
    sc = minion()
    sc.set_pillar(pillar("zed", ["compute"], version="26.2; rm -rf /"))
    code, data, proc = sc.run("state.show_sls", "nova")
    assert "nova:version: must be a package version" in proc.stdout + proc.stderr


def test_upgrade_levels_compute_pin_set_and_lifted(minion):
    sc = minion()
    states = render(sc, pillar("zed", ["compute"], upgrade_levels={"compute": "auto"}))
    assert states["nova-config-nova_conf"][1]["sections"]["upgrade_levels"] == {"compute": "auto"}
    # unset: the key is removed (a pin left by a roll is lifted)
    states = render(sc, pillar("zed", ["compute"]))
    assert states["nova-config-nova_conf"][1]["sections"]["upgrade_levels"] == {"compute": None}


# ------------------------------------------------------------ the orchestrate
def _orch(fleet, installed, version=U5, aggregates=None):
    """nova/orch/upgrade.sls rendered by Jinja with the real plan
    (nova_plan.fleet_targets + upgrade_targets); only the minions' answer
    (``installed``: their python3-nova) is given. The fleet renders it
    through a real salt-master (tests/fleet/test_fleet_2_upgrade.py)."""
    import json

    import jinja2
    import yaml

    from harness import REPO, load_module
    plan = load_module("utils", "nova_plan")
    pillar = {"nova:fleet": fleet, "nova:version": version, "nova:aggregates": aggregates or {}}

    def targets(fleet, version, aggregates=None):
        to = plan.fleet_targets(fleet, {}, aggregates)
        return to if to["errors"] else plan.upgrade_targets(to, installed, version)

    salt = {"pillar.get": lambda key, default=None: pillar.get(key, default),
            "nova_upgrade.targets": targets}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(REPO), extensions=["jinja2.ext.do"])
    env.filters["json"] = json.dumps
    text = env.get_template("nova/orch/upgrade.sls").render(salt=salt)
    return {sid: (fun, {k: v for d in args for k, v in d.items()})
            for sid, body in yaml.safe_load(text).items() for fun, args in body.items()}


FLEET = {"controllers": ["ctl"], "computes": ["cmp1", "cmp2", "cmp3"], "batch": 2}
U4 = "2:26.2.2-1~deb12u4"


def test_orchestrate_rolls_in_order_every_step_failhard():
    steps = _orch(FLEET, {"ctl": U4, "cmp1": U4, "cmp2": U4, "cmp3": U4})
    order = ["nova-orch-upgrade-sync-modules", "nova-orch-upgrade-check", "nova-orch-upgrade-pin",
             "nova-orch-upgrade-db-sync", "nova-orch-upgrade-restart-conductors",
             "nova-orch-upgrade-restart-schedulers", "nova-orch-upgrade-restart-apis",
             "nova-orch-upgrade-disable-1", "nova-orch-upgrade-computes-1",
             "nova-orch-upgrade-enable-1", "nova-orch-upgrade-disable-2",
             "nova-orch-upgrade-computes-2", "nova-orch-upgrade-enable-2",
             "nova-orch-upgrade-versions", "nova-orch-upgrade-lift-sync-node",
             "nova-orch-upgrade-lift-computes-1", "nova-orch-upgrade-lift-computes-2",
             "nova-orch-upgrade-migrations"]
    assert list(steps) == order
    for before, after in zip(order, order[1:]):
        assert steps[after][1]["require"] == [before], after
    assert all(args["failhard"] is True for _, args in steps.values())
    # 1. on the sync conductor, before any other host
    assert steps["nova-orch-upgrade-check"][1]["tgt"] == "ctl"
    assert steps["nova-orch-upgrade-check"][1]["sls"] == "nova.upgrade.check"
    # 2. the pin everywhere, config only
    pin = steps["nova-orch-upgrade-pin"][1]
    assert (pin["tgt"], pin["sls"]) == (["cmp1", "cmp2", "cmp3", "ctl"], "nova.config")
    assert pin["pillar"] == {"nova": {"upgrade_levels": {"compute": "auto"},
                                      "manage": {"packages": False}}}
    # 4. conductor, scheduler, api
    assert [steps[f"nova-orch-upgrade-restart-{s}"][1]["pillar"]["nova"]["upgrade"]["restart"]
            for s in ("conductors", "schedulers", "apis")] == [
        ["conductor"], ["scheduler"], ["api", "metadata", "novncproxy"]]
    # 5. batches of 2: disabled on the identity minion, updated with the pin kept
    assert steps["nova-orch-upgrade-disable-1"][1]["pillar"] == {
        "nova": {"upgrade": {"disable": ["cmp1", "cmp2"]}}}
    assert steps["nova-orch-upgrade-disable-1"][1]["tgt"] == ["ctl"]
    assert steps["nova-orch-upgrade-computes-2"][1]["tgt"] == ["cmp3"]
    assert steps["nova-orch-upgrade-computes-2"][1]["pillar"] == {
        "nova": {"upgrade_levels": {"compute": "auto"}}}
    assert steps["nova-orch-upgrade-enable-2"][1]["pillar"] == {
        "nova": {"upgrade": {"enable": ["cmp3"]}}}
    # 6. the lift is the deploy's own run, without the pin
    assert "pillar" not in steps["nova-orch-upgrade-lift-computes-1"][1]
    assert steps["nova-orch-upgrade-migrations"][1]["sls"] == "nova.upgrade.migrations"


def test_orchestrate_with_nothing_behind_only_checks_and_finishes():
    steps = _orch(FLEET, {"ctl": U5, "cmp1": U5, "cmp2": U5, "cmp3": U5})
    assert list(steps) == [
        "nova-orch-upgrade-sync-modules", "nova-orch-upgrade-check", "nova-orch-upgrade-versions",
        "nova-orch-upgrade-lift-sync-node", "nova-orch-upgrade-lift-computes-1",
        "nova-orch-upgrade-lift-computes-2", "nova-orch-upgrade-migrations"]
    # one compute behind: only its batch rolls
    steps = _orch(FLEET, {"ctl": U5, "cmp1": U5, "cmp2": U5, "cmp3": U4})
    assert [s for s in steps if s.startswith("nova-orch-upgrade-computes-")] == [
        "nova-orch-upgrade-computes-1"]
    assert steps["nova-orch-upgrade-computes-1"][1]["tgt"] == ["cmp3"]


def test_orchestrate_refuses_without_version_or_an_answer():
    steps = _orch(FLEET, {"ctl": U4, "cmp1": U4, "cmp2": U4, "cmp3": U4}, version=None)
    assert steps["nova-orch-fleet"][1]["comment"].startswith("nova:version: nova.orch.upgrade "
                                                             "needs the version")
    steps = _orch(FLEET, {"ctl": U4, "cmp1": U4, "cmp2": U4})
    assert "no answer about the installed Nova from cmp3" in steps["nova-orch-fleet"][1]["comment"]


def test_latest_rolls_hosts_with_a_newer_version_to_install():
    steps = _orch(FLEET, {"ctl": "", "cmp1": "", "cmp2": U5, "cmp3": ""}, version="latest")
    assert steps["nova-orch-upgrade-computes-1"][1]["tgt"] == ["cmp2"]


def test_upgrade_steps_on_each_minion(minion):
    """The plan's states of nova/upgrade/*.sls: the check and the end on the
    sync conductor, restarts only of daemons that run here, in the order
    given, compute toggles on the identity minion."""
    sc = minion()
    data = pillar("zed", CONTROLLER, version=U5,
                  upgrade={"restart": ["conductor", "compute", "api"], "disable": ["cmp1"]})
    check = render(sc, data, sls="nova.upgrade.check")
    assert check["nova-upgrade-check"][0] == "nova_upgrade.checked"
    assert check["nova-upgrade-check"][1]["require"] == [{"sls": "nova.packages"}]
    assert "nova-packages" in check  # the new packages before the check
    restart = render(sc, data, sls="nova.upgrade.restart")
    ids = [s for s in restart if s.startswith("nova-upgrade-")]
    assert ids == ["nova-upgrade-conductor-current", "nova-upgrade-api-current"]
    fun, args = restart["nova-upgrade-api-current"]
    assert fun == "nova_upgrade.daemon_current" and args["name"] == "nova-api"
    assert args["require"] == [{"sls": "nova.packages"}, "nova-upgrade-conductor-current"]
    assert "/etc/nova/nova.conf" in args["files"] and "python3-nova" in args["packages"]
    assert args["pidfile"] == "/run/nova/nova-api.pid"
    computes = render(sc, data, sls="nova.upgrade.computes")
    assert computes["nova-upgrade-cmp1-disabled"][0] == "openstack_compute.service_disabled"
    assert render(sc, data, sls="nova.upgrade.versions")["nova-upgrade-services-current"][
        0] == "nova_upgrade.services_current"
    assert render(sc, data, sls="nova.upgrade.migrations")["nova-upgrade-online-migrations"][
        0] == "nova_upgrade.online_migrations_done"
    # a compute minion: no check, no end, no toggles
    cmp = render(minion(minion_id="cmp1"), pillar("zed", ["compute"], version=U5,
                                                  fleet={"controllers": ["ctl1"]}),
                 sls="nova.upgrade.check")
    assert "nova-upgrade-check" not in cmp
