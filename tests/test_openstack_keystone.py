"""openstack_keystone against a real Keystone, through real ``salt-call --local``.

Keystone (Debian's package, on 127.0.0.1:5000, database on the running MariaDB)
is brought up by ``bash tests/support/services.sh up keystone``, which writes the
admin cloud ``nova-formula-admin`` to /etc/openstack/clouds.yaml. If Keystone does
not answer, the fixture runs tests/support/install-packages.sh and that script
once; if it still does not answer, every test here FAILS (never skips).

Each test uses names with a random suffix (users, projects, services, regions)
and deletes them afterwards, also when it fails, so the shared Keystone stays clean.
Records are checked with an independent keystoneauth1 admin client, not with the
module under test.
"""
import http.server
import json
import logging
import os
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from harness import REPO

CLOUDS_YAML = os.environ.get("FTEST_CLOUDS_YAML", "/etc/openstack/clouds.yaml")
CLOUD = "nova-formula-admin"
KEYSTONE = os.environ.get("FTEST_KEYSTONE_URL", "http://127.0.0.1:5000/v3")
UP = "bash tests/support/services.sh up keystone"
# This test client's own requests (bodies with test passwords) stay out of pytest's log.
logging.getLogger("keystoneauth").setLevel(logging.INFO)


def _answers(url=KEYSTONE):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _cloud():
    with open(CLOUDS_YAML) as fh:
        return yaml.safe_load(fh)["clouds"][CLOUD]


@pytest.fixture(scope="session")
def keystone_cloud():
    """The admin cloud's settings; brings Keystone up once if it does not answer."""
    support = os.path.join(REPO, "tests", "support")
    output = ""
    if not (_answers() and os.path.exists(CLOUDS_YAML)):
        # Both scripts are idempotent and quick when everything is already there.
        for cmd in (["bash", os.path.join(support, "install-packages.sh")],
                    ["bash", os.path.join(support, "services.sh"), "up", "keystone"]):
            if not os.path.exists(cmd[1]):
                continue
            proc = subprocess.run(cmd, cwd=REPO, timeout=1800, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True)
            output += proc.stdout[-1500:] + proc.stderr[-1500:]
            if proc.returncode != 0:
                break
    if not _answers():
        pytest.fail(f"Keystone does not answer at {KEYSTONE}: run `{UP}` first\n{output}")
    if not os.path.exists(CLOUDS_YAML):
        pytest.fail(f"{CLOUDS_YAML} is missing: run `{UP}` first")
    return _cloud()


class Admin:
    """A plain keystoneauth admin client, to check what the states did."""

    def __init__(self, conf):
        auth = conf["auth"]
        self.url = auth["auth_url"].rstrip("/")
        self.password = auth["password"]
        self.session = ks_session.Session(auth=v3.Password(
            auth_url=self.url, username=auth["username"], password=auth["password"],
            project_name=auth.get("project_name"),
            user_domain_name=auth.get("user_domain_name", "Default"),
            project_domain_name=auth.get("project_domain_name", "Default")))

    def get(self, path, **params):
        return self.session.get(self.url + path, params=params).json()

    def first(self, kind, **params):
        found = self.get(f"/{kind}", **params)[kind]
        return found[0] if found else None

    def delete(self, path):
        self.session.delete(self.url + path, raise_exc=False)

    def token_for(self, user, password, project):
        """Can ``user`` get a token scoped to ``project`` with ``password``?"""
        sess = ks_session.Session(auth=v3.Password(
            auth_url=self.url, username=user, password=password, project_name=project,
            user_domain_name="Default", project_domain_name="Default"))
        try:
            return sess.get_token() is not None
        except Exception:  # pylint: disable=broad-except
            return False

    def endpoints(self, service, region=None):
        svc = self.first("services", name=service)
        if svc is None:
            return []
        params = {"service_id": svc["id"]}
        if region:
            params["region_id"] = region
        return self.get("/endpoints", **params)["endpoints"]


