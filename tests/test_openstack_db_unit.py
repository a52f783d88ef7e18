"""Unit tests of the pure SQL side (_utils/openstack_sql.py: parsing, comparing,
validating, hashing, masking) plus the connection errors against real sockets."""
import os
import socket
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated in 3.11, still the libc reference for SHA-256 crypt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import load_module

db = load_module("utils", "openstack_sql")  # the pure SQL side
state = load_module("utils", "openstack_state")  # masking


@pytest.fixture
def mod():
    """The module with the loader dunders it needs, config from a plain dict."""
    m = load_module("modules", "openstack_db")
    config = {}
    m.__context__ = {}
    m.__salt__ = {"config.get": lambda key, default=None: config.get(key, default)}
    m._config = config
    return m


# ----------------------------------------------------------------- SHOW GRANTS
@pytest.mark.parametrize("line,expected", [
    ("GRANT ALL PRIVILEGES ON `nova`.* TO `nova`@`%`",
     ("nova", "*", ["ALL PRIVILEGES"], False)),
    ("GRANT ALL ON `nova`.* TO 'nova'@'localhost'",
     ("nova", "*", ["ALL PRIVILEGES"], False)),
    ("GRANT ALL PRIVILEGES ON `nova\\_api`.* TO `nova`@`%` WITH GRANT OPTION",
     ("nova\\_api", "*", ["ALL PRIVILEGES"], True)),
    ("GRANT SELECT, INSERT, CREATE TEMPORARY TABLES ON `a``b`.* TO `u`@`h`",
     ("a`b", "*", ["CREATE TEMPORARY TABLES", "INSERT", "SELECT"], False)),
    ("GRANT SELECT (`User`, `Host`), INSERT ON `mysql`.`user` TO `u`@`localhost`",
     ("mysql", "user", ["INSERT"], False)),
    ("GRANT GRANT OPTION, SELECT ON `x`.* TO `u`@`%`", ("x", "*", ["SELECT"], True)),
])
def test_parse_grant(line, expected):
    got = db.parse_grant(line)
    assert (got["database"], got["table"], got["privileges"], got["grant_option"]) == expected


def test_parse_grant_skips_roles_and_proxies_and_global_password():
    assert db.parse_grant("GRANT `admin`@`%` TO `u`@`%`") is None
    glob = db.parse_grant("GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*ABC'")
    assert glob["database"] == "*" and glob["privileges"] == ["USAGE"]
    proc = db.parse_grant("GRANT EXECUTE ON PROCEDURE `mysql`.`p` TO `u`@`%`")
    assert proc["kind"] == "PROCEDURE"


# -------------------------------------------------------------- privileges
def test_normalize_privileges_aliases_and_lists():
    assert db.normalize_privileges("all") == ["ALL PRIVILEGES"]
    assert db.normalize_privileges("ALL PRIVILEGES") == ["ALL PRIVILEGES"]
    assert db.normalize_privileges("select,  insert ") == ["INSERT", "SELECT"]
    assert db.normalize_privileges(["lock   tables", "SELECT"]) == ["LOCK TABLES", "SELECT"]


@pytest.mark.parametrize("bad", ["SUPER", "SELECT; DROP TABLE x", "", [], 5, ["ALL", 3]])
def test_normalize_privileges_rejects(bad):
    with pytest.raises(db.CommandExecutionError, match="privilege"):
        db.normalize_privileges(bad)


def test_compare_all_vs_expanded_list_is_satisfied():
    # MySQL 8 / partial revokes show ALL as an explicit list: still ALL.
    expanded = sorted(db.CORE_DB_PRIVILEGES | {"DELETE HISTORY"})
    plan = db.compare_grants(["ALL PRIVILEGES"], {"privileges": expanded})
    assert plan == {"grant": [], "grant_option": False, "revoke": [],
                    "revoke_grant_option": False}


def test_compare_missing_and_never_revoke_without_strict():
    held = {"privileges": ["SELECT", "DELETE"], "grant_option": True}
    plan = db.compare_grants(["INSERT", "SELECT"], held)
    assert plan["grant"] == ["INSERT"] and plan["revoke"] == []
    assert plan["revoke_grant_option"] is False
    plan = db.compare_grants(["INSERT", "SELECT"], held, strict=True)
    assert plan["grant"] == ["INSERT"] and plan["revoke"] == ["DELETE"]
    assert plan["revoke_grant_option"] is True


def test_compare_strict_from_all_to_subset_regrants():
    plan = db.compare_grants(["SELECT"], {"privileges": ["ALL PRIVILEGES"]}, strict=True)
    assert plan["revoke"] == ["ALL PRIVILEGES"] and plan["grant"] == ["SELECT"]
    # Without strict, ALL satisfies a subset.
    plan = db.compare_grants(["SELECT"], {"privileges": ["ALL PRIVILEGES"]})
    assert plan["grant"] == [] and plan["revoke"] == []


