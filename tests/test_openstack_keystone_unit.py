"""Unit tests of openstack_keystone (module + states) against an in-memory Keystone.

Only the HTTP transport is faked: a requests adapter that answers like the
Identity v3 API, mounted under the real keystoneauth1 Session. Everything above
it (auth plugin, Session, request counting, the module and the states) is real.
The same behaviours are proven against a real Keystone in test_openstack_keystone.py.
"""
import datetime
import json
import logging
import urllib.parse
import uuid

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from harness import load_module

ADMIN_PW = "adm1n-S3cret-pw"
AUTH = {"auth_url": "http://keystone.test:5000/v3", "username": "admin",
        "password": ADMIN_PW, "project_name": "admin", "user_domain_name": "Default",
        "project_domain_name": "Default", "region_name": "RegionOne"}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


# --------------------------------------------------------------------------
# a small in-memory Identity v3 API
# --------------------------------------------------------------------------
class FakeKeystone(requests.adapters.BaseAdapter):
    FILTERS = {"name", "domain_id", "type", "service_id", "region_id", "interface"}

    def __init__(self):
        super().__init__()
        self.log = []
        self.down = False
        self.tls_bad = False
        self.tokens = set()
        self.passwords = {}
        self.grants = set()
        self.db = {k: {} for k in ("domains", "projects", "users", "roles", "services",
                                   "endpoints", "regions")}
        self.db["domains"]["default"] = {"id": "default", "name": "Default", "enabled": True}
        self.admin = self.add("users", name="admin", domain_id="default", enabled=True)
        self.passwords[self.admin["id"]] = ADMIN_PW
        self.add("projects", name="admin", domain_id="default", enabled=True)
        self.add("roles", name="admin", domain_id=None)

    def add(self, kind, **rec):
        rec.setdefault("id", uuid.uuid4().hex)
        self.db[kind][rec["id"]] = rec
        return rec

    def writes(self):
        return [(m, p) for m, p, _ in self.log
                if m in WRITES and not p.endswith("/auth/tokens")]

    def close(self):
        pass

    def send(self, request, **kwargs):
        if self.down:
            raise requests.exceptions.ConnectionError("Connection refused")
        if self.tls_bad:
            raise requests.exceptions.SSLError("certificate verify failed")
        url = urllib.parse.urlsplit(request.url)
        path = url.path[len("/v3"):]
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, True).items()}
        body = json.loads(request.body) if request.body else None
        self.log.append((request.method, path, query))
        status, data, headers = self.route(request, path, query, body)
        resp = requests.Response()
        resp.status_code = status
        resp.reason = {200: "OK", 201: "Created", 204: "No Content", 401: "Unauthorized",
                       404: "Not Found", 400: "Bad Request"}.get(status, "")
        resp._content = json.dumps(data).encode() if data is not None else b""
        resp.headers = CaseInsensitiveDict({"Content-Type": "application/json", **headers})
        resp.url = request.url
        resp.request = request
        resp.encoding = "utf-8"
        return resp

    @staticmethod
    def err(status, msg):
        return status, {"error": {"code": status, "message": msg}}, {}

    def route(self, request, path, query, body):
        parts = [p for p in path.split("/") if p]
        if parts == ["auth", "tokens"] and request.method == "POST":
            return self.token(body)
        if request.headers.get("X-Auth-Token") not in self.tokens:
            return self.err(401, "The request you have made requires authentication.")
        if parts == ["role_assignments"] and request.method == "GET":
            uid, pid = query.get("user.id"), query.get("scope.project.id")
            found = [{"role": {"id": r}, "user": {"id": u}, "scope": {"project": {"id": p}}}
                     for p, u, r in sorted(self.grants)
                     if uid in (None, u) and pid in (None, p)]
            return 200, {"role_assignments": found}, {}
        if len(parts) == 6 and parts[0] == "projects" and parts[2] == "users":
            key = (parts[1], parts[3], parts[5])
            if request.method == "HEAD":
                return (204 if key in self.grants else 404), None, {}
            if request.method == "PUT":
                self.grants.add(key)
            else:
                self.grants.discard(key)
            return 204, None, {}
        kind = parts[0]
        one = kind[:-1]
        table = self.db[kind]
        if len(parts) == 1 and request.method == "GET":
            found = [r for r in table.values()
                     if all(r.get(k) == v for k, v in query.items() if k in self.FILTERS)]
            return 200, {kind: [self.public(r) for r in found]}, {}
        if len(parts) == 1 and request.method == "POST":
            rec = dict(body[one])
            if kind == "regions" and rec["id"] in table:
                return self.err(409, "Conflict")
            if kind == "endpoints" and rec["region_id"] not in self.db["regions"]:
                return self.err(400, "Invalid region")
            pw = rec.pop("password", None)
            rec = self.add(kind, **rec)
            if pw is not None:
                self.passwords[rec["id"]] = pw
            return 201, {one: self.public(rec)}, {}
        rec = table.get(parts[1])
        if rec is None:
            return self.err(404, f"Could not find {one}: {parts[1]}.")
        if request.method == "GET":
            return 200, {one: self.public(rec)}, {}
        if request.method == "PATCH":
            fields = dict(body[one])
            if "password" in fields:
                self.passwords[rec["id"]] = fields.pop("password")
            rec.update(fields)
            return 200, {one: self.public(rec)}, {}
        if request.method == "DELETE":
            del table[parts[1]]
            if kind == "services":
                for eid in [e for e, r in self.db["endpoints"].items()
                            if r["service_id"] == parts[1]]:
                    del self.db["endpoints"][eid]
            return 204, None, {}
        return self.err(405, "Method Not Allowed")

    @staticmethod
    def public(rec):
        return {k: v for k, v in rec.items() if k != "password"}

    def token(self, body):
        pw = body["auth"]["identity"]["password"]["user"]
        if "id" in pw:
            user = self.db["users"].get(pw["id"])
        else:
            user = next((u for u in self.db["users"].values() if u["name"] == pw["name"]), None)
        if not user or not user.get("enabled", True) or self.passwords.get(user["id"]) != pw["password"]:
            return self.err(401, "The request you have made requires authentication.")
        tok = uuid.uuid4().hex
        if user["id"] == self.admin["id"]:
            self.tokens.add(tok)
        expires = (datetime.datetime.utcnow() + datetime.timedelta(hours=1)).strftime(
            "%Y-%m-%dT%H:%M:%S.000000Z")
        dom = {"id": "default", "name": "Default"}
        token = {"methods": ["password"], "expires_at": expires,
                 "user": {"id": user["id"], "name": user["name"], "domain": dom}}
        if "scope" in body["auth"] or user["id"] == self.admin["id"]:
            token.update({"project": {"id": "p", "name": "admin", "domain": dom},
                          "roles": [{"id": "r", "name": "admin"}]})
        else:
            # Keystone: no scope asked -> scoped to the user's default project
            # when the user has a role there, with those roles; else unscoped.
            pid = user.get("default_project_id")
            roles = sorted(r for p, u, r in self.grants if p == pid and u == user["id"])
            if pid and roles:
                token.update({"project": {"id": pid, "name": self.db["projects"][pid]["name"],
                                          "domain": dom},
                              "roles": [{"id": r, "name": self.db["roles"][r]["name"]}
                                        for r in roles]})
        return 201, {"token": token}, {"X-Subject-Token": tok}