@pytest.fixture
def admin(keystone_cloud):
    return Admin(keystone_cloud)


@pytest.fixture
def names(admin):
    """Unique record names; everything with them is deleted at teardown."""
    sfx = uuid.uuid4().hex[:8]
    n = {"project": f"svc-{sfx}", "user": f"compute-{sfx}", "service": f"compute-{sfx}",
         "region": f"Region-{sfx}", "region2": f"RegionB-{sfx}",
         "password": f"Pw-{uuid.uuid4().hex}"}
    yield n
    for svc in admin.get("/services", name=n["service"])["services"]:
        for ep in admin.get("/endpoints", service_id=svc["id"])["endpoints"]:
            admin.delete(f"/endpoints/{ep['id']}")
        admin.delete(f"/services/{svc['id']}")
    user = admin.first("users", name=n["user"], domain_id="default")
    if user:
        admin.delete(f"/users/{user['id']}")
    project = admin.first("projects", name=n["project"], domain_id="default")
    if project:
        admin.delete(f"/projects/{project['id']}")
    for region in (n["region"], n["region2"]):
        admin.delete(f"/regions/{region}")


GUIDE_SLS = """
{%- set k = salt['pillar.get']('kst') %}
service-project:
  openstack_keystone.project_present:
    - name: {{ k.project }}
    - description: Service project
compute-user:
  openstack_keystone.user_present:
    - name: {{ k.user }}
    - password: {{ k.password }}
    - default_project: {{ k.project }}
admin-role:
  openstack_keystone.role_present:
    - name: admin
compute-admin:
  openstack_keystone.role_grant_present:
    - name: admin
    - user: {{ k.user }}
    - project: {{ k.project }}
compute-service:
  openstack_keystone.service_present:
    - name: {{ k.service }}
    - type: compute
    - description: OpenStack Compute Service
compute-endpoints:
  openstack_keystone.endpoints_present:
    - name: {{ k.service }}
    - region: {{ k.region }}
    - public: {{ k.public }}
    - internal: {{ k.url }}
    - admin: {{ k.url }}
{%- if k.get('region2') %}
compute-endpoints-2:
  openstack_keystone.endpoints_present:
    - name: {{ k.service }}
    - region: {{ k.region2 }}
    - public: {{ k.url2 }}
    - internal: {{ k.url2 }}
    - admin: {{ k.url2 }}
{%- endif %}
request-count:
  module.run:
    - openstack_keystone.request_count: []
login-count:
  module.run:
    - openstack_keystone.request_count:
      - logins: true
"""
GUIDE_URL = "http://127.0.0.1:8774/v2/%(tenant_id)s"
NEW_URL = "http://127.0.0.1:8774/v2.1"


def _pillar(names, **kst):
    data = {k: names[k] for k in ("project", "user", "service", "region", "password")}
    data.update(public=GUIDE_URL, url=GUIDE_URL)
    data.update(kst)
    return {"openstack_keystone": {"cloud": CLOUD}, "kst": data}


def _record_changes(run):
    return {sid: r["changes"] for sid, r in run.changed.items()
            if sid not in ("request-count", "login-count")}


def _requests(run):
    return run["request-count"]["changes"]["openstack_keystone.request_count"]


def _logins(run):
    return run["login-count"]["changes"]["openstack_keystone.request_count"]


def _kept_tokens(salt_call):
    """The token store's files (openstack_tokens) under the minion's cachedir."""
    folder = os.path.join(salt_call.opts["cachedir"], "openstack_tokens")
    if not os.path.isdir(folder):
        return folder, {}
    found = {}
    for name in os.listdir(folder):
        if not name.startswith("."):
            with open(os.path.join(folder, name)) as fh:
                found[name] = json.load(fh)
    return folder, found


