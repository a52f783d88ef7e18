"""Keystone identity records (Identity API v3) over one keystoneauth1 Session.

Why keystoneauth1 and not openstacksdk: it is one small package (plus requests)
instead of a tree of forty, and one ``Session`` gives token handling and a pooled
HTTP connection. Everything here is a thin call on the v3 REST API.

Admin credentials come from ``auth`` (a dict), ``cloud`` (a clouds.yaml cloud
name), or ``config.get`` of ``openstack_keystone:auth`` / ``openstack_keystone:cloud``.
They stay in memory: never on a command line, in the environment or in a log.
One authenticated connection per credential set is cached in ``__context__``
for the whole run, with a per-run cache of name lookups, so a no-op apply
costs one token plus one filtered list call per record.
"""
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import urllib.parse

import yaml

from salt.exceptions import CommandExecutionError

try:
    import requests
    from keystoneauth1 import exceptions as ks_exc
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3 as ks_v3

    HAS_KSA = True
except ImportError:  # pragma: no cover - exercised by __virtual__ only
    HAS_KSA = False

__virtualname__ = "openstack_keystone"

log = logging.getLogger(__name__)

# keystoneauth logs request bodies verbatim at debug level (a user's password
# is in the body of a create/update). Every request here passes this logger,
# which never emits debug; keystoneauth's own logger is capped as a safety net.
_QUIET = logging.getLogger(__name__ + ".http")
_QUIET.setLevel(logging.INFO)
_QUIET.propagate = False
logging.getLogger("keystoneauth").setLevel(logging.INFO)

# Keys the session cache is derived with; a per-process random key makes the
# digest useless to anyone who sees __context__ (it never leaves the process).
_CACHE_KEY = secrets.token_bytes(32)
_CTX = "openstack_keystone.conn."

AUTH_KEYS = (
    "auth_url", "username", "password", "project_name", "user_domain_name",
    "project_domain_name", "region_name", "cacert", "insecure",
    "user_domain_id", "project_domain_id",
)
MASK = "********"


def __virtual__():
    if not HAS_KSA:
        return (False, "openstack_keystone: the keystoneauth1 Python package "
                       "(and requests) is not installed")
    return __virtualname__


# --------------------------------------------------------------------------
# credentials
# --------------------------------------------------------------------------
def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _clouds_files():
    env = os.environ.get("OS_CLIENT_CONFIG_FILE")
    dirs = [os.getcwd(), os.path.expanduser("~/.config/openstack"), "/etc/openstack"]
    files = [env] if env else []
    return files + [os.path.join(d, "clouds.yaml") for d in dirs]


def _read_yaml(path):
    try:
        with open(path) as fh:
            return yaml.safe_load(fh) or {}
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as exc:
        # Never quote the file's content: it holds a password.
        raise CommandExecutionError(f"cannot read {path}: {type(exc).__name__}") from None


def _cloud_config(cloud):
    """Credentials of ``cloud`` from the first clouds.yaml that defines it."""
    searched = []
    for path in _clouds_files():
        searched.append(path)
        data = _read_yaml(path)
        if not data or cloud not in (data.get("clouds") or {}):
            continue
        conf = dict(data["clouds"][cloud] or {})
        # secure.yaml beside it may hold the password (os-client-config layout).
        secure = _read_yaml(os.path.join(os.path.dirname(path), "secure.yaml")) or {}
        extra = (secure.get("clouds") or {}).get(cloud) or {}
        auth = dict(conf.get("auth") or {})
        auth.update(extra.get("auth") or {})
        creds = {k: auth[k] for k in AUTH_KEYS if k in auth}
        for key in ("region_name", "cacert", "insecure"):
            if key in conf:
                creds[key] = conf[key]
        if "verify" in conf and not _truthy(conf["verify"]):
            creds["insecure"] = True
        creds["_source"] = f"cloud '{cloud}' in {path}"
        return creds
    raise CommandExecutionError(
        f"cloud '{cloud}' not found in any clouds.yaml (searched: {', '.join(searched)})")


