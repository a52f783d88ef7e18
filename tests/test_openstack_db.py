"""openstack_db states through the real ``salt-call --local state.apply`` against
the MariaDB on 127.0.0.1:3306 (root, no password). Every test uses unique names
and the ``osdb`` fixture drops them afterwards, even when the test fails."""
import json
import socket
import uuid

import pymysql
import pytest

SOCKET = "/run/mysqld/mysqld.sock"
# Quotes, backslash, %, @, :, /, spaces and unicode.
PASSWORD = "q'u\"o\\te%@:/ späce ünï"
NEW_PASSWORD = "n3w'\\%@:/ pässwörd"

SLS = """
{%- set c = pillar['osdb'] %}
{%- for db in c.databases %}
db_{{ loop.index }}:
  openstack_db.database_present:
    - name: {{ db }}
{%- endfor %}
{%- for host in c.hosts %}
{%- set h = loop.index %}
user_{{ h }}:
  openstack_db.user_present:
    - name: {{ c.user }}
    - host: {{ host | yaml_encode }}
    - password: {{ c.password | yaml_encode }}
{%- for db in c.databases %}
grant_{{ h }}_{{ loop.index }}:
  openstack_db.grants_present:
    - name: {{ c.user }}
    - host: {{ host | yaml_encode }}
    - database: {{ db }}
    - privileges: {{ c.get('privileges', 'ALL') | json }}
    - strict: {{ c.get('strict', False) }}
    - require:
      - openstack_db: user_{{ h }}
{%- endfor %}
{%- endfor %}
"""


def admin():
    return pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)


def sql(statement, args=None):
    conn = admin()
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall()
    finally:
        conn.close()


def login(user, password, tcp, database=None):
    """Log in as ``user`` (socket = 'localhost' account, TCP = '%' account)."""
    kwargs = {"user": user, "password": password.encode("utf-8"), "autocommit": True,
              "database": database}
    if tcp:
        kwargs.update(host="127.0.0.1", port=3306)
    else:
        kwargs["unix_socket"] = SOCKET
    return pymysql.connect(**kwargs)


def can_login(user, password, tcp):
    try:
        login(user, password, tcp).close()
        return True
    except pymysql.err.OperationalError as exc:
        assert exc.args[0] == 1045, exc
        return False


class Names:
    def __init__(self):
        self.prefix = "osdb" + uuid.uuid4().hex[:8]
        self.user = self.prefix
        self.databases = [self.prefix, f"{self.prefix}_api", f"{self.prefix}_cell0"]
        self.extra_users = []

    def pillar(self, password=PASSWORD, hosts=("%", "localhost"), **extra):
        data = {"osdb": {"user": self.user, "password": password, "hosts": list(hosts),
                         "databases": self.databases, **extra}}
        return data


@pytest.fixture
def osdb(salt_call):
    names = Names()
    salt_call.write_sls("osdb", SLS)
    yield names
    # Drop everything named after this test's prefix, whatever the outcome.
    users = sql("SELECT User, Host FROM mysql.user WHERE User LIKE %s",
                (names.prefix + "%",))
    for user, host in users:
        sql("DROP USER IF EXISTS %s@%s", (user, host))
    for (schema,) in sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                         "WHERE SCHEMA_NAME LIKE %s", (names.prefix + "%",)):
        sql(f"DROP DATABASE IF EXISTS `{schema}`")


def log_since(salt_call, offset):
    with open(salt_call.log_file, encoding="utf-8", errors="replace") as fh:
        fh.seek(offset)
        return fh.read()


def log_size(salt_call):
    try:
        with open(salt_call.log_file, "rb") as fh:
            return len(fh.read())
    except FileNotFoundError:
        return 0


def create_table_everywhere(names, password, tcp):
    conn = login(names.user, password, tcp)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            account = cur.fetchone()[0]
            for database in names.databases:
                table = "t_tcp" if tcp else "t_sock"
                cur.execute(f"CREATE TABLE `{database}`.`{table}` (id INT PRIMARY KEY)")
                cur.execute(f"INSERT INTO `{database}`.`{table}` VALUES (1)")
    finally:
        conn.close()
    return account