def test_compare_grant_option():
    plan = db.compare_grants(["ALL PRIVILEGES", "GRANT OPTION"],
                             {"privileges": ["ALL PRIVILEGES"], "grant_option": False})
    assert plan["grant"] == [] and plan["grant_option"] is True


@settings(max_examples=200, deadline=None)
@given(want=st.sets(st.sampled_from(sorted(db.DB_PRIVILEGES - {"USAGE"})), min_size=1),
       have=st.sets(st.sampled_from(sorted(db.DB_PRIVILEGES - {"USAGE", "GRANT OPTION"}))),
       have_go=st.booleans(), strict=st.booleans())
def test_compare_plan_converges(want, have, have_go, strict):
    """Applying the plan (as the server would) leaves nothing more to do."""
    plan = db.compare_grants(sorted(want), {"privileges": sorted(have), "grant_option": have_go},
                             strict)
    after = set(have)
    go = have_go
    if plan["revoke"] == ["ALL PRIVILEGES"]:
        after = set()
    else:
        after -= set(plan["revoke"])
    after |= set(plan["grant"])
    go = (go or plan["grant_option"]) and not plan["revoke_grant_option"]
    if not strict:
        assert have <= after or "ALL PRIVILEGES" in after  # nothing taken away
    again = db.compare_grants(sorted(want), {"privileges": sorted(after), "grant_option": go},
                              strict)
    assert not again["grant"] and not again["grant_option"]
    if strict:
        assert not again["revoke"] and not again["revoke_grant_option"]


# -------------------------------------------------------------- validation
def test_grant_pattern_escapes_wildcards():
    assert db.grant_pattern("nova_api") == "nova\\_api"
    assert db.grant_pattern("nova_cell0") == "nova\\_cell0"
    assert db.grant_pattern("novaXapi") == "novaXapi"
    assert db.quote_identifier("a`b") == "`a``b`"


@pytest.mark.parametrize("name", ["nova;", "no va", "`x`", "a'b", "x" * 65, "", "a%", "a\\b"])
def test_invalid_database_names(name):
    with pytest.raises(db.CommandExecutionError, match="invalid database name in 'name'"):
        db.validate_database(name)


@pytest.mark.parametrize("host", ["a'b", "a b", "h@x", "", "`h`", "a\\b"])
def test_invalid_hosts(host):
    with pytest.raises(db.CommandExecutionError, match="invalid host pattern in 'host'"):
        db.validate_host(host)


def test_hosts_are_case_insensitive():
    assert db.validate_host("LocalHost") == "localhost"
    assert db.validate_host("10.0.0.%") == "10.0.0.%"
    assert db.validate_host("192.168.1.0/255.255.255.0") == "192.168.1.0/255.255.255.0"


@pytest.mark.parametrize("pw", [None, "", True, ["x"]])
def test_invalid_passwords(pw):
    with pytest.raises(db.CommandExecutionError, match="'password' must be a non-empty string"):
        db.validate_password(pw)


def test_numeric_password_from_yaml_is_a_string():
    assert db.validate_password(123456) == "123456"


# ----------------------------------------------------------------- hashing
def test_native_password_hash_matches_server():
    # SELECT PASSWORD('p') on MariaDB 10.11.
    assert db.native_password_hash("p") == "*7B9EBEED26AA52ED10C0F549FA863F13C39E0209"
    assert db.password_matches("mysql_native_password",
                               "*7B9EBEED26AA52ED10C0F549FA863F13C39E0209", "p") is True
    assert db.password_matches("mysql_native_password",
                               "*7B9EBEED26AA52ED10C0F549FA863F13C39E0209", "q") is False


def test_sha256_crypt_reference_vectors():
    # Vectors as glibc's crypt() computes them (the second is the specification's).
    assert db.sha256_crypt(b"Hello world!", b"saltstring") == \
        "5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
    assert db.sha256_crypt(b"Hello world!", b"saltstringsaltst", 10000) == \
        "3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"


@settings(max_examples=25, deadline=None)
@given(pw=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
                  max_size=40),
       salt=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789./", min_size=1,
                    max_size=16))
def test_sha256_crypt_matches_libc(pw, salt):
    expected = crypt.crypt(pw, f"$5${salt}").rsplit("$", 1)[1]
    assert db.sha256_crypt(pw.encode(), salt.encode()) == expected


def test_caching_sha2_password_format():
    salt = "abcdefghij0123456789"
    digest = db.sha256_crypt("s3cr'et".encode(), salt.encode(), 5000)
    auth = "$A$005$" + salt + digest
    assert db.password_matches("caching_sha2_password", auth, "s3cr'et") is True
    assert db.password_matches("caching_sha2_password", auth, "other") is False
    assert db.password_matches("ed25519", "xyz", "other") is None
    assert db.password_matches("mysql_native_password", "", "other") is False