def test_guide_records_idempotent_repaired_and_no_password_logged(salt_call, admin, names):
    salt_call.write_sls("kst", GUIDE_SLS)
    salt_call.set_pillar(_pillar(names))

    # 1. the guide's records are created
    run = salt_call.apply("kst").assert_ok()
    assert set(_record_changes(run)) == {"service-project", "compute-user", "compute-admin",
                                         "compute-service", "compute-endpoints"}
    eps = admin.endpoints(names["service"], names["region"])
    assert sorted(e["interface"] for e in eps) == ["admin", "internal", "public"]
    assert {e["url"] for e in eps} == {GUIDE_URL}  # stored verbatim
    svc = admin.first("services", name=names["service"])
    assert svc["type"] == "compute" and svc["description"] == "OpenStack Compute Service"

    # 2. the compute user gets a token scoped to the service project with its pillar password
    assert admin.token_for(names["user"], names["password"], names["project"])

    # 3. a second and a third apply change nothing; exactly three endpoints remain.
    # Second: the admin token kept by the first run (no request), the project,
    # the user's login (Keystone scopes it to the default project and lists the
    # user's roles there: no role list), the grant check, the service, the
    # endpoints. Third: the user's kept token validated and its record read
    # instead of a login: no password login at all (no bcrypt in Keystone).
    run = salt_call.apply("kst").assert_ok()
    assert _record_changes(run) == {}
    assert (_requests(run), _logins(run)) == (5, 1)
    run = salt_call.apply("kst").assert_ok()
    assert _record_changes(run) == {}
    assert (_requests(run), _logins(run)) == (6, 0)
    assert len(admin.endpoints(names["service"], names["region"])) == 3
    folder, kept = _kept_tokens(salt_call)
    assert len(kept) == 2  # the admin's, the compute user's
    assert os.stat(folder).st_mode & 0o777 == 0o700
    for name in os.listdir(folder):
        assert os.stat(os.path.join(folder, name)).st_mode & 0o777 == 0o600
        with open(os.path.join(folder, name), "rb") as fh:
            stored = fh.read()
        for secret in (names["password"], admin.password):
            assert secret.encode() not in stored

    # 4. test=True reports a URL change and changes nothing
    salt_call.set_pillar(_pillar(names, public=NEW_URL))
    run = salt_call.apply("kst", test=True)
    assert run["compute-endpoints"]["result"] is None
    assert run["compute-endpoints"]["changes"]["public"]["new"] == NEW_URL
    assert {e["url"] for e in admin.endpoints(names["service"], names["region"])} == {GUIDE_URL}

    # 5. a new public URL updates that endpoint in place (same id)
    before = {e["interface"]: e["id"] for e in admin.endpoints(names["service"], names["region"])}
    run = salt_call.apply("kst").assert_ok()
    assert set(_record_changes(run)) == {"compute-endpoints"}
    after = {e["interface"]: e for e in admin.endpoints(names["service"], names["region"])}
    assert {k: v["id"] for k, v in after.items()} == before
    assert after["public"]["url"] == NEW_URL and after["admin"]["url"] == GUIDE_URL

    # 6. a second region gets its own endpoints; the first is untouched
    salt_call.set_pillar(_pillar(names, public=NEW_URL, region2=names["region2"],
                                 url2="http://10.9.9.9:8774/v2.1"))
    run = salt_call.apply("kst").assert_ok()
    assert set(_record_changes(run)) == {"compute-endpoints-2"}
    assert len(admin.endpoints(names["service"], names["region2"])) == 3
    assert {k: v["id"] for k, v in after.items()} == {
        e["interface"]: e["id"] for e in admin.endpoints(names["service"], names["region"])}

    # 7. a duplicate endpoint made by hand is removed; the kept one keeps its id
    admin.session.post(admin.url + "/endpoints", json={"endpoint": {
        "service_id": svc["id"], "interface": "internal", "url": "http://stale:8774/",
        "region_id": names["region"]}})
    assert len(admin.endpoints(names["service"], names["region"])) == 4
    run = salt_call.apply("kst").assert_ok()
    assert list(_record_changes(run)["compute-endpoints"]) == ["duplicates removed"]
    assert {k: v["id"] for k, v in after.items()} == {
        e["interface"]: e["id"] for e in admin.endpoints(names["service"], names["region"])}

    # 8. a password changed by hand is put back: Keystone revoked the kept
    # token with the change, so the validation fails and the login shows it
    user = admin.first("users", name=names["user"], domain_id="default")
    assert _logins(salt_call.apply("kst").assert_ok()) == 0  # the user's token is kept
    admin.session.patch(admin.url + f"/users/{user['id']}",
                        json={"user": {"password": "changed-by-hand-1"}})
    assert not admin.token_for(names["user"], names["password"], names["project"])
    assert _record_changes(salt_call.apply("kst", test=True)) == {
        "compute-user": {"password": "********"}}
    run = salt_call.apply("kst").assert_ok()
    assert _record_changes(run) == {"compute-user": {"password": "********"}}
    assert admin.token_for(names["user"], names["password"], names["project"])
    assert _record_changes(salt_call.apply("kst").assert_ok()) == {}

    # 8b. a default project changed by hand (no token is revoked by that) is
    # still seen by a run whose user token is kept, and put back
    other = admin.session.post(admin.url + "/projects", json={"project": {
        "name": names["project"] + "-other", "domain_id": "default"}}).json()["project"]
    try:
        run = salt_call.apply("kst").assert_ok()
        assert (_record_changes(run), _logins(run)) == ({}, 0)
        admin.session.patch(admin.url + f"/users/{user['id']}",
                            json={"user": {"default_project_id": other["id"]}})
        changes = _record_changes(salt_call.apply("kst", test=True))
        assert changes["compute-user"]["default_project_id"]["new"] == names["project"]
        run = salt_call.apply("kst").assert_ok()
        assert set(_record_changes(run)) == {"compute-user"}
        assert admin.get(f"/users/{user['id']}")["user"]["default_project_id"] != other["id"]
    finally:
        admin.delete(f"/projects/{other['id']}")

    # 8c. the kept admin token revoked by hand: the run logs in again (once)
    # and keeps the new token; the next run logs in no more
    _, kept = _kept_tokens(salt_call)
    admin_tokens = [json.loads(e["state"])["auth_token"] for e in kept.values() if "state" in e]
    assert len(admin_tokens) == 1
    admin.session.delete(admin.url + "/auth/tokens",
                         headers={"X-Subject-Token": admin_tokens[0]})
    run = salt_call.apply("kst").assert_ok()
    assert (_record_changes(run), _logins(run)) == ({}, 1)
    assert _logins(salt_call.apply("kst").assert_ok()) == 0

    # 8d. with openstack_keystone:token_cache false nothing is kept or read
    salt_call.set_pillar(dict(_pillar(names, public=NEW_URL, region2=names["region2"],
                                      url2="http://10.9.9.9:8774/v2.1"),
                              openstack_keystone={"cloud": CLOUD, "token_cache": False}))
    assert salt_call.run("openstack_keystone.token_cache_clear", check=True)[1] == 2
    run = salt_call.apply("kst").assert_ok()
    assert (_record_changes(run), _logins(run)) == ({}, 2)
    assert _kept_tokens(salt_call)[1] == {}

    # 9. no password in the output nor in the debug-level minion log
    with open(salt_call.log_file) as fh:
        logged = fh.read()
    assert "[DEBUG   ]" in logged and "openstack_keystone: PATCH /users/" in logged
    for secret in (names["password"], admin.password):
        assert secret not in logged
        assert secret not in run.proc.stdout