def _credentials(auth=None, cloud=None):
    if auth is None and cloud is None:
        auth = __salt__["config.get"]("openstack_keystone:auth") or None
        if auth is None:
            cloud = __salt__["config.get"]("openstack_keystone:cloud") or None
    if auth is not None:
        if not isinstance(auth, dict):
            raise CommandExecutionError("auth must be a dict of Keystone admin credentials")
        unknown = sorted(set(auth) - set(AUTH_KEYS))
        if unknown:
            raise CommandExecutionError(f"auth has unknown keys: {', '.join(unknown)}")
        creds = dict(auth)
        creds["_source"] = "auth"
    elif cloud:
        creds = _cloud_config(cloud)
    else:
        raise CommandExecutionError(
            "no Keystone admin credentials: pass auth or cloud, or set "
            "openstack_keystone:auth or openstack_keystone:cloud in pillar")
    missing = [k for k in ("auth_url", "username", "password") if not creds.get(k)]
    if missing:
        raise CommandExecutionError(
            f"Keystone admin credentials ({creds['_source']}) lack: {', '.join(missing)}")
    return creds


def _identity_url(auth_url):
    """The v3 root from an auth URL given with or without ``/v3``."""
    url = str(auth_url).rstrip("/")
    if re.search(r"/v2(\.0)?$", url):
        raise CommandExecutionError(
            f"auth_url {url} is an Identity v2 URL: only Identity API v3 is supported")
    if not re.match(r"https?://", url):
        raise CommandExecutionError(f"auth_url {url!r} is not an http(s) URL")
    return url if url.endswith("/v3") else url + "/v3"


# --------------------------------------------------------------------------
# the connection: one Session, a request counter, a per-run lookup cache
# --------------------------------------------------------------------------
class _Conn:
    def __init__(self, creds):
        self.url = _identity_url(creds["auth_url"])
        self.username = creds["username"]
        self.requests = 0
        self.cache = {}
        self.domains = {}  # name -> id
        http = requests.Session()
        http.hooks["response"].append(self._count)
        scope = {}
        if creds.get("project_name"):
            scope["project_name"] = creds["project_name"]
            scope["project_domain_name"] = creds.get("project_domain_name")
            scope["project_domain_id"] = creds.get("project_domain_id")
            if not (scope["project_domain_name"] or scope["project_domain_id"]):
                scope["project_domain_id"] = "default"
        user_domain = {"user_domain_name": creds.get("user_domain_name"),
                       "user_domain_id": creds.get("user_domain_id")}
        if not any(user_domain.values()):
            user_domain["user_domain_id"] = "default"
        plugin = ks_v3.Password(
            auth_url=self.url, username=creds["username"], password=creds["password"],
            include_catalog=False, **user_domain, **scope)
        if _truthy(creds.get("insecure")):
            verify = False
        else:
            verify = creds.get("cacert") or True
        self.session = ks_session.Session(auth=plugin, verify=verify, session=http)
        self._authenticated = False

    def _count(self, response, *args, **kwargs):
        self.requests += 1

    def _error(self, exc, what):
        if isinstance(exc, ks_exc.SSLError):
            return f"TLS failure talking to Keystone at {self.url} ({what}): {exc}"
        if isinstance(exc, ks_exc.ConnectionError):
            return f"cannot reach Keystone at {self.url} ({what}): {type(exc).__name__}"
        if isinstance(exc, ks_exc.Unauthorized):
            return (f"Keystone at {self.url} refused the admin credentials of user "
                    f"'{self.username}' (HTTP 401)")
        return f"Keystone at {self.url} failed ({what}): {type(exc).__name__}: {exc}"

    def login(self):
        """Get the admin token once; learn the admin's domain ids from it."""
        if self._authenticated:
            return
        try:
            access = self.session.auth.get_access(self.session)
        except ks_exc.ClientException as exc:
            raise CommandExecutionError(self._error(exc, "admin token")) from None
        self._authenticated = True
        for name, did in ((access.user_domain_name, access.user_domain_id),
                          (access.project_domain_name, access.project_domain_id)):
            if name and did:
                self.domains[name] = did

    def call(self, method, path, body=None, params=None, ok=(200, 201, 204),
             authenticated=True, secrets_=()):
        """One request; returns (status, json body or None)."""
        if authenticated:
            self.login()
        what = f"{method} {path}"
        try:
            resp = self.session.request(
                self.url + path, method, json=body, params=params, raise_exc=False,
                authenticated=authenticated, logger=_QUIET)
        except ks_exc.ClientException as exc:
            raise CommandExecutionError(_mask(self._error(exc, what), secrets_)) from None
        log.debug("openstack_keystone: %s %s -> %s", method, path, resp.status_code)
        if resp.status_code not in ok:
            try:
                msg = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                msg = resp.reason
            hint = ""
            if resp.status_code == 403:
                hint = f" (does user '{self.username}' have the admin role?)"
            raise CommandExecutionError(_mask(
                f"Keystone at {self.url} answered {what} with HTTP {resp.status_code}: "
                f"{msg}{hint}", secrets_))
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            data = None
        return resp.status_code, data