# ----------------------------------------------------------------- masking
@pytest.mark.parametrize("secret", ["p'a\"s\\s%@:/ wörd", "simple", "ünï\\code"])
def test_mask_removes_raw_escaped_and_repr_forms(secret):
    import pymysql.converters

    text = (f"near '{pymysql.converters.escape_string(secret)}' at line 1; "
            f"{secret!r}; {secret}")
    masked = state.mask(text, [secret])
    assert secret not in masked
    assert pymysql.converters.escape_string(secret) not in masked
    assert repr(secret)[1:-1] not in masked
    assert state.MASK in masked


# ------------------------------------------------------- connection settings
def test_settings_defaults_and_config(mod):
    assert mod.settings()["host"] == "127.0.0.1" and mod.settings()["port"] == 3306
    mod._config["openstack_db:connection"] = {"unix_socket": "/run/x.sock", "port": "3307"}
    conf = mod.settings()
    assert conf["unix_socket"] == "/run/x.sock" and conf["port"] == 3307
    # An explicit connection replaces the configured one.
    assert mod.settings({"host": "db1"})["unix_socket"] is None


def test_settings_reject_unknown_and_bad_port(mod):
    with pytest.raises(mod.DbError, match="unknown setting.*passwd"):
        mod.settings({"passwd": "x"})
    with pytest.raises(mod.DbError, match="'port' must be an integer"):
        mod.settings({"port": "abc"})


def test_cache_key_hides_the_password(mod):
    conf = mod.settings({"password": "TopSecret-1"})
    key = mod._cache_key(conf)
    assert "TopSecret-1" not in repr(key)
    assert key != mod._cache_key(mod.settings({"password": "TopSecret-2"}))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_names_host_port_and_reason(mod):
    port = _free_port()
    with pytest.raises(mod.DbError) as info:
        mod.db_get("nova", connection={"port": port, "password": "pw-never-shown"})
    text = str(info.value)
    assert f"127.0.0.1:{port}" in text and "refused" in text.lower()
    assert "pw-never-shown" not in text


def test_server_that_is_not_mysql_fails_cleanly(mod):
    """A socket that accepts and closes at once (fake server): a clear error."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        import threading

        def serve():
            conn, _ = srv.accept()
            conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with pytest.raises(mod.DbError, match=f"127.0.0.1:{port}"):
            mod.db_get("nova", connection={"port": port, "connect_timeout": 3})
        thread.join(5)


# --------------------------------------------- the module on the real MariaDB
def _root_sql(statement, args=None):
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall()
    finally:
        conn.close()


def test_connection_is_reused_and_reconnects_after_a_drop(mod):
    assert mod.db_get("mysql")["name"] == "mysql"
    assert mod.db_get("information_schema") is not None
    assert mod.stats()["connections"] == 1
    server = next(iter(mod.__context__["openstack_db.connections"].values()))
    _root_sql(f"KILL {server.conn.thread_id()}")
    # A read on a dropped connection is retried once on a new one.
    assert mod.db_get("mysql") is not None
    assert mod.stats()["connections"] == 2
    # An idle connection is pinged first and replaced when dead.
    _root_sql(f"KILL {server.conn.thread_id()}")
    server.last_used -= 60
    assert mod.user_exists("root", "localhost")
    assert mod.stats()["connections"] == 3


def test_cached_reads_are_dropped_by_writes(mod):
    name = "osdbu" + os.urandom(4).hex()
    try:
        assert mod.db_get(name, cached=True) is None
        queries = mod.stats()["queries"]
        assert mod.db_get(name, cached=True) is None
        assert mod.stats()["queries"] == queries  # served from the run's cache
        mod.db_create(name)
        assert mod.db_get(name, cached=True)["character_set"] == "utf8mb4"
        # Plain calls never use (nor create) the per-run cache.
        ctx = {"openstack_db.connections": mod.__context__["openstack_db.connections"]}
        mod.__context__ = ctx
        assert mod.db_get(name)["name"] == name
        assert "openstack_db.reads" not in ctx
    finally:
        _root_sql(f"DROP DATABASE IF EXISTS `{name}`")


def test_statement_error_masks_the_password(mod):
    user = "osdbu" + os.urandom(4).hex()
    secret = "s'cr\\et-%-" + os.urandom(3).hex()
    try:
        mod.user_create(user, "localhost", secret)
        # A syntax error just before the literal: the server echoes it; masked here.
        server = next(iter(mod.__context__["openstack_db.connections"].values()))
        with pytest.raises(mod.DbError) as info:
            server.query("CREATE USER %s@%s IDENTIFIED BY X %s", (user, "localhost", secret),
                         secrets=[secret])
        assert "error 1064" in str(info.value)
        assert secret not in str(info.value)
        assert "s\\'cr" not in str(info.value) and state.MASK in str(info.value)
        check = mod.user_check(user, "LOCALHOST", secret)
        assert check == {"exists": True, "plugin": "mysql_native_password", "password": True}
        assert mod.user_check(user, "localhost", secret + "x")["password"] is False
    finally:
        _root_sql("DROP USER IF EXISTS %s@%s", (user, "localhost"))
