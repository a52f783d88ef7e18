"""The formula as a Salt package: ``spm build`` from FORMULA, ``spm local
install`` into a real salt-master's formula path, and a real minion applying
it through that master (docs/operations.md, "Installing it")."""
import os
import subprocess
import sys
import uuid

import pytest
import yaml

from formula_support import SECRETS
from harness import REPO, host_minion_opts

SPM = os.path.join(os.path.dirname(sys.executable), "spm")
NOVA_CONF = "[DEFAULT]\n#my_ip = <host_ipv4>\nmy_ip = 192.0.2.2\n\n[database]\n"


def _version():
    with open(os.path.join(REPO, "FORMULA")) as fh:
        formula = yaml.safe_load(fh)
    return f"{formula['name']}-{formula['version']}-{formula['release']}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The package built from this repository and installed by spm."""
    root = tmp_path_factory.mktemp("spm")
    conf = root / "conf"
    conf.mkdir()
    (conf / "spm").write_text(yaml.safe_dump({
        "spm_build_dir": str(root / "build"), "formula_path": str(root / "srv" / "salt"),
        "pillar_path": str(root / "srv" / "pillar"), "reactor_path": str(root / "srv" / "reactor"),
        "spm_db": str(root / "cache" / "packages.db"), "spm_cache_dir": str(root / "cache"),
        "spm_logfile": str(root / "spm.log"),
        # what a package of the formula leaves out (docs/operations.md)
        "spm_build_exclude": [".git", ".venv", ".cache", "tests", "benchmarks", "docs", "tools",
                              ".ci"],
    }))
    build = subprocess.run([SPM, "-c", str(conf), "build", REPO], capture_output=True,
                           text=True, timeout=300)
    package = root / "build" / f"{_version()}.spm"
    assert build.returncode == 0 and package.exists(), build.stdout + build.stderr
    install = subprocess.run([SPM, "-c", str(conf), "-y", "local", "install", str(package)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    return root


def test_package_installs_the_formula_and_its_modules(installed):
    salt_dir = installed / "srv" / "salt"
    for path in ("nova/init.sls", "nova/map.jinja", "nova/parameters/defaults.yaml",
                 "nova/orch/deploy.sls", "_modules/nova_formula.py", "_states/openstack_ini.py",
                 "_utils/openstack_state.py"):
        assert (salt_dir / path).is_file(), path
    assert not (salt_dir / "tests").exists() and not (salt_dir / ".venv").exists()
    # pillar.example goes where spm puts example pillars
    assert (installed / "srv" / "pillar" / "nova.sls.orig").is_file()


def test_a_minion_applies_the_installed_package(installed, salt_factories, tmp_path):
    target = tmp_path / "nova.conf"
    target.write_text(NOVA_CONF)
    pillar_dir = tmp_path / "pillar"
    pillar_dir.mkdir()
    minion_id = "nova-spm-" + uuid.uuid4().hex[:6]
    (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - nova\n")
    (pillar_dir / "nova.sls").write_text(yaml.safe_dump({"nova": {
        "roles": ["compute"], "my_ip": "127.0.0.1",
        "messaging": {"password": SECRETS["messaging"]},
        "identity": {"password": SECRETS["identity"]},
        "placement": {"password": SECRETS["placement"]},
        "network": {"neutron": {"password": SECRETS["neutron"]}},
        "fleet": {"controllers": ["ctl1"]},
        # only the config of a compute: nothing here may touch this machine
        "manage": {k: False for k in ("packages", "firewall", "sysctl", "libvirt",
                                      "services", "nova_network")},
        "lookup": {"group": "root", "files": {"nova_conf": str(target), "api_paste": None,
                                               "compute_conf": None}},
    }}))
    master = salt_factories.salt_master_daemon("nova-spm-master", overrides={
        "file_roots": {"base": [str(installed / "srv" / "salt")]},
        "pillar_roots": {"base": [str(pillar_dir)]},
        "open_mode": True,
    })
    with master.started():
        minion = master.salt_minion_daemon(minion_id, overrides=host_minion_opts())
        with minion.started():
            cli = master.salt_cli(timeout=300)
            assert cli.run("saltutil.sync_all", minion_tgt=minion_id).returncode == 0
            first = cli.run("state.apply", "nova", minion_tgt=minion_id)
            assert first.returncode == 0, first
            states = {r["__id__"]: r for r in first.data.values()}
            assert states["nova-config-nova_conf"]["changes"]
            assert "left out by nova:manage" in states["nova-pillar-valid"]["comment"]
            second = cli.run("state.apply", "nova", minion_tgt=minion_id)
            assert second.returncode == 0, second
            assert not [r for r in second.data.values() if r["changes"]]
    text = target.read_text()
    assert [ln for ln in text.splitlines() if ln.startswith("my_ip")] == ["my_ip = 127.0.0.1"]
    assert "transport_url = rabbit://nova:" in text and "mysql" not in text