def test_first_apply_usable_then_noop_only_reads(salt_call, osdb):
    salt_call.set_pillar(osdb.pillar())
    run = salt_call.apply("osdb").assert_ok()
    # 3 databases, 2 users, 6 grants: all created.
    assert len(run.changed) == 11, run.changed
    # Usable at once, from each host pattern reachable here.
    assert create_table_everywhere(osdb, PASSWORD, tcp=False) == f"{osdb.user}@localhost"
    assert create_table_everywhere(osdb, PASSWORD, tcp=True) == f"{osdb.user}@%"
    for database in osdb.databases:
        row = sql("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
                  "WHERE SCHEMA_NAME = %s", (database,))
        assert row[0][0] == "utf8mb4"

    offset = log_size(salt_call)
    again = salt_call.apply("osdb").assert_ok()
    assert again.changed == {}
    log = log_since(salt_call, offset)
    queries = [line.split(": ", 2)[-1] for line in log.splitlines()
               if "openstack_db: query" in line]
    assert queries, "the module logs each statement (without values) at debug level"
    assert all(q.startswith(("SELECT", "SHOW")) for q in queries), queries
    # One connection for the whole run, reads cached: 1 schemata + 1 user + 2 SHOW GRANTS.
    assert log.count("openstack_db: connection ") == 1
    assert len(queries) == 4, queries