# --------------------------------------------------------------------------
# the modules, loaded from the repo with their dunders
# --------------------------------------------------------------------------
def _load(kind):
    return load_module(kind, "openstack_keystone", f"ks_{kind}_{uuid.uuid4().hex}")


class Env:
    def __init__(self, monkeypatch, pillar=None):
        self.fake = FakeKeystone()
        self.pillar = pillar if pillar is not None else {"openstack_keystone:auth": AUTH}
        self.mod = _load("modules")
        self.states = _load("states")
        fake = self.fake

        class Session(requests.Session):
            def __init__(self):
                super().__init__()
                self.mount("http://", fake)
                self.mount("https://", fake)

        monkeypatch.setattr(requests, "Session", Session)
        self.opts = {"test": False}
        self.mod.__salt__ = {"config.get": lambda key, default="": self.pillar.get(key, default)}
        self.mod.__opts__ = self.opts
        self.new_run()
        self.states.__salt__ = {f"openstack_keystone.{n}": getattr(self.mod, n)
                                for n in dir(self.mod) if not n.startswith("_")
                                and callable(getattr(self.mod, n))}
        self.states.__opts__ = self.opts

    def new_run(self):
        """A fresh __context__, as in the next salt-call."""
        self.mod.__context__ = {}
        self.fake.log.clear()

    def __getattr__(self, name):
        fun = getattr(self.states, name)

        def call(*args, test=False, **kwargs):
            self.opts["test"] = test
            return fun(*args, **kwargs)
        return call


