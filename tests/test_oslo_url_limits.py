"""What Nova's own libraries make of the formula's URLs, on real servers.

The formula percent-encodes every character of the user and password in the
transport URL and the database URLs (``_utils/nova_dialects.py``). These tests log
in through Debian's oslo.messaging + kombu and SQLAlchemy, as Nova does
(tests/support/oslo_url_check.py), with passwords holding every URL, shell,
SQL and JSON special character, against the real RabbitMQ and MariaDB:

- the database URL carries every ASCII character, ``/`` included; not a
  non-ASCII one: Debian 12's PyMySQL (1.0) sends passwords as latin-1, so
  the validator refuses those (schema.ASCII_ONLY);
- the transport URL carries every character but ``/``: oslo.messaging's
  rabbit driver decodes the password and re-quotes it with ``quote()``, which
  leaves ``/`` raw, so kombu cannot parse its URL. The validator therefore
  refuses a ``/`` in nova:messaging:password (schema.NO_SLASH); if a
  later oslo.messaging fixes this, ``test_slash_breaks_oslo_messaging`` fails
  and the rule can go.
- Nova's own cell0 URL rule (``nova-manage cell_v2 map_cell0``) decodes the
  password, which is why the formula maps cell0 itself
  (``nova_manage._wanted_cell_urls``).
"""
import subprocess
from urllib.parse import unquote, urlsplit

import pymysql
import pytest

from harness import load_module
from reliability_support import new_tag, oslo_login
from secret_audit import sentinel


dialects = load_module("utils", "nova_dialects")  # the URLs the formula writes
schema = load_module("utils", "nova_schema")  # what the validator refuses


def _ctl(*args, stdin=None):
    proc = subprocess.run(["rabbitmqctl", "-q", *args], input=stdin, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, f"rabbitmqctl {args[0]}: {proc.stderr[-300:]}"


@pytest.fixture
def rabbit_user():
    """make(password) -> transport URL of a fresh RabbitMQ user and vhost."""
    made = []

    def make(password):
        tag = new_tag("oul")
        user, vhost = tag + "_mq", tag + "_vh"
        _ctl("add_vhost", vhost)
        made.append((user, vhost))
        _ctl("add_user", user, stdin=password + "\n")
        _ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        return dialects.transport_url({"messaging": {
            "host": "127.0.0.1", "port": 5672, "user": user, "password": password,
            "virtual_host": vhost}})

    yield make
    for user, vhost in made:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


@pytest.fixture
def db_user():
    """make(password) -> SQLAlchemy URL of a fresh MariaDB user and database."""
    made = []
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="")

    def make(password):
        tag = new_tag("oul")
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{tag}`")
            made.append(tag)
            cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (tag, password))
            cur.execute(f"GRANT ALL ON `{tag}`.* TO %s@'127.0.0.1'", (tag,))
        return dialects.db_url({"database": {
            "driver": "mysql+pymysql", "host": "127.0.0.1", "port": 3306, "user": tag,
            "password": password, "name": tag, "api_name": tag + "_api"}})

    yield make
    with admin.cursor() as cur:
        for tag in made:
            cur.execute(f"DROP DATABASE IF EXISTS `{tag}`")
            cur.execute("DROP USER IF EXISTS %s@'127.0.0.1'", (tag,))
    admin.close()


def test_every_character_but_slash_reaches_rabbitmq(rabbit_user):
    url = rabbit_user(sentinel("mq", without="/") + "?[]é;+=,!$*()~")
    assert oslo_login(transport_url=url) == {"transport_url": {"ok": True}}
    # and a wrong password is refused, so the login above proves something
    wrong = url.replace("end", "enX", 1)
    assert oslo_login(transport_url=wrong)["transport_url"]["ok"] is False


def test_slash_breaks_oslo_messaging(rabbit_user):
    url = rabbit_user("pass/word")
    got = oslo_login(transport_url=url)
    assert got == {"transport_url": {"ok": False, "error": "ValueError"}}, got
    assert "messaging:password" in schema.NO_SLASH  # refused up front


def test_every_ascii_character_reaches_mariadb_through_sqlalchemy(db_user):
    url = db_user(sentinel("db") + "?[]{};+=,!$*()~`|<>^")
    assert oslo_login(database_connection=url) == {"database_connection": {"ok": True}}
    wrong = url.replace("end", "enX", 1)
    assert oslo_login(database_connection=wrong)["database_connection"]["ok"] is False


def test_non_ascii_database_password_breaks_pymysql_before_1_1(db_user):
    """Debian 12's PyMySQL 1.0.2 sends the password as latin-1; the server
    hashed its UTF-8 bytes. The validator refuses it (schema.ASCII_ONLY);
    when Nova's PyMySQL sends UTF-8, this test fails and the rule can go."""
    url = db_user("pass-é")
    got = oslo_login(database_connection=url)
    assert got == {"database_connection": {"ok": False, "error": "OperationalError"}}, got
    assert "database:password" in schema.ASCII_ONLY


def test_nova_manage_cell0_rule_breaks_the_password_the_formula_keeps(db_user):
    """Nova's map_cell0 derives cell0's URL as unquote(str(make_url(url))); the
    formula appends _cell0 to the path and keeps the encoded password."""
    password = sentinel("db")
    url = db_user(password)
    script = ("import sys, urllib.parse, sqlalchemy.engine.url as u\n"
              "url = u.make_url(sys.stdin.read())\n"
              "url = url.set(database=url.database + '_cell0')\n"
              "print(urllib.parse.unquote(str(url)))\n")
    proc = subprocess.run(["/usr/bin/python3", "-c", script], input=url, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-500:]
    nova_rule = proc.stdout.strip()
    assert unquote(urlsplit(nova_rule).password or "") != password

    nova_manage = load_module("modules", "nova_manage")
    nova_manage.__salt__ = {"openstack_ini.get_option":
                            lambda path, section, key: url if section == "database" else None,
                            "config.get": lambda key, default=None: default}
    ours = nova_manage._wanted_cell_urls(nova_manage.NOVA_CONF, "cell0")["database_connection"]
    parts = urlsplit(ours)
    assert unquote(parts.password) == password and parts.path.endswith("_cell0")