def test_test_mode_reports_and_changes_nothing(salt_call, osdb):
    salt_call.set_pillar(osdb.pillar())
    run = salt_call.apply("osdb", test=True)
    assert not run.failed, run.raw
    assert len(run.changed) == 11
    assert all(r["result"] is None for r in run.states.values())
    assert not sql("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                   (osdb.prefix + "%",))
    assert not sql("SELECT 1 FROM mysql.user WHERE User = %s", (osdb.user,))


def test_password_change_in_pillar(salt_call, osdb):
    salt_call.set_pillar(osdb.pillar(hosts=["localhost"]))
    salt_call.apply("osdb").assert_ok()
    salt_call.set_pillar(osdb.pillar(password=NEW_PASSWORD, hosts=["localhost"]))

    dry = salt_call.apply("osdb", test=True)
    assert list(dry.changed) == ["user_1"]
    assert dry["user_1"]["result"] is None
    assert can_login(osdb.user, PASSWORD, tcp=False)  # nothing changed

    run = salt_call.apply("osdb").assert_ok()
    assert list(run.changed) == ["user_1"], run.changed
    assert run["user_1"]["changes"] == {"password": {"old": "********", "new": "********"}}
    assert not can_login(osdb.user, PASSWORD, tcp=False)
    assert can_login(osdb.user, NEW_PASSWORD, tcp=False)
    assert salt_call.apply("osdb").assert_ok().changed == {}


def test_password_change_on_every_host_pattern(salt_call, osdb):
    salt_call.set_pillar(osdb.pillar())
    salt_call.apply("osdb").assert_ok()
    salt_call.set_pillar(osdb.pillar(password=NEW_PASSWORD))
    run = salt_call.apply("osdb").assert_ok()
    # One change per account, the password only.
    assert sorted(run.changed) == ["user_1", "user_2"]
    for tcp in (False, True):
        assert not can_login(osdb.user, PASSWORD, tcp)
        assert can_login(osdb.user, NEW_PASSWORD, tcp)


def test_hand_drift_is_reported_and_corrected(salt_call, osdb):
    salt_call.set_pillar(osdb.pillar())
    salt_call.apply("osdb").assert_ok()
    sql("ALTER USER %s@%s IDENTIFIED BY %s", (osdb.user, "%", "changed-by-hand"))
    sql(f"REVOKE ALL PRIVILEGES ON `{osdb.prefix}\\_api`.* FROM %s@%s",
        (osdb.user, "localhost"))
    assert not can_login(osdb.user, PASSWORD, tcp=True)

    dry = salt_call.apply("osdb", test=True)
    assert sorted(dry.changed) == ["grant_2_2", "user_1"], dry.changed
    assert "differs" in dry["user_1"]["comment"]

    run = salt_call.apply("osdb").assert_ok()
    assert sorted(run.changed) == ["grant_2_2", "user_1"]
    assert run["grant_2_2"]["changes"] == {"grant": f"ALL PRIVILEGES ON `{osdb.prefix}_api`.*"}
    assert can_login(osdb.user, PASSWORD, tcp=True)
    assert create_table_everywhere(osdb, PASSWORD, tcp=False) == f"{osdb.user}@localhost"
    assert salt_call.apply("osdb").assert_ok().changed == {}


def test_underscore_is_not_a_wildcard(salt_call, osdb):
    """A grant on x_api is neither satisfied by nor colliding with one on xXapi."""
    real, lookalike = f"{osdb.prefix}_api", f"{osdb.prefix}Xapi"
    osdb.databases = [real]
    salt_call.set_pillar(osdb.pillar(hosts=["localhost"]))
    sql(f"CREATE DATABASE `{lookalike}`")
    sql("CREATE USER %s@%s IDENTIFIED BY %s", (osdb.user, "localhost", PASSWORD))
    sql(f"GRANT ALL ON `{lookalike}`.* TO %s@%s", (osdb.user, "localhost"))

    run = salt_call.apply("osdb").assert_ok()
    assert "grant_1_1" in run.changed  # the lookalike's grant did not count
    # The new grant is literal: it gives nothing on a third lookalike database.
    third = f"{osdb.prefix}Yapi"
    sql(f"CREATE DATABASE `{third}`")
    conn = login(osdb.user, PASSWORD, tcp=False)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{real}`.t (i INT)")
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute(f"CREATE TABLE `{third}`.t (i INT)")
    conn.close()
    # The lookalike's grant is untouched, and each is recognised as its own.
    grants = [r[0] for r in sql("SHOW GRANTS FOR %s@%s", (osdb.user, "localhost"))]
    assert any(f"`{lookalike}`.*" in g for g in grants)
    osdb.databases = [lookalike]
    salt_call.set_pillar(osdb.pillar(hosts=["localhost"]))
    assert salt_call.apply("osdb").assert_ok().changed == {}

    # A wildcard grant made by hand on x_api does not satisfy xXapi either.
    sql("REVOKE ALL ON `{}`.* FROM %s@%s".format(lookalike), (osdb.user, "localhost"))
    sql(f"GRANT ALL ON `{real}`.* TO %s@%s", (osdb.user, "localhost"))  # unescaped: wildcard
    run = salt_call.apply("osdb").assert_ok()
    assert "grant_1_1" in run.changed


def test_strict_revokes_extras_on_the_same_database_only(salt_call, osdb):
    other_db = f"{osdb.prefix}_other"
    other_user = f"{osdb.prefix}o"
    osdb.databases = [f"{osdb.prefix}_api"]
    sql(f"CREATE DATABASE `{osdb.prefix}_api`")
    sql("CREATE USER %s@%s IDENTIFIED BY %s", (osdb.user, "localhost", PASSWORD))
    sql("CREATE USER %s@%s IDENTIFIED BY %s", (other_user, "localhost", "x"))
    sql(f"GRANT ALL ON `{osdb.prefix}\\_api`.* TO %s@%s", (osdb.user, "localhost"))
    sql(f"GRANT ALL ON `{other_db}`.* TO %s@%s", (osdb.user, "localhost"))
    sql(f"GRANT ALL ON `{osdb.prefix}\\_api`.* TO %s@%s", (other_user, "localhost"))

    salt_call.set_pillar(osdb.pillar(hosts=["localhost"], privileges="SELECT, insert"))
    assert salt_call.apply("osdb").assert_ok().changed == {}  # ALL covers it: no revoke

    salt_call.set_pillar(osdb.pillar(hosts=["localhost"], privileges=["SELECT", "INSERT"],
                                     strict=True))
    dry = salt_call.apply("osdb", test=True)
    assert list(dry.changed) == ["grant_1_1"]
    run = salt_call.apply("osdb").assert_ok()
    assert list(run.changed) == ["grant_1_1"]
    mine = [r[0] for r in sql("SHOW GRANTS FOR %s@%s", (osdb.user, "localhost"))]
    assert f"GRANT SELECT, INSERT ON `{osdb.prefix}\\_api`.* TO `{osdb.user}`@`localhost`" in mine
    assert any(f"ALL PRIVILEGES ON `{other_db}`.*" in g for g in mine)
    theirs = [r[0] for r in sql("SHOW GRANTS FOR %s@%s", (other_user, "localhost"))]
    assert any(f"ALL PRIVILEGES ON `{osdb.prefix}\\_api`.*" in g for g in theirs)
    assert salt_call.apply("osdb").assert_ok().changed == {}


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


ERR_SLS = """
bad:
  openstack_db.{fun}:
{args}
"""


def _one(salt_call, fun, **args):
    lines = "\n".join(f"    - {k}: {json.dumps(v)}" for k, v in args.items())
    salt_call.write_sls("osdb_err", ERR_SLS.format(fun=fun, args=lines))
    run = salt_call.apply("osdb_err")
    return run["bad"], run


def _no_traceback(run):
    assert "Traceback" not in run.proc.stdout and "Traceback" not in run.proc.stderr


def test_server_down_from_pillar_connection(salt_call, osdb):
    port = _free_port()
    salt_call.set_pillar({"openstack_db": {"connection": {"port": port,
                                                          "password": "adm-pw-hidden"}}})
    ret, run = _one(salt_call, "database_present", name=osdb.databases[0])
    assert ret["result"] is False
    assert f"127.0.0.1:{port}" in ret["comment"] and "refused" in ret["comment"].lower()
    _no_traceback(run)
    assert "adm-pw-hidden" not in run.proc.stdout


def test_connection_through_the_socket_from_pillar(salt_call, osdb):
    salt_call.set_pillar({"openstack_db": {"connection": {"unix_socket": SOCKET}}})
    ret, _ = _one(salt_call, "database_present", name=osdb.databases[0])
    assert ret["result"] is True, ret
    assert sql("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
               (osdb.databases[0],))


def test_bad_admin_credentials(salt_call, osdb):
    ret, run = _one(salt_call, "user_present", name=osdb.user, host="%", password=PASSWORD,
                    connection={"user": "root", "password": "wrong-admin-secret"})
    assert ret["result"] is False
    assert "access denied" in ret["comment"] and "127.0.0.1:3306" in ret["comment"]
    _no_traceback(run)
    assert "wrong-admin-secret" not in run.proc.stdout
    assert not sql("SELECT 1 FROM mysql.user WHERE User = %s", (osdb.user,))


def test_missing_privilege_to_grant(salt_call, osdb):
    weak = f"{osdb.prefix}w"
    sql("CREATE USER %s@%s IDENTIFIED BY %s", (weak, "127.0.0.1", "weak-admin-pw"))
    sql("GRANT SELECT ON mysql.* TO %s@%s", (weak, "127.0.0.1"))
    sql("CREATE USER %s@%s IDENTIFIED BY %s", (osdb.user, "localhost", PASSWORD))
    before = sql("SHOW GRANTS FOR %s@%s", (osdb.user, "localhost"))
    conn = {"host": "127.0.0.1", "user": weak, "password": "weak-admin-pw"}
    ret, run = _one(salt_call, "grants_present", name=osdb.user, host="localhost",
                    database=osdb.databases[0], connection=conn)
    assert ret["result"] is False
    assert "lacks the privilege" in ret["comment"], ret["comment"]
    _no_traceback(run)
    assert sql("SHOW GRANTS FOR %s@%s", (osdb.user, "localhost")) == before
    assert "weak-admin-pw" not in run.proc.stdout
    # Creating a user needs CREATE USER: refused too, nothing created.
    ret, _ = _one(salt_call, "user_present", name=f"{osdb.prefix}n", host="%",
                  password=PASSWORD, connection=conn)
    assert ret["result"] is False and "lacks the privilege" in ret["comment"]
    assert not sql("SELECT 1 FROM mysql.user WHERE User = %s", (f"{osdb.prefix}n",))


@pytest.mark.parametrize("fun,args,needle", [
    ("database_present", {"name": "nova; DROP DATABASE mysql"}, "'name'"),
    ("database_present", {"name": "nova", "character_set": "utf8mb4; x"}, "'character_set'"),
    ("user_present", {"name": "nova", "host": "a'b", "password": "x"}, "'host'"),
    ("user_present", {"name": "no va", "host": "%", "password": "x"}, "'name'"),
    ("user_present", {"name": "nova", "host": "%", "password": ""}, "'password'"),
    ("grants_present", {"name": "nova", "host": "%", "database": "n`x"}, "'database'"),
    ("grants_present", {"name": "nova", "host": "%", "database": "nova",
                        "privileges": "SUPER"}, "'privileges'"),
    ("database_present", {"name": "nova", "connection": {"passwd": "x"}}, "passwd"),
])
def test_invalid_input_fails_cleanly(salt_call, osdb, fun, args, needle):
    ret, run = _one(salt_call, fun, **args)
    assert ret["result"] is False
    assert needle in ret["comment"], ret["comment"]
    assert ret["changes"] == {}
    _no_traceback(run)


