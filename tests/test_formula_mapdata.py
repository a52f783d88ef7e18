"""Rendered-map snapshots (template-formula's ``_mapdata`` idea, in pytest):
the merged map and the plan that the real ``nova/map.jinja`` and
``nova_formula.plan`` produce for each platform (Debian 12, Ubuntu 22.04,
Rocky 9, RHEL 7) x dialect (legacy, current) x minion (all-in-one,
controller, compute), compared with the files in ``tests/snapshots/mapdata/``.

A change to the defaults, the OS or release maps or the plan shows up as a
diff here. After an intended change, rewrite the snapshots and review them:

    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_formula_mapdata.py
"""
import json
import os

import pytest

from formula_support import ALL_IN_ONE, CONTROLLER, pillar
from harness import REPO
from map_render import MapRenderer

SNAPSHOTS = os.path.join(REPO, "tests", "snapshots", "mapdata")
PLATFORMS = ("debian12", "ubuntu2204", "rocky9", "rhel7")
RELEASES = {"legacy": "icehouse", "current": "zed"}
FLEET = {"controllers": ["ctl1"], "computes": ["cmp1", "cmp2"]}
KINDS = {  # minion kind -> (minion id, pillar roles, fleet)
    "aio": ("aio1", ALL_IN_ONE, {}),
    "controller": ("ctl1", CONTROLLER, FLEET),
    "compute": ("cmp1", ["compute"], FLEET),
}
# facts of the host that the plan reads, pinned so the snapshots are the same
# on every machine
HOST = {"num_cpus": 4, "ipv4": ["127.0.0.1", "192.0.2.10"]}


@pytest.fixture(scope="module")
def renderers(tmp_path_factory):
    made = {}

    def get(platform, minion_id):
        if (platform, minion_id) not in made:
            made[platform, minion_id] = MapRenderer(
                tmp_path_factory.mktemp(f"map-{platform}-{minion_id}"), platform,
                minion_id=minion_id, grains=HOST)
        return made[platform, minion_id]
    return get


def _portable(nova):
    """The rendered map with the one host-dependent part made portable: which
    kernel parameters this kernel lacks (/proc/sys) splits the sysctl states."""
    plan = nova["plan"]
    if "sysctl" in plan:
        states = plan["sysctl"]["present"] + plan["sysctl"]["missing"]
        plan["sysctl"] = {"states (present or missing)": sorted(s["id"] for s in states)}
        plan["clean"].pop("sysctl", None)
    return nova


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("dialect", sorted(RELEASES))
@pytest.mark.parametrize("platform", PLATFORMS)
def test_rendered_map_matches_its_snapshot(renderers, platform, dialect, kind):
    minion_id, roles, fleet = KINDS[kind]
    nova = renderers(platform, minion_id)(pillar(RELEASES[dialect], roles, fleet=fleet))
    assert nova["plan"]["errors"] == [], nova["plan"]["errors"]
    assert nova["dialect"] == dialect
    text = json.dumps(_portable(nova), indent=1, sort_keys=True) + "\n"
    path = os.path.join(SNAPSHOTS, f"{platform}-{dialect}-{kind}.json")
    if os.environ.get("UPDATE_SNAPSHOTS"):
        os.makedirs(SNAPSHOTS, exist_ok=True)
        with open(path, "w") as fh:
            fh.write(text)
    with open(path) as fh:
        assert json.loads(text) == json.loads(fh.read()), (
            f"{path} differs from the rendered map: review, then UPDATE_SNAPSHOTS=1")


def test_every_snapshot_is_rendered():
    wanted = {f"{p}-{d}-{k}.json" for p in PLATFORMS for d in RELEASES for k in KINDS}
    assert set(os.listdir(SNAPSHOTS)) == wanted


def test_the_platforms_really_differ(renderers):
    """The snapshots are not all the same map: the OS family and the release
    change what the plan does."""
    def plan(platform, release):
        return renderers(platform, "aio1")(pillar(release))["plan"]
    debian, rhel, legacy = plan("debian12", "zed"), plan("rocky9", "zed"), plan("rhel7", "icehouse")
    assert debian["packages"]["installed"][0]["args"]["pkgs"][0] == "nova-api"
    assert rhel["packages"]["installed"][0]["args"]["pkgs"][0] == "openstack-nova-api"
    assert debian["packages"]["hold"] and not rhel["packages"]["hold"]
    assert debian["config"]["plain"] and not rhel["config"]["plain"]  # uwsgi vs eventlet
    assert "osapi_compute_listen" in rhel["config"]["options"][0]["args"]["sections"]["DEFAULT"]
    assert [s["id"] for s in legacy["db_sync"]["db"]] == ["nova-db-sync"]
    assert not legacy["db_sync"]["api_db"] and "discover" not in legacy["concerns"]


def test_a_computes_map_imports_no_client_library(tmp_path):
    """A compute never talks to Keystone or a database: its map and plan (the
    validation included, which reads the engines' rules) import neither
    keystoneauth1 nor pymysql (~40 ms of every compute's run was the
    keystoneauth1 import before openstack_session deferred it)."""
    minion_id, roles, fleet = KINDS["compute"]
    render = MapRenderer(tmp_path, "debian12", minion_id=minion_id, grains=HOST)
    raw = pillar(roles=roles)["nova"]
    raw["fleet"] = fleet
    assert render({"nova": raw})["plan"]["errors"] == []
    assert render.imported == []
