"""_modules/nova_service_offline.py: ``service.offline`` answered where the
service provider lacks it, so Salt's service states do not make the lazy
loader import every execution module (issue 17: ~1 s of each no-op)."""
import os

import pytest
import salt.config
import salt.loader

from harness import REPO, load_module


def _mod(booted, offline, disabled=()):
    mod = load_module("modules", "nova_service_offline")
    mod.__grains__ = {"kernel": "Linux"}
    mod.__opts__ = {"disable_modules": list(disabled)}
    mod.__context__ = {"salt.utils.systemd.booted": booted,
                       "salt.utils.systemd.offline": offline}
    return mod


@pytest.mark.parametrize("booted, offline, disabled, loads", [
    (True, False, (), False),                        # systemd runs: systemd_service answers
    (False, "/usr/bin/systemctl", (), False),        # offline systemd: systemd_service answers
    (False, "/usr/bin/systemctl", ("systemd_service",), True),  # it is disabled (the AIO, fleet)
    (False, False, (), True),                        # no systemd at all (sysvinit)
])
def test_loads_only_where_no_other_module_answers(booted, offline, disabled, loads):
    ret = _mod(booted, offline, disabled).__virtual__()
    assert (ret == "service") is loads, ret


def test_offline_is_false():
    assert _mod(False, False).offline() is False


def test_a_real_loader_answers_without_importing_every_module(tmp_path):
    """Salt's own loader, with the AIO's kind of minion config (systemd_service
    disabled, no systemd booted): ``"service.offline" in __salt__`` is answered
    having imported a handful of modules, not Salt's hundreds; without this
    module the same lookup imports them all (the test can fail)."""
    if os.path.exists("/run/systemd/system"):
        pytest.fail("this host runs systemd: the case under test needs a host without it")

    def loaded(module_dirs):
        opts = salt.config.minion_config(None)
        # the extension modules too (minion_config put them under the
        # default cachedir, where a synced formula may lie)
        opts.update({"file_client": "local", "cachedir": str(tmp_path / "cache"),
                     "extension_modules": str(tmp_path / "cache" / "extmods"),
                     "disable_modules": ["systemd_service"], "module_dirs": module_dirs,
                     "grains": {"kernel": "Linux", "os": "Debian", "os_family": "Debian"}})
        funcs = salt.loader.minion_mods(opts)
        assert "service.status" in funcs
        found = "service.offline" in funcs
        return found, len(funcs.loaded_files)

    found, with_ours = loaded([REPO])
    assert found
    found, without = loaded([])
    assert not found
    assert with_ours < 100 < without, (with_ours, without)