def test_test_mode_creates_nothing(salt_call, admin, names):
    salt_call.write_sls("kst", GUIDE_SLS)
    salt_call.set_pillar(_pillar(names))
    run = salt_call.apply("kst", test=True)
    assert not run.failed, run.raw
    for sid in ("service-project", "compute-user", "compute-admin", "compute-service",
                "compute-endpoints"):
        assert run[sid]["result"] is None, run[sid]
    assert admin.first("projects", name=names["project"]) is None
    assert admin.first("users", name=names["user"]) is None
    assert admin.first("services", name=names["service"]) is None
    assert names["password"] not in run.proc.stdout


def test_absent_states_remove_only_their_records(salt_call, admin, names):
    salt_call.write_sls("kst", GUIDE_SLS)
    salt_call.set_pillar(_pillar(names))
    salt_call.apply("kst").assert_ok()
    salt_call.write_sls("kst_absent", """
{%- set k = salt['pillar.get']('kst') %}
grant-gone:
  openstack_keystone.role_grant_absent:
    - name: admin
    - user: {{ k.user }}
    - project: {{ k.project }}
endpoints-gone:
  openstack_keystone.endpoints_absent:
    - name: {{ k.service }}
    - region: {{ k.region }}
service-gone:
  openstack_keystone.service_absent:
    - name: {{ k.service }}
user-gone:
  openstack_keystone.user_absent:
    - name: {{ k.user }}
project-gone:
  openstack_keystone.project_absent:
    - name: {{ k.project }}
""")
    others = len(admin.get("/endpoints")["endpoints"]) - 3
    run = salt_call.apply("kst_absent").assert_ok()
    assert len(run.changed) == 5
    assert admin.first("users", name=names["user"]) is None
    assert admin.first("services", name=names["service"]) is None
    assert len(admin.get("/endpoints")["endpoints"]) == others
    assert admin.first("roles", name="admin") is not None
    assert salt_call.apply("kst_absent").assert_ok().changed == {}