def test_grants_for_a_missing_user(salt_call, osdb):
    ret, _ = _one(salt_call, "grants_present", name=osdb.user, host="%",
                  database=osdb.databases[0])
    assert ret["result"] is False and "user_present" in ret["comment"]


def test_database_charset_drift_and_absent_states(salt_call, osdb):
    name = osdb.databases[0]
    sql(f"CREATE DATABASE `{name}` CHARACTER SET latin1")
    ret, _ = _one(salt_call, "database_present", name=name)
    assert ret["changes"] == {"character_set": {"old": "latin1", "new": "utf8mb4"}}
    assert sql("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
               "WHERE SCHEMA_NAME = %s", (name,))[0][0] == "utf8mb4"
    ret, _ = _one(salt_call, "database_present", name=name, character_set="utf8mb4",
                  collate="utf8mb4_bin")
    assert list(ret["changes"]) == ["collate"]
    ret, _ = _one(salt_call, "database_present", name=name, collate="utf8mb4_bin")
    assert ret["changes"] == {}

    sql("CREATE USER %s@%s IDENTIFIED BY %s", (osdb.user, "10.0.0.%", "x"))
    ret, _ = _one(salt_call, "user_absent", name=osdb.user, host="10.0.0.%")
    assert ret["changes"] and ret["result"] is True
    ret, _ = _one(salt_call, "user_absent", name=osdb.user, host="10.0.0.%")
    assert ret["changes"] == {}
    ret, _ = _one(salt_call, "database_absent", name=name)
    assert ret["changes"] == {"database": {"old": name, "new": None}}
    ret, _ = _one(salt_call, "database_absent", name=name)
    assert ret["changes"] == {}


