"""Shared pieces of the reliability tests (tests/test_reliability_*.py).

- ``example_pillar``: pillar.example (all-in-one) made runnable here: unique
  database, DB user and Keystone names from one tag, DB admin on the shared
  MariaDB, Keystone admin from the clouds.yaml cloud ``nova-formula-admin``,
  config files in a sandbox folder, and every heavy concern switched off
  except the database and the Keystone records (nothing here touches the
  node's packages, services, firewall or /etc/nova).
- ``Sandbox``: the config files of one run, with a fingerprint of the folder.
- ``Db`` / ``Keystone``: independent admin clients (not the modules under
  test) to look at and clean up what a run created, by name prefix.
"""
import contextlib
import grp
import hashlib
import json
import subprocess
import threading
import os
import re
import secrets
import socket
import urllib.error
import urllib.request

import logging

import pymysql
import pytest
import yaml
from formula_support import merge, sandboxed
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3 as ks_v3

from harness import REPO
from secret_audit import wait_for

SOCKET = "/run/mysqld/mysqld.sock"
CLOUDS_YAML = "/etc/openstack/clouds.yaml"
CLOUD = "nova-formula-admin"
KEYSTONE = "http://127.0.0.1:5000/v3"
# keystoneauth logs request bodies (passwords) at debug: keep them out of
# pytest's captured log, which is printed when a test fails.
logging.getLogger("keystoneauth").setLevel(logging.INFO)

# Switched off: they would touch this node (packages, services, iptables,
# sysctl, qemu.conf) or need a running Nova (db_sync, discover).
STUBBED = ("packages", "firewall", "sysctl", "libvirt", "nova_network", "db_sync",
           "services", "discover", "aggregates")

# A small nova.conf with Debian's placeholders (my_ip = 192.0.2.2, an empty
# [placement] username) and commented defaults, like the packaged one.
NOVA_CONF = ("[DEFAULT]\n# The IP address of this host\n#my_ip = <host_ipv4>\nmy_ip = 192.0.2.2\n"
             "#transport_url = rabbit://\n\n[api_database]\n#connection = <None>\n\n"
             "[database]\n#connection = <None>\n\n[keystone_authtoken]\n#password =\n\n"
             "[neutron]\n\n[placement]\nusername =\n")
API_PASTE = "[filter:authtoken]\npaste.filter_factory = keystonemiddleware.auth_token:filter_factory\n"
COMPUTE_CONF = "[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n"


def ini_value(text, section, key):
    """The last ``key = value`` of ``section`` in INI ``text`` (verbatim, as
    oslo.config reads it), or None."""
    current, found = None, None
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip()[1:-1]
        elif current == section and re.match(rf"{re.escape(key)}\s*=", line):
            found = line.split("=", 1)[1].strip()
    return found


def oslo_login(**urls):
    """{name: {"ok": bool, "error"?: type}}: log in with each URL
    (``transport_url``, ``database_connection``) the way Nova's libraries do,
    in the system's Python (tests/support/oslo_url_check.py); the URLs go on
    stdin, never on argv."""
    proc = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tests", "support",
                                                            "oslo_url_check.py")],
                          input=json.dumps(urls), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def new_tag(prefix="rel"):
    """A unique lower-case name prefix, e.g. rel3fa9c1 (valid for MySQL and Keystone)."""
    return prefix + secrets.token_hex(3)


def load_example():
    with open(os.path.join(REPO, "pillar.example")) as fh:
        return yaml.safe_load(fh)["nova"]