def _mask(text, secrets_):
    for secret in secrets_:
        if secret:
            text = text.replace(secret, MASK)
    return text


def mask_url(url):
    """An URL with any ``user:password@`` part masked (for comments and logs)."""
    if not isinstance(url, str):
        return url
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1" + MASK + "@", url)


def _conn(auth=None, cloud=None):
    creds = _credentials(auth, cloud)
    digest = hmac.new(_CACHE_KEY, json.dumps(creds, sort_keys=True, default=str).encode(),
                      hashlib.sha256).hexdigest()
    key = _CTX + digest
    if key not in __context__:
        __context__[key] = _Conn(creds)
    return __context__[key]


def request_count():
    """HTTP requests sent to Keystone so far in this run (all credential sets)."""
    return sum(v.requests for k, v in __context__.items()
               if isinstance(k, str) and k.startswith(_CTX))


def _q(value):
    return urllib.parse.quote(str(value), safe="")


def _one(items, what):
    if len(items) > 1:
        raise CommandExecutionError(f"{what} matches {len(items)} records in Keystone")
    return items[0] if items else None


# --------------------------------------------------------------------------
# domains, projects, users
# --------------------------------------------------------------------------
def domain_id(name, auth=None, cloud=None):
    """The id of domain ``name`` (a name, or failing that an id). Raises if missing."""
    conn = _conn(auth, cloud)
    conn.login()
    if name in conn.domains:
        return conn.domains[name]
    _, data = conn.call("GET", "/domains", params={"name": name})
    found = data["domains"]
    if not found:
        status, data = conn.call("GET", f"/domains/{_q(name)}", ok=(200, 404))
        found = [data["domain"]] if status == 200 else []
    if not found:
        raise CommandExecutionError(f"domain '{name}' does not exist in Keystone")
    conn.domains[name] = found[0]["id"]
    return found[0]["id"]


def _cached_get(conn, key, fetch):
    if key not in conn.cache:
        conn.cache[key] = fetch()
    return conn.cache[key]


def _in_domain_get(kind, name, domain, auth, cloud):
    """The ``kind`` (project/user) ``name`` in ``domain`` as a dict, or None."""
    conn = _conn(auth, cloud)
    did = domain_id(domain, auth, cloud)

    def fetch():
        _, data = conn.call("GET", f"/{kind}s", params={"name": name, "domain_id": did})
        return _one(data[f"{kind}s"], f"{kind} '{name}' in domain '{domain}'")

    return _cached_get(conn, (kind, name, did), fetch)


def project_get(name, domain="Default", auth=None, cloud=None):
    """The project ``name`` in ``domain`` as a dict, or None."""
    return _in_domain_get("project", name, domain, auth, cloud)


def project_create(name, domain="Default", description=None, enabled=True,
                   auth=None, cloud=None):
    conn = _conn(auth, cloud)
    did = domain_id(domain, auth, cloud)
    body = {"name": name, "domain_id": did, "enabled": bool(enabled)}
    if description is not None:
        body["description"] = description
    _, data = conn.call("POST", "/projects", {"project": body})
    conn.cache[("project", name, did)] = data["project"]
    return data["project"]


def project_update(project_id, fields, auth=None, cloud=None):
    conn = _conn(auth, cloud)
    _, data = conn.call("PATCH", f"/projects/{_q(project_id)}", {"project": dict(fields)})
    rec = data["project"]
    conn.cache[("project", rec["name"], rec["domain_id"])] = rec
    return rec


def project_delete(project_id, auth=None, cloud=None):
    conn = _conn(auth, cloud)
    conn.call("DELETE", f"/projects/{_q(project_id)}", ok=(204, 404))
    conn.cache = {k: v for k, v in conn.cache.items()
                  if not (k[0] == "project" and v and v.get("id") == project_id)}
    return True


