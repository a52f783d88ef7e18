"""Credentials and one authenticated keystoneauth1 Session per credential set,
shared by the formula's OpenStack API modules (Keystone records, the Compute
and Placement APIs). Credentials come from an ``auth`` dict, a clouds.yaml
``cloud``, or the configured defaults the calling module passes in; they stay
in memory: never on a command line, in the environment or in a log.

The admin token is asked for with its service catalog (the same one request),
so the Compute and Placement endpoints cost nothing more; ``interface``
(default ``public``) and ``region_name`` pick the catalog entry, and
``<type>_endpoint_override`` replaces it (os-client-config's names).

Why keystoneauth1 and not openstacksdk: it is one small package (plus
requests) instead of a tree of forty, and one ``Session`` gives token handling
and a pooled HTTP connection.
"""
import hashlib
import hmac
import importlib.util
import json
import logging
import os
import re
import secrets
import time

import yaml

try:
    from salt.exceptions import CommandExecutionError
except ImportError:  # pragma: no cover - only without salt installed
    CommandExecutionError = RuntimeError

# keystoneauth1 and requests are imported at the first session, not with this
# module: every minion validates its pillar's ``auth`` keys with it, and on a
# compute (which never talks to Keystone) the import cost ~40 ms a run.
HAS_KSA = all(importlib.util.find_spec(m) is not None for m in ("keystoneauth1", "requests"))
_KSA = {}


def _ksa(name):
    """One of keystoneauth1's modules (or requests), imported on first use."""
    if not _KSA:
        import requests
        from keystoneauth1 import exceptions, session
        from keystoneauth1.access import service_catalog
        from keystoneauth1.identity import v3

        _KSA.update(requests=requests, exc=exceptions, session=session,
                    catalog=service_catalog, v3=v3)
    return _KSA[name]


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
    "interface", "compute_endpoint_override", "placement_endpoint_override",
)
# clouds.yaml keys read beside ``auth`` (os-client-config puts them at the top).
_CLOUD_KEYS = ("region_name", "cacert", "insecure", "interface",
               "compute_endpoint_override", "placement_endpoint_override")

# Every request is bounded: a Keystone, Nova or Placement that accepts the
# connection and never answers must not hang a salt run.
REQUEST_TIMEOUT = 60
# A pooled connection the server closed meanwhile (nova-api under uwsgi does,
# seen on the dev fleet) fails with a reset: reads are sent again, at most
# twice (0.5 s, then 1 s later); a write never (it may have been done), and a
# timed-out request neither (REQUEST_TIMEOUT is its bound).
READ_RETRIES = 2

# How each API is named in errors and in the debug log (the log keeps the
# identity engine's "openstack_keystone: METHOD path -> status" lines).
_SERVICES = {"identity": ("Keystone", "openstack_keystone"),
             "compute": ("Nova", "openstack_compute"),
             "placement": ("Placement", "openstack_placement")}


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
        for key in _CLOUD_KEYS:
            if key in conf:
                creds[key] = conf[key]
        if "verify" in conf and not _truthy(conf["verify"]):
            creds["insecure"] = True
        creds["_source"] = f"cloud '{cloud}' in {path}"
        return creds
    raise CommandExecutionError(
        f"cloud '{cloud}' not found in any clouds.yaml (searched: {', '.join(searched)})")


def credentials(auth=None, cloud=None, configured_auth=None, configured_cloud=None):
    """The admin credentials: ``auth``, else ``cloud``; with neither, the
    configured ones (``openstack_keystone:auth`` / ``:cloud``). Raises with
    what is missing; never quotes a password."""
    if auth is None and cloud is None:
        auth = configured_auth or None
        if auth is None:
            cloud = configured_cloud or None
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


def module_connect(auth, cloud, config_get, prefixes, context, mask, store=None):
    """An execution module's connection (``connect``): for ``auth`` or
    ``cloud``, else the configured ``<prefix>:auth`` / ``<prefix>:cloud`` of
    the first of ``prefixes`` that has one (``config_get``: the module's
    ``config.get``); ``store``: see ``connect``."""
    if auth is not None or cloud is not None:
        return connect(credentials(auth, cloud), context, mask, store)

    def first(key):
        for prefix in prefixes:
            value = config_get(f"{prefix}:{key}")
            if value:
                return value
        return None

    creds = credentials(configured_auth=first("auth"), configured_cloud=first("cloud"))
    return connect(creds, context, mask, store)


