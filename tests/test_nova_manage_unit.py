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


def _discover_state(test, registered, mapped):
    """nova_manage.hosts_discovered with the execution module's answers given."""
    calls = []
    mod = load_module("states", "nova_manage", f"nm_states_{test}_{len(registered)}")
    mod.__opts__ = {"test": test}
    mod.__salt__ = {
        "nova_manage.computes": lambda config: {"registered": registered, "mapped": mapped},
        "nova_manage.discover_hosts": lambda config: calls.append("discover"),
    }
    return mod, calls


@pytest.mark.parametrize("test,result", [(True, None), (False, False)])
def test_unregistered_computes_are_pending_in_a_dry_run_and_a_failure_for_real(test, result):
    """Computes not registered yet: a dry run reports them pending (the run
    would start them first), never a failure; a real run fails naming them."""
    mod, calls = _discover_state(test, ["cmp1"], ["cmp1"])
    ret = mod.hosts_discovered("computes", expect=["cmp1", "cmp2"])
    assert ret["result"] is result, ret
    assert "missing: cmp2" in ret["comment"] and ret["changes"] == {}
    assert calls == []


def test_unmapped_computes_would_be_mapped_in_a_dry_run():
    mod, calls = _discover_state(True, ["cmp1", "cmp2"], ["cmp1"])
    ret = mod.hosts_discovered("computes", expect=2)
    assert ret["result"] is None and ret["changes"] == {"mapped": ["cmp2"]}, ret
    assert calls == []


class _FakeConn:
    """A pymysql connection that answers every query with one row."""
    def __init__(self, log, kwargs):
        self.log, self.kwargs, self.open = log, kwargs, True

    def cursor(self):
        conn = self

        class Cursor:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def execute(self, query, params=None):
                conn.log.append((conn.kwargs["database"], query))

            def fetchall(self):
                return (("rev1",),)
        return Cursor()

    def close(self):
        self.open = False


def test_one_connection_per_database_for_the_whole_run(tmp_path, monkeypatch):
    """A no-op's checks (versions, cells, computes) open one autocommit
    connection per database, not one per query (issue 17)."""
    conf = tmp_path / "nova.conf"
    conf.write_text("[database]\nconnection = mysql+pymysql://nova:pw@db/nova\n"
                    "[api_database]\nconnection = mysql+pymysql://nova:pw@db/nova_api\n")
    mod = _module({})
    mod.__salt__["openstack_ini.get_option"] = lambda path, section, key: {
        ("database", "connection"): "mysql+pymysql://nova:pw@db/nova",
        ("api_database", "connection"): "mysql+pymysql://nova:pw@db/nova_api",
        ("DEFAULT", "transport_url"): "rabbit://nova:pw@mq:5672/"}.get((section, key))
    connects, queries = [], []

    def connect(**kwargs):
        connects.append(kwargs)
        return _FakeConn(queries, kwargs)
    monkeypatch.setattr(mod.pymysql, "connect", connect)
    for _ in range(3):
        mod.version(api=True, config=str(conf))
        mod.version(api=False, config=str(conf))
        mod.computes(config=str(conf))
    assert len(queries) == 12
    assert sorted(c["database"] for c in connects) == ["nova", "nova_api"]
    assert all(c["autocommit"] for c in connects)
    # a connection that went away is replaced, not reused
    for conn in list(mod.__context__.values()):
        conn.close()
    mod.version(api=True, config=str(conf))
    assert len(connects) == 3