@pytest.fixture
def env(monkeypatch):
    return Env(monkeypatch)


GUIDE_PUBLIC = "http://ctl:8774/v2/%(tenant_id)s"


def guide(env, test=False, password="nova-Pa55", public=GUIDE_PUBLIC, region="RegionOne"):
    return [
        env.project_present("service", test=test),
        env.user_present("compute", password, test=test),
        env.role_present("admin", test=test),
        env.role_grant_present("admin", user="compute", project="service", test=test),
        env.service_present("compute", type="compute",
                            description="OpenStack Compute Service", test=test),
        env.endpoints_present("compute", region=region, public=public,
                              internal=public, admin=public, test=test),
    ]


def endpoints(fake, service_name="compute"):
    sid = next(s["id"] for s in fake.db["services"].values() if s["name"] == service_name)
    return [e for e in fake.db["endpoints"].values() if e["service_id"] == sid]


def assert_clean(rets):
    for r in rets:
        assert r["result"] is True, r
        assert r["changes"] == {}, r


# --------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------
def test_guide_records_created_then_noop_in_seven_requests(env):
    rets = guide(env)
    assert all(r["result"] is True and r["changes"] for r in rets[:2] + rets[3:]), rets
    assert rets[2]["changes"] == {}  # the admin role already exists
    assert len(endpoints(env.fake)) == 3
    assert {e["url"] for e in endpoints(env.fake)} == {GUIDE_PUBLIC}
    env.new_run()
    assert_clean(guide(env))
    # token, project, login as the user, roles, grants, service, endpoints
    assert env.mod.request_count() == 7, env.fake.log
    assert not env.fake.writes()
    methods = [(m, p) for m, p, _ in env.fake.log]
    assert methods.count(("POST", "/auth/tokens")) == 2  # admin token + password check
    assert ("GET", "/users") not in methods


def test_two_roles_granted_cost_no_more_requests_than_one(env):
    """The formula grants admin and service: one role list and one
    assignment query answer both grants of a no-op run."""
    guide(env)
    env.role_present("service")
    env.role_grant_present("service", user="compute", project="service")
    env.new_run()
    assert_clean(guide(env) + [env.role_present("service"),
                               env.role_grant_present("service", user="compute",
                                                      project="service")])
    assert env.mod.request_count() == 7, env.fake.log
    # a grant removed by hand is seen, and given back, in the same run
    env.new_run()
    env.fake.grants = {g for g in env.fake.grants if g[2] != next(
        r["id"] for r in env.fake.db["roles"].values() if r["name"] == "service")}
    ret = env.role_grant_present("service", user="compute", project="service")
    assert ret["changes"] and env.role_grant_present(
        "service", user="compute", project="service")["changes"] == {}