@pytest.fixture
def untrusted_tls_url(tmp_path):
    """An HTTPS server on 127.0.0.1 with a self-signed certificate; yields its v3 URL."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/v3"
    server.shutdown()
    server.server_close()


ERR_SLS = """
{%- set k = salt['pillar.get']('kst') %}
project:
  openstack_keystone.project_present:
    - name: {{ k.project }}
    - domain: {{ k.get('domain', 'Default') }}
    - auth: {{ k.auth | json }}
"""


@pytest.mark.parametrize("case", ["down", "bad-password", "missing-domain", "tls"])
def test_errors_are_clean_failed_states(salt_call, admin, names, keystone_cloud, case,
                                        request):
    auth = dict(keystone_cloud["auth"])
    auth["region_name"] = "RegionOne"
    kst = {"project": names["project"]}
    if case == "down":
        auth["auth_url"] = "http://127.0.0.1:9/v3"
        expect = "cannot reach Keystone at http://127.0.0.1:9/v3"
    elif case == "bad-password":
        auth["password"] = "wrong-" + uuid.uuid4().hex
        expect = f"refused the admin credentials of user '{auth['username']}'"
    elif case == "missing-domain":
        kst["domain"] = "NoSuchDomain-" + names["project"]
        expect = f"domain '{kst['domain']}' does not exist"
    else:  # a TLS server whose certificate nobody trusts (never the shared Keystone)
        auth["auth_url"] = tls_url = request.getfixturevalue("untrusted_tls_url")
        expect = f"TLS failure talking to Keystone at {tls_url}"
    kst["auth"] = auth
    salt_call.write_sls("kst_err", ERR_SLS)
    salt_call.set_pillar({"kst": kst})
    run = salt_call.apply("kst_err")
    ret = run["project"]
    assert ret["result"] is False and expect in ret["comment"], ret
    assert "Traceback" not in ret["comment"] and "Traceback" not in run.proc.stdout
    assert auth["password"] not in run.proc.stdout
    assert admin.first("projects", name=names["project"]) is None


def test_missing_role_fails_the_grant(salt_call, admin, names):
    salt_call.write_sls("kst_role", """
{%- set k = salt['pillar.get']('kst') %}
project:
  openstack_keystone.project_present:
    - name: {{ k.project }}