def test_host_case_does_not_matter(salt_call, osdb):
    osdb.databases = osdb.databases[:1]
    salt_call.set_pillar(osdb.pillar(hosts=["LocalHost"]))
    salt_call.apply("osdb").assert_ok()
    assert sql("SELECT Host FROM mysql.user WHERE User = %s", (osdb.user,)) == (("localhost",),)
    salt_call.set_pillar(osdb.pillar(hosts=["localhost"]))
    assert salt_call.apply("osdb").assert_ok().changed == {}


def test_secrets_never_in_log_output_or_return(salt_call, osdb):
    """Debug-level minion log, job return and stderr hold no password in any form."""
    weak = f"{osdb.prefix}w"
    admin_pw = "adm'in\\sec%ret"
    sql("CREATE USER %s@%s IDENTIFIED BY %s", (weak, "127.0.0.1", admin_pw))
    sql("GRANT ALL ON *.* TO %s@%s WITH GRANT OPTION", (weak, "127.0.0.1"))
    outputs = []
    conn = {"host": "127.0.0.1", "user": weak, "password": admin_pw}
    salt_call.set_pillar({**osdb.pillar(), "openstack_db": {"connection": conn}})
    outputs.append(salt_call.apply("osdb", test=True).proc)
    outputs.append(salt_call.apply("osdb").assert_ok().proc)
    salt_call.set_pillar({**osdb.pillar(password=NEW_PASSWORD),
                          "openstack_db": {"connection": conn}})
    outputs.append(salt_call.apply("osdb").assert_ok().proc)
    sql("ALTER USER %s@%s IDENTIFIED BY %s", (osdb.user, "%", "hand-set-pw"))
    outputs.append(salt_call.apply("osdb").assert_ok().proc)
    # Failures: a wrong admin password, and a statement error.
    salt_call.set_pillar({**osdb.pillar(password=NEW_PASSWORD),
                          "openstack_db": {"connection": {**conn, "password": "bad'admin"}}})
    outputs.append(salt_call.apply("osdb").proc)
    assert can_login(osdb.user, NEW_PASSWORD, tcp=True)

    with open(salt_call.log_file, encoding="utf-8") as fh:
        log = fh.read()
    assert "[DEBUG" in log and "openstack_db: query" in log  # debug logging was on
    texts = [log] + [p.stdout for p in outputs] + [p.stderr for p in outputs]
    for secret in (PASSWORD, NEW_PASSWORD, admin_pw, "bad'admin"):
        forms = {secret, pymysql.converters.escape_string(secret),
                 json.dumps(secret)[1:-1], repr(secret)[1:-1]}
        for text in texts:
            for form in forms:
                assert form not in text, f"secret form {form!r} leaked"
    # Not the stored hash either.
    assert "IDENTIFIED BY PASSWORD" not in log