def formula_records(env, test=False, password="nova-Pa55"):
    """What nova/identity runs (_utils/nova_plan.py identity()): the user with
    its default project, two roles granted."""
    return [
        env.project_present("service", test=test),
        env.user_present("compute", password, default_project="service", test=test),
        env.role_present("admin", test=test),
        env.role_present("service", test=test),
        env.role_grant_present("admin", user="compute", project="service", test=test),
        env.role_grant_present("service", user="compute", project="service", test=test),
        env.service_present("compute", type="compute",
                            description="OpenStack Compute Service", test=test),
        env.endpoints_present("compute", region="RegionOne", public=GUIDE_PUBLIC,
                              internal=GUIDE_PUBLIC, admin=GUIDE_PUBLIC, test=test),
    ]


def test_formula_records_noop_in_six_requests(env):
    """The user's login is scoped to its default project (it has roles there):
    it proves password, default project and both roles; no user lookup, no
    role list (issue 17: the fewest requests for what the states compare)."""
    rets = formula_records(env)
    assert all(r["result"] is True for r in rets), rets
    env.new_run()
    assert_clean(formula_records(env))
    # token, project, login as the user, grants, service, endpoints
    assert env.mod.request_count() == 6, env.fake.log
    assert not env.fake.writes()
    methods = [(m, p) for m, p, _ in env.fake.log]
    assert ("GET", "/users") not in methods and ("GET", "/roles") not in methods
    # test=True: the same requests, nothing written
    env.new_run()
    assert_clean(formula_records(env, test=True))
    assert env.mod.request_count() == 6 and not env.fake.writes()


def test_default_project_changed_by_hand_is_seen(env):
    formula_records(env)
    other = env.fake.add("projects", name="other", domain_id="default", enabled=True)
    uid = next(u["id"] for u in env.fake.db["users"].values() if u["name"] == "compute")
    env.fake.db["users"][uid]["default_project_id"] = other["id"]
    env.new_run()
    ret = env.user_present("compute", "nova-Pa55", default_project="service")
    assert ret["result"] is True and "default_project_id" in ret["changes"], ret
    # the login succeeded: the password is not checked a second time
    logins = [p for m, p, _ in env.fake.log if m == "POST" and p == "/auth/tokens"]
    assert len(logins) == 2, env.fake.log  # admin token + the user's one
    env.new_run()
    assert env.user_present("compute", "nova-Pa55", default_project="service")["changes"] == {}


def test_user_with_default_project_and_email(env):
    env.project_present("service")
    ret = env.user_present("compute", "pw-1", default_project="service", email="a@b.c")
    assert ret["result"] is True and ret["changes"]["user"]["new"] == "compute"
    env.new_run()
    ret = env.user_present("compute", "pw-1", default_project="service", email="x@b.c")
    assert ret["changes"] == {"email": {"old": "a@b.c", "new": "x@b.c"}}
    env.new_run()
    assert env.user_present("compute", "pw-1", default_project="service",
                            email="x@b.c")["changes"] == {}
    # project GET, user GET, password check, after the admin token
    assert env.mod.request_count() == 4, env.fake.log
    uid = next(u["id"] for u in env.fake.db["users"].values() if u["name"] == "compute")
    env.fake.passwords[uid] = "other"
    env.new_run()
    ret = env.user_present("compute", "pw-1", default_project="service", email="x@b.c")
    assert ret["changes"] == {"password": "********"} and env.fake.passwords[uid] == "pw-1"
    ret = env.user_present("compute", "pw-1", default_project="nope")
    assert ret["result"] is False and "default_project 'nope' does not exist" in ret["comment"]