user:
  openstack_keystone.user_present:
    - name: {{ k.user }}
    - password: {{ k.password }}
grant:
  openstack_keystone.role_grant_present:
    - name: no-such-role-{{ k.project }}
    - user: {{ k.user }}
    - project: {{ k.project }}
""")
    salt_call.set_pillar(_pillar(names))
    run = salt_call.apply("kst_role")
    assert run["grant"]["result"] is False
    assert f"role 'no-such-role-{names['project']}'" in run["grant"]["comment"]
    assert run["project"]["result"] is True and run["user"]["result"] is True


def test_execution_module_from_the_command_line(salt_call, names):
    """The plain functions return data (credentials from pillar, never from argv)."""
    salt_call.set_pillar(_pillar(names))
    code, data, proc = salt_call.run("openstack_keystone.role_get", "admin")
    assert code == 0 and data["name"] == "admin", proc.stderr
    code, data, proc = salt_call.run("openstack_keystone.project_get", names["project"])
    assert code == 0 and data is None, proc.stdout
    code, data, proc = salt_call.run("openstack_keystone.domain_id", "NoSuch-" + names["user"])
    assert code != 0 and "does not exist in Keystone" in proc.stderr


def test_a_kept_token_does_not_hide_endpoints_made_after_it(keystone_cloud, admin, names,
                                                            tmp_path):
    """The admin token kept by an earlier run carries the catalog of its
    login; an endpoint made since (the first rollout makes Nova's after the
    token, then uses the compute API) is found in the current catalog."""
    from harness import load_module  # pylint: disable=import-outside-toplevel

    session = load_module("utils", "openstack_session", "ossess_kept_catalog")
    tokens = load_module("utils", "openstack_tokens", "ostokens_kept_catalog")
    store = tokens.Store(str(tmp_path), load_module("utils", "openstack_files").atomic_write)
    creds = session.credentials(cloud=CLOUD)
    creds["region_name"] = names["region"]

    def run():  # one salt run: its own context, the same token store
        return session.connect(creds, {}, lambda text, secrets: text, store)

    first = run()
    first.login()
    assert first.logins == 1
    url = f"http://127.0.0.1:9/{names['service']}"
    region = admin.session.post(admin.url + "/regions", json={"region": {
        "id": names["region"]}}).json()["region"]
    assert region["id"] == names["region"]
    svc = admin.session.post(admin.url + "/services", json={"service": {
        "name": names["service"], "type": names["service"]}}).json()["service"]
    admin.session.post(admin.url + "/endpoints", json={"endpoint": {
        "service_id": svc["id"], "interface": "public", "url": url,
        "region_id": names["region"]}})
    later = run()
    assert later.endpoint(names["service"]) == url
    assert later.logins == 0  # the kept token, with the catalog asked for


def test_a_damaged_kept_token_means_a_new_login(keystone_cloud, tmp_path):
    from harness import load_module  # pylint: disable=import-outside-toplevel

    session = load_module("utils", "openstack_session", "ossess_damaged")
    tokens = load_module("utils", "openstack_tokens", "ostokens_damaged")
    store = tokens.Store(str(tmp_path), load_module("utils", "openstack_files").atomic_write)
    creds = session.credentials(cloud=CLOUD)
    first = session.connect(creds, {}, lambda text, secrets: text, store)
    first.login()
    (slot,) = [n for n in os.listdir(store.path) if not n.startswith(".")]
    store.save(slot, {"state": "{not json", "expires": 4102444800})
    again = session.connect(creds, {}, lambda text, secrets: text, store)
    again.login()
    assert again.logins == 1 and again.call("GET", "/projects")[0] == 200
    assert store.load(slot)["state"] != "{not json"