def user_get(name, domain="Default", auth=None, cloud=None):
    """The user ``name`` in ``domain`` as a dict, or None."""
    return _in_domain_get("user", name, domain, auth, cloud)


def user_create(name, password, domain="Default", default_project_id=None, email=None,
                enabled=True, auth=None, cloud=None):
    conn = _conn(auth, cloud)
    did = domain_id(domain, auth, cloud)
    body = {"name": name, "domain_id": did, "password": password, "enabled": bool(enabled)}
    if default_project_id:
        body["default_project_id"] = default_project_id
    if email is not None:
        body["email"] = email
    _, data = conn.call("POST", "/users", {"user": body}, secrets_=(password,))
    conn.cache[("user", name, did)] = data["user"]
    return data["user"]


def user_update(user_id, fields, auth=None, cloud=None):
    """PATCH the user; ``fields`` may hold ``password``. Returns the record."""
    conn = _conn(auth, cloud)
    _, data = conn.call("PATCH", f"/users/{_q(user_id)}", {"user": dict(fields)},
                        secrets_=(fields.get("password"),))
    rec = data["user"]
    conn.cache[("user", rec["name"], rec["domain_id"])] = rec
    return rec


def user_delete(user_id, auth=None, cloud=None):
    conn = _conn(auth, cloud)
    conn.call("DELETE", f"/users/{_q(user_id)}", ok=(204, 404))
    conn.cache = {k: v for k, v in conn.cache.items()
                  if not (k[0] in ("user", "user-ref") and v and v.get("id") == user_id)}
    return True


def user_ref(name, domain="Default", auth=None, cloud=None):
    """The user's id/name/domain_id, from this run's password check when it had one."""
    conn = _conn(auth, cloud)
    did = domain_id(domain, auth, cloud)
    ref = conn.cache.get(("user-ref", name, did))
    return ref if ref is not None else user_get(name, domain, auth, cloud)


def user_authenticate(name, password, domain="Default", auth=None, cloud=None):
    """Authenticate as the user by name: its id/name/domain_id, or None on HTTP 401.

    One request proves at once that the user exists, is enabled and has this
    password, so a no-op ``user_present`` needs no list call.
    """
    conn = _conn(auth, cloud)
    did = domain_id(domain, auth, cloud)
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": name, "domain": {"id": did}, "password": password}}}}}
    status, data = conn.call("POST", "/auth/tokens?nocatalog", body, ok=(201, 401),
                             authenticated=False, secrets_=(password,))
    if status != 201:
        return None
    user = data["token"]["user"]
    ref = {"id": user["id"], "name": user["name"], "domain_id": user["domain"]["id"]}
    conn.cache[("user-ref", name, did)] = ref
    return ref


def user_check_password(user_id, password, auth=None, cloud=None):
    """True when ``password`` gets a token for the user (an unscoped one, no catalog)."""
    conn = _conn(auth, cloud)
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"id": user_id, "password": password}}}}}
    status, _ = conn.call("POST", "/auth/tokens?nocatalog", body, ok=(201, 401),
                          authenticated=False, secrets_=(password,))
    return status == 201


# --------------------------------------------------------------------------
# roles and grants
# --------------------------------------------------------------------------
def role_get(name, auth=None, cloud=None):
    """The global role ``name`` as a dict, or None."""
    conn = _conn(auth, cloud)

    def fetch():
        _, data = conn.call("GET", "/roles", params={"name": name})
        # Global roles only: domain-specific roles carry a domain_id.
        found = [r for r in data["roles"] if r["name"] == name and not r.get("domain_id")]
        return _one(found, f"role '{name}'")

    return _cached_get(conn, ("role", name), fetch)


def role_create(name, auth=None, cloud=None):
    conn = _conn(auth, cloud)
    _, data = conn.call("POST", "/roles", {"role": {"name": name}})
    conn.cache[("role", name)] = data["role"]
    return data["role"]


def role_delete(role_id, auth=None, cloud=None):
    conn = _conn(auth, cloud)
    conn.call("DELETE", f"/roles/{_q(role_id)}", ok=(204, 404))
    conn.cache = {k: v for k, v in conn.cache.items()
                  if not (k[0] == "role" and v and v.get("id") == role_id)}
    return True


def _grant_path(project_id, user_id, role_id):
    return f"/projects/{_q(project_id)}/users/{_q(user_id)}/roles/{_q(role_id)}"