def test_lists_are_filtered_on_the_server(env):
    guide(env)
    gets = {p: q for m, p, q in env.fake.log if m == "GET"}
    assert gets["/users"] == {"name": "compute", "domain_id": "default"}
    env.new_run()
    guide(env)
    gets = {p: q for m, p, q in env.fake.log if m == "GET"}
    assert "/users" not in gets  # the user's login answered for it
    assert gets["/projects"] == {"name": "service", "domain_id": "default"}
    # the region's endpoints, asked once per run and region (the service is
    # picked on our side, so several services in a region cost one request)
    assert gets["/endpoints"] == {"region_id": "RegionOne"}


def test_test_mode_reports_and_writes_nothing(env):
    rets = guide(env, test=True)
    assert not env.fake.writes(), env.fake.writes()
    assert [r["result"] for r in rets] == [None, None, True, None, None, None]
    assert "would be" in rets[0]["comment"]
    assert not [u for u in env.fake.db["users"].values() if u["name"] == "compute"]
    guide(env)
    env.new_run()
    rets = guide(env, test=True, public="http://ctl:8774/v2.1")
    assert rets[-1]["result"] is None and "public" in rets[-1]["changes"]
    assert not env.fake.writes()


def test_three_applies_leave_three_endpoints(env):
    for _ in range(3):
        env.new_run()
        guide(env)
    assert len(endpoints(env.fake)) == 3


def test_url_change_updates_in_place(env):
    guide(env)
    before = {e["interface"]: e["id"] for e in endpoints(env.fake)}
    env.new_run()
    ret = env.endpoints_present("compute", public="http://ctl:8774/v2.1",
                                internal=GUIDE_PUBLIC, admin=GUIDE_PUBLIC)
    assert ret["result"] is True and set(ret["changes"]) == {"public"}
    assert ret["changes"]["public"]["old"] == GUIDE_PUBLIC
    after = {e["interface"]: e for e in endpoints(env.fake)}
    assert {k: v["id"] for k, v in after.items()} == before
    assert after["public"]["url"] == "http://ctl:8774/v2.1"
    assert ("POST", "/endpoints") not in env.fake.writes()


def test_both_url_forms_stored_verbatim(env):
    guide(env, public="http://ctl:8774/v2.1")
    assert {e["url"] for e in endpoints(env.fake)} == {"http://ctl:8774/v2.1"}
    env.new_run()
    guide(env, public=GUIDE_PUBLIC)
    assert {e["url"] for e in endpoints(env.fake)} == {GUIDE_PUBLIC}


def test_duplicates_removed_other_services_and_interfaces_kept(env):
    guide(env)
    sid = endpoints(env.fake)[0]["service_id"]
    dup = env.fake.add("endpoints", service_id=sid, interface="public", url="http://old/",
                       region_id="RegionOne", enabled=True)
    other = env.fake.add("services", name="image", type="image", enabled=True)
    theirs = env.fake.add("endpoints", service_id=other["id"], interface="public",
                          url="http://g:9292", region_id="RegionOne", enabled=True)
    env.new_run()
    dry = env.endpoints_present("compute", public=GUIDE_PUBLIC, test=True)
    # a dry run says what it would remove, and removes nothing
    assert dry["result"] is None
    assert dry["changes"] == {"duplicates to remove": [f"public {dup['id']}"]}
    assert not env.fake.writes()
    env.new_run()
    ret = env.endpoints_present("compute", public=GUIDE_PUBLIC)  # internal/admin not given
    assert ret["changes"] == {"duplicates removed": [f"public {dup['id']}"]}
    assert len(endpoints(env.fake)) == 3
    assert theirs["id"] in env.fake.db["endpoints"]


def test_second_region_gets_its_own_endpoints(env):
    guide(env)
    env.new_run()
    ret = env.endpoints_present("compute", region="RegionTwo", public="http://r2:8774/v2.1",
                                internal="http://r2:8774/v2.1", admin="http://r2:8774/v2.1")
    assert ret["result"] is True and ret["changes"]["region"]["new"] == "RegionTwo"
    regions = sorted(e["region_id"] for e in endpoints(env.fake))
    assert regions == ["RegionOne"] * 3 + ["RegionTwo"] * 3


