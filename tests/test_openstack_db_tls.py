"""``openstack_db`` over TLS, against a real MariaDB that requires it.

A private mariadbd (own datadir and port, tests/reliability_support.py) is
started with a throw-away CA and server certificate for 127.0.0.1 (openssl).
Its admin account is ``REQUIRE SSL``, so every state that succeeds proves the
TLS connection; the server's count of TLS handshakes grows too. With
``ssl_ca`` the server's certificate is verified: a CA that did not sign it
makes the states fail with a clear comment naming the server, and nothing is
created. (Without ``ssl_ca``, PyMySQL still encrypts when the server offers
TLS, but verifies nothing: give ``ssl_ca`` to be safe from a man in the
middle.)
"""
import subprocess

import pytest  # noqa: F401 - fixtures

from harness import SaltCall
from reliability_support import PrivateMariaDB, new_tag

ADMIN, PASSWORD = "tlsadmin", "tls-Adm1n pw@:/"

SLS = """
{%- set c = pillar['conn'] %}
db:
  openstack_db.database_present:
    - name: {{ pillar['db'] }}
    - connection: {{ c | json }}
user:
  openstack_db.user_present:
    - name: {{ pillar['db'] }}
    - host: '%'
    - password: user-pw
    - connection: {{ c | json }}
grants:
  openstack_db.grants_present:
    - name: {{ pillar['db'] }}
    - host: '%'
    - database: {{ pillar['db'] }}
    - connection: {{ c | json }}
    - require:
      - user
"""


def _ca(folder, name):
    """A self-signed CA and a server certificate for 127.0.0.1 it signed."""
    folder.mkdir()
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=folder)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name} test CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")
    (folder / "san.cnf").write_text("subjectAltName = IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem")
    return {k: str(folder / f) for k, f in (("ca", "ca.pem"), ("cert", "server.pem"),
                                           ("key", "server.key"))}


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls")
    files = _ca(root / "pki", "good")
    other = _ca(root / "other", "other")
    server = PrivateMariaDB(root / "mariadb")
    server.start(f"--ssl-ca={files['ca']}", f"--ssl-cert={files['cert']}",
                 f"--ssl-key={files['key']}")
    try:
        server.query(f"CREATE USER '{ADMIN}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}' REQUIRE SSL")
        server.query(f"GRANT ALL ON *.* TO '{ADMIN}'@'127.0.0.1' WITH GRANT OPTION")
        yield {"server": server, "ca": files["ca"], "other_ca": other["ca"]}
    finally:
        server.stop()


@pytest.fixture
def sc(tmp_path):
    call = SaltCall(tmp_path / "minion")
    call.write_sls("tls", SLS)
    return call


def _conn(tls_server, **extra):
    return {"host": "127.0.0.1", "port": tls_server["server"].port, "user": ADMIN,
            "password": PASSWORD, **extra}


def _databases(tls_server):
    return {row[0] for row in tls_server["server"].query("SHOW DATABASES")}


def _ssl_accepts(tls_server):
    rows = tls_server["server"].query("SHOW GLOBAL STATUS LIKE 'Ssl_accepts'")
    return int(rows[0][1])


def test_states_converge_over_tls(sc, tls_server):
    db = new_tag("tls")
    sc.set_pillar({"db": db, "conn": _conn(tls_server, ssl_ca=tls_server["ca"])})
    accepted = _ssl_accepts(tls_server)
    first = sc.apply("tls")
    first.assert_ok()
    assert _ssl_accepts(tls_server) > accepted  # the server saw TLS handshakes
    assert set(first.changed) == {"db", "user", "grants"}
    assert db in _databases(tls_server)
    assert sc.apply("tls").changed == {}  # and again: nothing to do
    assert PASSWORD not in first.proc.stdout + first.proc.stderr



def test_a_ca_that_did_not_sign_the_server_fails_clearly_and_creates_nothing(sc, tls_server):
    db = new_tag("tls")
    sc.set_pillar({"db": db, "conn": _conn(tls_server, ssl_ca=tls_server["other_ca"])})
    run = sc.apply("tls")
    assert run["db"]["result"] is False
    comment = run["db"]["comment"]
    assert f"127.0.0.1:{tls_server['server'].port}" in comment, comment
    assert "Traceback" not in comment and PASSWORD not in comment
    assert db not in _databases(tls_server)