def identity_url(auth_url):
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
def api_message(data, default=""):
    """The human message of an OpenStack error body: Keystone's
    ``{"error": {"message"}}``, Nova's ``{"badRequest": {"message"}}``,
    Placement's ``{"errors": [{"detail"}]}``; else ``default``."""
    msg = None
    if isinstance(data, dict):
        if isinstance(data.get("error"), dict):
            msg = data["error"].get("message")
        elif isinstance(data.get("errors"), list):
            msg = "; ".join(str(e.get("detail") or e.get("title") or "")
                            for e in data["errors"] if isinstance(e, dict))
        elif len(data) == 1 and isinstance(next(iter(data.values())), dict):
            msg = next(iter(data.values())).get("message")
    # Placement's details carry a title and blank lines: one line is enough.
    return " ".join(str(msg).split()) if msg else default


class _Conn:
    def __init__(self, creds, mask, store=None):
        self.mask = mask
        # Tokens kept between runs (openstack_tokens): the admin's, and the
        # service users' checked by user_authenticate.
        self.store = store
        self._slot = None
        if store is not None:
            self._slot = store.slot("admin", {k: v for k, v in creds.items()
                                              if not k.startswith("_")})
        self._kept = None
        self._kept_at_login = None  # the kept token this run started with, if any
        self._fresh_catalog = None
        self.url = identity_url(creds["auth_url"])
        self.username = creds["username"]
        self.requests = 0
        self.logins = 0
        self.cache = {}
        self.domains = {}  # name -> id
        self.interface = creds.get("interface") or "public"
        self.region = creds.get("region_name") or None
        self.endpoints = {"identity": self.url}
        for service in ("compute", "placement"):
            if creds.get(f"{service}_endpoint_override"):
                self.endpoints[service] = str(creds[f"{service}_endpoint_override"]).rstrip("/")
        # Masked out of every error text, whatever the server echoes back.
        self._secrets = (creds["password"],)
        http = _ksa("requests").Session()
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
        # The catalog comes in the token's answer: the endpoints of Nova and
        # Placement cost no request of their own.
        plugin = _ksa("v3").Password(
            auth_url=self.url, username=creds["username"], password=creds["password"],
            include_catalog=True, **user_domain, **scope)
        if _truthy(creds.get("insecure")):
            verify = False
        else:
            verify = creds.get("cacert") or True
        self.session = _ksa("session").Session(auth=plugin, verify=verify, session=http,
                                               timeout=REQUEST_TIMEOUT)
        self._authenticated = False

    def _count(self, response, *args, **kwargs):
        self.requests += 1
        request = response.request
        if request.method == "POST" and request.path_url.split("?")[0].endswith("/auth/tokens"):
            self.logins += 1  # a password login: Keystone's bcrypt

    def clean(self, text):
        """``text`` (an API's answer, returned as data) with the admin password masked."""
        return self.mask(text, self._secrets)

    def _error(self, exc, what, service="identity"):
        name = _SERVICES[service][0]
        url = self.endpoints.get(service, self.url)
        ks_exc = _ksa("exc")
        if isinstance(exc, ks_exc.SSLError):
            return f"TLS failure talking to {name} at {url} ({what}): {exc}"
        if isinstance(exc, ks_exc.ConnectionError):  # refused, unreachable, timed out
            return f"cannot reach {name} at {url} ({what}): {type(exc).__name__}"
        if isinstance(exc, ks_exc.Unauthorized):
            return (f"Keystone at {self.url} refused the admin credentials of user "
                    f"'{self.username}' (HTTP 401)")
        return f"{name} at {url} failed ({what}): {type(exc).__name__}: {exc}"

    def login(self):
        """Get the admin token once (the kept one while it lives, see
        openstack_tokens); learn the admin's domain ids from it."""
        if self._authenticated:
            return
        plugin = self.session.auth
        kept = self.store.load(self._slot) if self.store is not None else None
        if kept is not None:
            try:
                plugin.set_auth_state(kept["state"])
            except (ValueError, KeyError, TypeError):  # damaged or another version's
                self.store.forget(self._slot)
                kept = None
                plugin.set_auth_state(None)
            self._kept = plugin.auth_ref  # replaced if keystoneauth logs in anyway
        try:
            access = plugin.get_access(self.session)
        except _ksa("exc").ClientException as exc:
            raise CommandExecutionError(
                self.mask(self._error(exc, "admin token"), self._secrets)) from None
        self._authenticated = True
        # the kept token is in use (keystoneauth did not log in): its catalog is old
        self._kept_at_login = access if kept is not None and access is self._kept else None
        self._keep()
        for name, did in ((access.user_domain_name, access.user_domain_id),
                          (access.project_domain_name, access.project_domain_id)):
            if name and did:
                self.domains[name] = did

    def endpoint(self, service):
        """The base URL of ``service`` (compute, placement) from the token's
        catalog (``interface``, ``region_name``), or its override."""
        if service not in self.endpoints:
            self.login()
            where = f"interface {self.interface}" + (f", region {self.region}" if self.region else "")
            try:
                url = self._catalog().url_for(service_type=service, interface=self.interface,
                                              region_name=self.region)
            except _ksa("exc").EndpointNotFound:
                url = None
            except _ksa("exc").ClientException as exc:
                raise CommandExecutionError(
                    self.mask(self._error(exc, "service catalog"), self._secrets)) from None
            if not url:
                raise CommandExecutionError(
                    f"the Keystone catalog of user '{self.username}' has no {service} "
                    f"endpoint ({where}); set {service}_endpoint_override to name one")
            self.endpoints[service] = url.rstrip("/")
        return self.endpoints[service]

    def _catalog(self):
        """The service catalog: the one in the token's answer, or, when the
        token was kept from an earlier run (its catalog as it was then:
        endpoints made or moved since would be missing), the current one
        (``GET /v3/auth/catalog``, once per run)."""
        access = self.session.auth.get_access(self.session)
        if access is not self._kept_at_login:
            return access.service_catalog  # a fresh login's
        if self._fresh_catalog is None:
            _, data = self.call("GET", "/auth/catalog")
            self._fresh_catalog = _ksa("catalog").ServiceCatalogV3(data["catalog"])
        return self._fresh_catalog

    def _keep(self):
        """Save the admin token when it is not the kept one: a new login, or
        keystoneauth's own second try after a 401 (a kept token revoked)."""
        plugin = self.session.auth
        if self.store is None or plugin.auth_ref is self._kept:
            return
        self._kept = plugin.auth_ref
        if plugin.auth_ref is not None and plugin.auth_ref.expires:
            self.store.save(self._slot, {"state": plugin.get_auth_state(),
                                         "expires": plugin.auth_ref.expires.timestamp()})

    def call(self, method, path, body=None, params=None, ok=(200, 201, 204),
             authenticated=True, secrets_=(), service="identity", microversion=None,
             headers=None, full=False):
        """One request to ``service`` (identity, compute, placement) with its
        ``microversion`` pinned; returns (status, json body or None), and the
        response headers with ``full``. A status outside ``ok`` raises with
        the API's own message."""
        if authenticated:
            self.login()
        name, log_name = _SERVICES[service]
        what = f"{method} {path}"
        secrets_ = tuple(secrets_) + self._secrets
        headers = dict(headers or {})
        if microversion:
            headers["OpenStack-API-Version"] = f"{service} {microversion}"
            if service == "compute":  # the header older Nova API code reads
                headers["X-OpenStack-Nova-API-Version"] = microversion
        retries = READ_RETRIES if method in ("GET", "HEAD") else 0
        for attempt in range(retries + 1):
            try:
                resp = self.session.request(
                    self.endpoint(service) + path, method, json=body, params=params,
                    headers=headers, raise_exc=False, authenticated=authenticated,
                    logger=_QUIET)
                break
            except _ksa("exc").ClientException as exc:
                # A reset or refused connection, not a timeout: that one is bound already.
                if attempt < retries and isinstance(exc, _ksa("exc").ConnectFailure):
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise CommandExecutionError(
                    self.mask(self._error(exc, what, service), secrets_)) from None
        log.debug("%s: %s %s -> %s", log_name, method, path, resp.status_code)
        if authenticated:
            self._keep()
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            data = None
        if resp.status_code not in ok:
            hint = ""
            if resp.status_code == 403:
                hint = f" (does user '{self.username}' have the admin role?)"
            raise CommandExecutionError(self.mask(
                f"{name} at {self.endpoints.get(service, self.url)} answered {what} with "
                f"HTTP {resp.status_code}: {api_message(data, resp.reason)}{hint}", secrets_))
        return (resp.status_code, data, resp.headers) if full else (resp.status_code, data)


def connect(creds, context, mask, store=None):
    """The connection of ``creds`` (from :func:`credentials`), made once per
    run and kept in ``context`` under a keyed hash of the credentials.
    ``mask(text, secrets)`` cleans every error text; ``store`` (an
    openstack_tokens store, or None) keeps tokens between runs."""
    digest = hmac.new(_CACHE_KEY, json.dumps(creds, sort_keys=True, default=str).encode(),
                      hashlib.sha256).hexdigest()
    key = _CTX + digest
    if key not in context:
        context[key] = _Conn(creds, mask, store)
    return context[key]


def request_count(context, logins=False):
    """HTTP requests sent so far in this run (all credential sets); with
    ``logins``, only the password logins among them."""
    return sum(v.logins if logins else v.requests for k, v in context.items()
               if isinstance(k, str) and k.startswith(_CTX))


def auth_keys():
    """The keys an ``auth`` dict may hold."""
    return list(AUTH_KEYS)


def installed():
    """True when keystoneauth1 and requests are installed (imported at the first session)."""
    return HAS_KSA