def test_password_put_back_only_when_it_fails(env):
    guide(env)
    uid = next(u["id"] for u in env.fake.db["users"].values() if u["name"] == "compute")
    env.fake.passwords[uid] = "changed-by-hand"
    env.new_run()
    ret = env.user_present("compute", "nova-Pa55")
    assert ret["changes"] == {"password": "********"}
    assert env.fake.passwords[uid] == "nova-Pa55"
    logins = [p for m, p, _ in env.fake.log if (m, p) == ("POST", "/auth/tokens")]
    assert len(logins) == 2  # admin + one failed login: no second check before the fix
    assert "nova-Pa55" not in json.dumps(ret)
    env.new_run()
    assert env.user_present("compute", "nova-Pa55")["changes"] == {}
    assert not env.fake.writes()


def test_disabled_user_is_enabled_then_checked(env):
    guide(env)
    uid = next(u["id"] for u in env.fake.db["users"].values() if u["name"] == "compute")
    env.fake.db["users"][uid]["enabled"] = False
    env.new_run()
    ret = env.user_present("compute", "nova-Pa55")
    assert ret["changes"] == {"enabled": {"old": False, "new": True}}
    assert env.fake.db["users"][uid]["enabled"] is True


def test_admin_session_cached_per_run(env):
    guide(env)
    assert len(env.fake.tokens) == 1  # one admin token for the six states
    keys = [k for k in env.mod.__context__ if k.startswith("openstack_keystone.conn.")]
    assert len(keys) == 1 and ADMIN_PW not in keys[0] and "admin" not in keys[0]


def test_keystone_down_names_the_url(env):
    env.fake.down = True
    ret = env.project_present("service")
    assert ret["result"] is False
    assert "cannot reach Keystone at http://keystone.test:5000/v3" in ret["comment"]
    assert "Traceback" not in ret["comment"]


def test_tls_failure(env):
    env.fake.tls_bad = True
    ret = env.role_present("admin")
    assert ret["result"] is False and ret["comment"].startswith("TLS failure")


def test_bad_admin_credentials(monkeypatch):
    env = Env(monkeypatch, {"openstack_keystone:auth": dict(AUTH, password="wrong-one")})
    ret = env.project_present("service")
    assert ret["result"] is False
    assert "refused the admin credentials of user 'admin'" in ret["comment"]
    assert "wrong-one" not in ret["comment"]


def test_missing_domain_and_role(env):
    ret = env.project_present("service", domain="Nope")
    assert ret["result"] is False and ret["comment"] == "domain 'Nope' does not exist in Keystone"
    guide(env)
    ret = env.role_grant_present("no-such-role", user="compute", project="service")
    assert ret["result"] is False and "role 'no-such-role'" in ret["comment"]
    assert env.project_absent("service", domain="Nope")["result"] is True


def test_grant_test_mode_with_pending_user(env):
    ret = env.role_grant_present("admin", user="compute", project="service", test=True)
    assert ret["result"] is None and "once" in ret["comment"]


def test_bad_input_fails_before_any_request(env):
    ret = env.endpoints_present("compute", public="ctl:8774")
    assert ret["result"] is False and ret["comment"].startswith("public must be an http(s) URL")
    ret = env.user_present("compute", 12345)
    assert ret["result"] is False and "password" in ret["comment"]
    assert "12345" not in ret["comment"]
    ret = env.endpoints_present("compute")
    assert ret["result"] is False and "at least one" in ret["comment"]
    assert env.fake.log == []


def test_endpoints_for_missing_service_fail_cleanly(env):
    ret = env.endpoints_present("nosuch", public="http://x:1/")
    assert ret["result"] is False and "service 'nosuch' does not exist" in ret["comment"]