def role_grant_check(project_id, user_id, role_id, auth=None, cloud=None):
    """True when the user holds the role directly on the project."""
    conn = _conn(auth, cloud)
    status, _ = conn.call("HEAD", _grant_path(project_id, user_id, role_id), ok=(204, 200, 404))
    return status != 404


def role_grant(project_id, user_id, role_id, auth=None, cloud=None):
    _conn(auth, cloud).call("PUT", _grant_path(project_id, user_id, role_id))
    return True


def role_revoke(project_id, user_id, role_id, auth=None, cloud=None):
    _conn(auth, cloud).call("DELETE", _grant_path(project_id, user_id, role_id),
                            ok=(204, 404))
    return True


# --------------------------------------------------------------------------
# services, regions, endpoints
# --------------------------------------------------------------------------
def service_list(name, service_type=None, auth=None, cloud=None):
    """Services named ``name`` (of ``service_type`` when given)."""
    conn = _conn(auth, cloud)

    def fetch():
        _, data = conn.call("GET", "/services", params={"name": name})
        # Filter here too: an older Keystone ignores the name filter.
        return [s for s in data["services"] if s.get("name") == name]

    found = _cached_get(conn, ("service", name), fetch)
    if service_type:
        found = [s for s in found if s.get("type") == service_type]
    return list(found)


def service_create(name, service_type, description=None, auth=None, cloud=None):
    conn = _conn(auth, cloud)
    body = {"name": name, "type": service_type, "enabled": True}
    if description is not None:
        body["description"] = description
    _, data = conn.call("POST", "/services", {"service": body})
    conn.cache.setdefault(("service", name), [])
    conn.cache[("service", name)] = conn.cache[("service", name)] + [data["service"]]
    return data["service"]


def service_update(service_id, fields, auth=None, cloud=None):
    conn = _conn(auth, cloud)
    _, data = conn.call("PATCH", f"/services/{_q(service_id)}", {"service": dict(fields)})
    rec = data["service"]
    conn.cache = {k: v for k, v in conn.cache.items() if k[0] != "service"}
    return rec


def service_delete(service_id, auth=None, cloud=None):
    conn = _conn(auth, cloud)
    conn.call("DELETE", f"/services/{_q(service_id)}", ok=(204, 404))
    conn.cache = {k: v for k, v in conn.cache.items() if k[0] != "service"}
    return True


def region_exists(region, auth=None, cloud=None):
    conn = _conn(auth, cloud)
    status, _ = conn.call("GET", f"/regions/{_q(region)}", ok=(200, 404))
    return status == 200


def region_create(region, auth=None, cloud=None):
    _, data = _conn(auth, cloud).call("POST", "/regions", {"region": {"id": region}})
    return data["region"]


def region_delete(region, auth=None, cloud=None):
    _conn(auth, cloud).call("DELETE", f"/regions/{_q(region)}", ok=(204, 404))
    return True


def endpoint_list(service_id, region=None, interface=None, auth=None, cloud=None):
    """Endpoints of a service, filtered by Keystone on region and interface."""
    conn = _conn(auth, cloud)
    params = {"service_id": service_id}
    if region:
        params["region_id"] = region
    if interface:
        params["interface"] = interface
    _, data = conn.call("GET", "/endpoints", params=params)
    # Re-check on our side: a filter Keystone does not know is silently ignored.
    return [e for e in data["endpoints"]
            if e.get("service_id") == service_id
            and (not region or e.get("region_id") == region)
            and (not interface or e.get("interface") == interface)]


def endpoint_create(service_id, interface, url, region, auth=None, cloud=None):
    body = {"service_id": service_id, "interface": interface, "url": url,
            "region_id": region, "enabled": True}
    _, data = _conn(auth, cloud).call("POST", "/endpoints", {"endpoint": body})
    return data["endpoint"]


def endpoint_update(endpoint_id, fields, auth=None, cloud=None):
    _, data = _conn(auth, cloud).call("PATCH", f"/endpoints/{_q(endpoint_id)}",
                                      {"endpoint": dict(fields)})
    return data["endpoint"]


def endpoint_delete(endpoint_id, auth=None, cloud=None):
    _conn(auth, cloud).call("DELETE", f"/endpoints/{_q(endpoint_id)}", ok=(204, 404))
    return True
