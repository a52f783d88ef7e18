"""Shared fixtures: a real masterless minion, and a real master + minion.

``salt_call`` -> :class:`harness.SaltCall` (``salt-call --local`` on this repo).
``salt_master`` / ``salt_minion`` -> pytest-salt-factories daemons whose file
roots are this repo and which sync ``_modules``/``_states`` like a real master.
"""
import logging
import os
import sys

import pytest

# Salt's log handlers flush at interpreter exit into streams pytest already
# closed; keep that harmless noise from burying pytest's closing summary.
logging.raiseExceptions = False

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import REPO, SaltCall, formula_roots, host_minion_opts  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


@pytest.fixture
def salt_call(tmp_path):
    return SaltCall(tmp_path / "minion")


@pytest.fixture
def make_salt_call(tmp_path):
    """Factory for minions with their own id / grains (render tests)."""
    count = [0]

    def make(**kwargs):
        count[0] += 1
        return SaltCall(tmp_path / f"minion{count[0]}", **kwargs)

    return make


@pytest.fixture(scope="session")
def master_pillar_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("master-pillar")
    (path / "top.sls").write_text("base:\n  '*':\n    - data\n")
    (path / "data.sls").write_text("{}\n")
    return path


@pytest.fixture(scope="session")
def master_state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("master-states")


@pytest.fixture(scope="session")
def salt_master(salt_factories, master_pillar_dir, master_state_dir):
    overrides = {
        "file_roots": {"base": [str(master_state_dir), formula_roots()]},
        "pillar_roots": {"base": [str(master_pillar_dir)]},
        "open_mode": True,
    }
    master = salt_factories.salt_master_daemon("nova-master", overrides=overrides)
    with master.started():
        yield master


@pytest.fixture(scope="session")
def salt_minion(salt_master):
    minion = salt_master.salt_minion_daemon("nova-minion-1", overrides=host_minion_opts())
    with minion.started():
        ret = minion.salt_call_cli().run("saltutil.sync_all")
        assert ret.returncode == 0, ret
        yield minion


CACHE = os.path.join(REPO, ".cache")


def _debian_nova_common():
    """Debian's shipped nova.conf / api-paste.ini, from the nova-common .deb (cached)."""
    import glob
    import subprocess

    target = os.path.join(CACHE, "nova-common")
    if not os.path.exists(os.path.join(target, "nova.conf")):
        debs = os.path.join(CACHE, "debs")
        os.makedirs(debs, exist_ok=True)
        download = ["apt-get", "download", "-o", "APT::Sandbox::User=root", "nova-common"]
        if subprocess.run(download, cwd=debs, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            subprocess.run(download, cwd=debs, check=True, capture_output=True)
        deb = sorted(glob.glob(os.path.join(debs, "nova-common_*.deb")))[-1]
        extract = os.path.join(CACHE, "nova-common-x")
        subprocess.run(["dpkg-deb", "-x", deb, extract], check=True)
        os.makedirs(target, exist_ok=True)
        for name in ("nova.conf", "api-paste.ini"):
            os.replace(os.path.join(extract, "usr/share/nova-common", name), os.path.join(target, name))
    return target


@pytest.fixture(scope="session")
def debian_nova_common():
    return _debian_nova_common()


@pytest.fixture
def nova_conf(tmp_path, debian_nova_common):
    """A fresh copy of Debian's 10,164-line nova.conf."""
    import shutil

    path = tmp_path / "nova.conf"
    shutil.copy(os.path.join(debian_nova_common, "nova.conf"), path)
    return path