def test_absent_states(env):
    guide(env)
    env.new_run()
    rets = [env.role_grant_absent("admin", user="compute", project="service"),
            env.endpoints_absent("compute"),
            env.service_absent("compute"),
            env.user_absent("compute"),
            env.project_absent("service")]
    assert all(r["result"] is True and r["changes"] for r in rets), rets
    assert not env.fake.grants and not env.fake.db["endpoints"]
    env.new_run()
    rets = [env.role_grant_absent("admin", user="compute", project="service"),
            env.endpoints_absent("compute"), env.service_absent("compute"),
            env.user_absent("compute"), env.project_absent("service")]
    assert_clean(rets)


def test_service_updated_in_place(env):
    guide(env)
    sid = endpoints(env.fake)[0]["service_id"]
    env.new_run()
    ret = env.service_present("compute", type="compute", description="Nova")
    assert ret["changes"] == {"description": {"old": "OpenStack Compute Service", "new": "Nova"}}
    assert env.fake.db["services"][sid]["description"] == "Nova"


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def debug_log():
    """Everything logged at debug level anywhere while the test runs."""
    root, handler = logging.getLogger(), _Collect()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    ksa = logging.getLogger("keystoneauth")
    ksa_level = ksa.level
    ksa.setLevel(logging.DEBUG)  # even if someone turns keystoneauth's debug on
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)
    ksa.setLevel(ksa_level)


def test_no_password_in_debug_logs(env, debug_log):
    guide(env, password="very-Secret-1")
    uid = next(u["id"] for u in env.fake.db["users"].values() if u["name"] == "compute")
    env.fake.passwords[uid] = "x"
    env.new_run()
    env.user_present("compute", "very-Secret-1")
    text = "\n".join(debug_log.lines)
    assert "openstack_keystone: POST /users" in text  # we do log, without bodies
    assert "openstack_keystone: PATCH /users/" in text
    assert "very-Secret-1" not in text
    assert ADMIN_PW not in text


def test_credentials_from_clouds_yaml(monkeypatch, tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text(json.dumps({"clouds": {"c1": {
        "auth": {k: AUTH[k] for k in ("auth_url", "username", "password", "project_name",
                                      "user_domain_name", "project_domain_name")},
        "region_name": "RegionOne", "verify": False}}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(path))
    env = Env(monkeypatch, {"openstack_keystone:cloud": "c1"})
    assert env.project_present("service")["result"] is True
    assert env.role_present("admin", cloud="c1")["result"] is True
    conn = next(iter(env.mod.__context__.values()))
    assert conn.session.verify is False
    ret = env.role_present("admin", cloud="nope")
    assert ret["result"] is False and "cloud 'nope' not found" in ret["comment"]


def test_missing_or_bad_credentials(monkeypatch):
    env = Env(monkeypatch, {})
    ret = env.role_present("admin")
    assert ret["result"] is False and "no Keystone admin credentials" in ret["comment"]
    ret = env.role_present("admin", auth={"auth_url": "http://k:5000/v2.0", "username": "a",
                                          "password": "p"})
    assert ret["result"] is False and "only Identity API v3" in ret["comment"]
    ret = env.role_present("admin", auth={"auth_url": "http://k:5000", "username": "a"})
    assert ret["result"] is False and "lack: password" in ret["comment"]
    ret = env.role_present("admin", auth=dict(AUTH, colour="blue"))
    assert ret["result"] is False and "unknown keys: colour" in ret["comment"]


def test_auth_url_without_version(monkeypatch):
    env = Env(monkeypatch, {"openstack_keystone:auth": dict(AUTH, auth_url="http://keystone.test:5000/")})
    assert env.role_present("admin")["result"] is True
    assert env.fake.log[0][1] == "/auth/tokens"


def test_mask_url():
    mask_url = load_module("utils", "openstack_state").mask_url
    assert mask_url("http://u:pw@h:1/x") == "http://u:********@h:1/x"
    assert mask_url(GUIDE_PUBLIC) == GUIDE_PUBLIC
