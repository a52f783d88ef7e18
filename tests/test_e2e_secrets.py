"""Secrets audit of the whole all-in-one deploy, with a server boot.

Runs after tests/test_e2e.py (which leaves the all-in-one deployed; if it is
not, aio.sh deploys it). Every password of the deploy becomes a sentinel
holding the URL, shell, SQL and JSON special characters (``@ : / % # & ' "
\\`` and a space): the database and RabbitMQ passwords (so this is also a
password rotation: nova.conf, the DB user, the cell mappings), the Keystone
password of the nova user and the metadata secret. The RabbitMQ one has no
``/``, which oslo.messaging cannot carry (the validator refuses it; see
tests/test_oslo_url_limits.py). A full ``aio.sh`` (apply, services, a server
to ACTIVE) runs under an argv sampler, then everything a local user could
read is searched, and the passwords are shown to work.
"""
import os
import re
import stat
import subprocess
from urllib.parse import urlsplit, urlunsplit

import pymysql

from harness import REPO
from reliability_support import ini_value, oslo_login
from secret_audit import ArgvSampler, audit, describe, sentinel

STATE_DIR = "/var/lib/nova-formula-tests"
AIO_DIR = os.path.join(STATE_DIR, "aio")
AIO = os.path.join(REPO, "tests", "support", "aio.sh")
# password file -> (sentinel label, characters left out)
ROTATED = {"aio-db-nova": ("db", ""), "aio-rabbitmq-nova": ("mq", "/"),
           "aio-keystone-nova": ("keystone-nova", ""), "aio-metadata-secret": ("metadata", "")}
CONFIG_FILES = ("/etc/nova/nova.conf", "/etc/nova/api-paste.ini", "/etc/nova/nova-compute.conf")


def _password_file(name):
    return os.path.join(STATE_DIR, f"{name}.password")


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


def _token(password):
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(auth_url="http://127.0.0.1:5000/v3", username="nova", password=password,
                       project_name="service", user_domain_name="Default",
                       project_domain_name="Default")
    return session.Session(auth=auth).get_token()


def _cell0(url):
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + "_cell0"))


def _cell_urls():
    """{name: (transport_url, database_connection)} of nova_api.cell_mappings."""
    conn = pymysql.connect(host="127.0.0.1", user="root", password="", database="nova_api")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name, transport_url, database_connection FROM cell_mappings")
            return {name: (transport, db) for name, transport, db in cur.fetchall()}
    finally:
        conn.close()


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def test_full_deploy_with_sentinel_passwords_leaks_nothing_and_boots_a_server():
    secrets = {name: sentinel(label, without) for name, (label, without) in ROTATED.items()}
    saved = {name: _read(_password_file(name)) for name in secrets}
    try:
        for name, value in secrets.items():
            _write_private(_password_file(name), value)
        with ArgvSampler() as argv:
            proc = subprocess.run(["bash", AIO], capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        assert "server: ACTIVE" in proc.stdout, proc.stdout[-3000:]
        assert _token(secrets["aio-keystone-nova"])  # the sentinel passwords work
        with open("/etc/nova/nova.conf") as fh:
            conf = fh.read()
        urls = {"transport_url": ini_value(conf, "DEFAULT", "transport_url"),
                "database_connection": ini_value(conf, "database", "connection")}
        assert secrets["aio-db-nova"] not in conf and secrets["aio-rabbitmq-nova"] not in conf
        assert oslo_login(**urls) == {key: {"ok": True} for key in urls}
        assert _cell_urls() == {"cell0": ("none:///", _cell0(urls["database_connection"])),
                                "cell1": (urls["transport_url"], urls["database_connection"])}

        for path in CONFIG_FILES:
            if os.path.exists(path):
                st = os.stat(path)
                assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0, path

        cachedir = os.path.join(AIO_DIR, "cache")
        hits = audit(list(secrets.values()),
                     outputs={"aio.sh:stdout": proc.stdout, "aio.sh:stderr": proc.stderr},
                     paths=["/var/log", "/tmp", AIO_DIR], argv=argv,
                     exclude=[os.path.join(AIO_DIR, "pillar"),
                              os.path.join(cachedir, "highstate.cache.p")])
        assert not hits, describe(hits)
    finally:
        # Leave the all-in-one as it was found: its own passwords back in
        # their files and in place (DB user, RabbitMQ, Keystone, nova.conf,
        # cells), so the next aio.sh changes nothing.
        for name, text in saved.items():
            if text is None:
                if os.path.exists(_password_file(name)):
                    os.unlink(_password_file(name))
            else:
                _write_private(_password_file(name), text.rstrip("\n"))
        back = subprocess.run(["bash", AIO], capture_output=True, text=True, timeout=1800)
        assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    # ...and then it does: the passwords and every record they are in are back
    again = subprocess.run(["bash", AIO, "apply"], capture_output=True, text=True, timeout=1800)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert re.search(r"\d+ states, 0 changed$", again.stdout.strip()), again.stdout