class Sandbox:
    """nova.conf, api-paste.ini and nova-compute.conf in a folder of their own."""

    def __init__(self, folder, nova_conf=NOVA_CONF, mode=0o644):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.files = {"nova_conf": os.path.join(self.folder, "nova.conf"),
                      "api_paste": os.path.join(self.folder, "api-paste.ini"),
                      "compute_conf": os.path.join(self.folder, "nova-compute.conf")}
        self.originals = {"nova_conf": nova_conf, "api_paste": API_PASTE,
                          "compute_conf": COMPUTE_CONF}
        self.mode = mode
        self.restore()

    def restore(self):
        for fid, path in self.files.items():
            with open(path, "w") as fh:
                fh.write(self.originals[fid])
            os.chmod(path, self.mode)
            os.chown(path, 0, 0)

    def fingerprint(self):
        """{name: (sha256, mode, uid, gid)} of every entry of the folder."""
        out = {}
        for name in sorted(os.listdir(self.folder)):
            path = os.path.join(self.folder, name)
            st = os.lstat(path)
            with open(path, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            out[name] = (digest, st.st_mode & 0o7777, st.st_uid, st.st_gid)
        return out

    def read(self, fid="nova_conf"):
        with open(self.files[fid]) as fh:
            return fh.read()


def example_pillar(tag, sandbox, **overrides):
    """pillar.example, all-in-one, runnable on this node without touching it."""
    nova = load_example()
    nova["identity"]["admin"] = {}
    nova = merge(nova, {
        "database": {"host": "127.0.0.1", "port": 3306, "user": tag, "name": tag,
                     "api_name": tag + "_api", "grant_hosts": ["%", "localhost"],
                     "admin": {"unix_socket": SOCKET, "user": "root"}},
        "messaging": {"host": "127.0.0.1", "port": 5672},
        "identity": {"cloud": CLOUD, "auth_url": "http://127.0.0.1:5000",
                     "www_authenticate_uri": "http://127.0.0.1:5000",
                     "user": tag + "_u", "project": tag + "_p",
                     "service": {"name": tag + "_s", "type": tag + "_t"},
                     "endpoints": {i: "http://127.0.0.1:8774/v2.1"
                                   for i in ("public", "internal", "admin")}},
        "manage": {flag: False for flag in STUBBED},
        "lookup": {"files": dict(sandbox.files), **sandboxed(sandbox.folder)},
    })
    return {"nova": merge(nova, overrides)}


# ------------------------------------------------------------------ MariaDB

class Db:
    """root on the shared MariaDB (unix socket)."""

    def __init__(self, unix_socket=SOCKET, **kwargs):
        self.kwargs = dict(kwargs) or {"unix_socket": unix_socket}
        self.kwargs.setdefault("user", "root")

    def query(self, sql, args=None):
        conn = pymysql.connect(autocommit=True, **self.kwargs)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall()
        finally:
            conn.close()

    def databases(self, prefix):
        return sorted(r[0] for r in self.query("SHOW DATABASES") if r[0].startswith(prefix))

    def users(self, prefix):
        return sorted((u, h) for u, h in self.query("SELECT User, Host FROM mysql.user")
                      if u.startswith(prefix))

    def cleanup(self, prefix):
        for name in self.databases(prefix):
            self.query("DROP DATABASE IF EXISTS `%s`" % name.replace("`", "``"))
        for user, host in self.users(prefix):
            self.query("DROP USER IF EXISTS %s@%s", (user, host))


# ------------------------------------------------------------------ Keystone

def keystone_answers(url=KEYSTONE):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def admin_cloud():
    """The admin cloud of clouds.yaml; fails (never skips) when Keystone is down."""
    if not keystone_answers() or not os.path.exists(CLOUDS_YAML):
        pytest.fail(f"Keystone does not answer at {KEYSTONE} or {CLOUDS_YAML} is missing: "
                    "run `bash tests/support/services.sh up keystone` first")
    with open(CLOUDS_YAML) as fh:
        return yaml.safe_load(fh)["clouds"][CLOUD]


class Keystone:
    """A plain keystoneauth1 admin client, to check and clean up records."""

    def __init__(self, cloud=None):
        auth = (cloud or admin_cloud())["auth"]
        self.url = auth["auth_url"].rstrip("/")
        self.session = ks_session.Session(auth=ks_v3.Password(
            auth_url=self.url, username=auth["username"], password=auth["password"],
            project_name=auth.get("project_name"),
            user_domain_name=auth.get("user_domain_name", "Default"),
            project_domain_name=auth.get("project_domain_name", "Default")))

    def list(self, kind):
        return self.session.get(f"{self.url}/{kind}").json()[kind]

    def named(self, prefix):
        """{kind: [names]} of users, projects and services starting with ``prefix``."""
        out = {}
        for kind in ("users", "projects", "services"):
            out[kind] = sorted(r.get("name", "") for r in self.list(kind)
                               if r.get("name", "").startswith(prefix)
                               or r.get("type", "").startswith(prefix))
        return {k: v for k, v in out.items() if v}

    def cleanup(self, prefix):
        for svc in self.list("services"):
            if svc.get("name", "").startswith(prefix) or svc.get("type", "").startswith(prefix):
                eps = self.session.get(f"{self.url}/endpoints",
                                       params={"service_id": svc["id"]}).json()["endpoints"]
                for ep in eps:
                    self.session.delete(f"{self.url}/endpoints/{ep['id']}", raise_exc=False)
                self.session.delete(f"{self.url}/services/{svc['id']}", raise_exc=False)
        for kind in ("users", "projects"):
            for rec in self.list(kind):
                if rec.get("name", "").startswith(prefix):
                    self.session.delete(f"{self.url}/{kind}/{rec['id']}", raise_exc=False)

    def token_for(self, auth_url, user, password, project):
        """A token for ``user``/``password``, scoped to ``project`` when given
        (raises when Keystone refuses)."""
        scope = {"project_name": project, "project_domain_name": "Default"} if project else {}
        sess = ks_session.Session(auth=ks_v3.Password(
            auth_url=auth_url, username=user, password=password,
            user_domain_name="Default", **scope))
        return sess.get_token()


@contextlib.contextmanager
def group(name="nova"):
    """The formula's group (Nova's packages add it); created for the test and
    removed afterwards only when this machine has no Nova package yet."""
    try:
        grp.getgrnam(name)
        created = False
    except KeyError:
        subprocess.run(["groupadd", "--system", name], check=True)
        created = True
    try:
        yield grp.getgrnam(name).gr_gid
    finally:
        if created:
            subprocess.run(["groupdel", name], check=False)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reap(proc):
    """Wait for ``proc`` in a thread: a state that kills it then sees it gone
    (an unreaped child would stay a zombie that `kill -0` still finds)."""
    threading.Thread(target=proc.wait, daemon=True).start()


class PrivateMariaDB:
    """A throw-away mariadbd: own datadir, socket and TCP port on 127.0.0.1."""

    def __init__(self, folder):
        self.folder = str(folder)
        self.datadir = os.path.join(self.folder, "data")
        self.socket = os.path.join(self.folder, "mysqld.sock")
        self.pidfile = os.path.join(self.folder, "mysqld.pid")
        self.port = free_port()
        self.proc = None
        os.makedirs(self.datadir)
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}",
                        "--user=root", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True, timeout=300)

    def start(self, *extra_args):
        """Start it (``extra_args``: more mariadbd options, e.g. TLS files)."""
        self.proc = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.datadir}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--pid-file={self.pidfile}", "--user=root", "--skip-log-bin",
             "--innodb-buffer-pool-size=16M", "--skip-name-resolve",
             f"--log-error={os.path.join(self.folder, 'error.log')}", *extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        reap(self.proc)
        if not wait_for(self._answers, timeout=120):
            raise AssertionError("the private mariadbd did not start: "
                                 + open(os.path.join(self.folder, "error.log")).read()[-2000:])
        # root over TCP (127.0.0.1, no name resolution) for the states under test
        conn = pymysql.connect(unix_socket=self.socket, user="root", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
            cur.execute("GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
        conn.close()

    def _answers(self):
        try:
            pymysql.connect(unix_socket=self.socket, user="root", connect_timeout=2).close()
            return True
        except pymysql.MySQLError:
            return self.proc.poll() is not None and None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def query(self, sql):
        conn = pymysql.connect(unix_socket=self.socket, user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()
