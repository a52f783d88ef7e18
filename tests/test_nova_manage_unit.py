"""nova_manage's pure parts: where the installed nova package is (no
interpreter started, whatever nova-manage's shebang), and the head revisions
read from its migration scripts."""
import os

import pytest

from harness import load_module


def _module(opts):
    mod = load_module("modules", "nova_manage")
    mod.__salt__ = {"config.get": lambda key, default=None: opts.get(key, default)}
    mod.__context__ = {}
    return mod


def _install(prefix, libdir, shebang):
    """A nova-manage under ``prefix``/bin and a nova package with one alembic
    chain (base -> head) under ``prefix``/``libdir``."""
    bin_dir = prefix / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "nova-manage"
    script.write_text(f"{shebang}\nimport sys\n")
    script.chmod(0o755)
    versions = prefix / libdir / "nova" / "db" / "main" / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "a_base.py").write_text("revision = 'base1'\ndown_revision = None\n")
    (versions / "b_head.py").write_text("revision = 'head2'\ndown_revision = 'base1'\n")
    api = prefix / libdir / "nova" / "db" / "api" / "migrations" / "versions"
    api.mkdir(parents=True)
    (api / "a.py").write_text('revision: str = "apihead"\ndown_revision = None\n')
    return script


@pytest.mark.parametrize("libdir,shebang", [
    ("lib/python3/dist-packages", "#!/usr/bin/python3"),               # Debian
    ("lib/python3.11/site-packages", "#!/usr/bin/env python3"),        # a virtualenv
    ("lib/python3.9/site-packages", "#!/opt/venv/bin/python3 -s"),     # with options
])
def test_package_found_beside_the_command_whatever_its_shebang(tmp_path, libdir, shebang):
    script = _install(tmp_path / "prefix", libdir, shebang)
    mod = _module({"nova_manage:bin": str(script)})
    assert mod._package_dir() == str(tmp_path / "prefix" / libdir / "nova")
    assert mod.heads() == {"main": ["head2"], "api": ["apihead"]}


def test_package_dir_from_config_and_a_clear_error_when_missing(tmp_path):
    script = _install(tmp_path / "prefix", "lib/python3/dist-packages", "#!/usr/bin/python3")
    other = tmp_path / "elsewhere" / "nova"
    other.mkdir(parents=True)
    mod = _module({"nova_manage:bin": str(script), "nova_manage:package_dir": str(other)})
    assert mod._package_dir() == str(other)
    bare = tmp_path / "bare" / "bin"
    bare.mkdir(parents=True)
    (bare / "nova-manage").write_text("#!/usr/bin/env python3\n")
    (bare / "nova-manage").chmod(0o755)
    mod = _module({"nova_manage:bin": str(bare / "nova-manage")})
    with pytest.raises(Exception) as err:
        mod._package_dir()
    assert "cannot find the nova package" in str(err.value)
    assert "nova_manage:package_dir" in str(err.value)
    assert os.path.basename(str(tmp_path)) in str(err.value)
