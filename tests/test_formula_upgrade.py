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
