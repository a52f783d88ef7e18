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
import logging
import urllib.parse

from salt.exceptions import CommandExecutionError

__virtualname__ = "openstack_keystone"

log = logging.getLogger(__name__)


def __virtual__():
    if "openstack_session.installed" not in __utils__:
        return (False, "openstack_keystone: the formula's _utils are not loaded "
                       "(run saltutil.sync_all)")
    if not __utils__["openstack_session.installed"]():
        return (False, "openstack_keystone: the keystoneauth1 Python package "
                       "(and requests) is not installed")
    return __virtualname__


def _conn(auth=None, cloud=None):
    """The run's connection for these credentials (one token, one pool)."""
    return __utils__["openstack_session.module_connect"](
        auth, cloud, __salt__["config.get"], ("openstack_keystone",), __context__,
        __utils__["openstack_state.mask"],
        __utils__["openstack_tokens.store_for"](
            __opts__, __salt__["config.get"], __utils__["openstack_files.atomic_write"]))


def token_cache_clear():
    """Forget the Keystone tokens kept between runs (openstack_tokens); the
    next run logs in again. Returns how many there were.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.token_cache_clear
    """
    return __utils__["openstack_tokens.clear"](__opts__["cachedir"])


def request_count(logins=False):
    """HTTP requests sent to Keystone so far in this run (all credential sets);
    with ``logins=True`` only the password logins (``POST /v3/auth/tokens``:
    each costs Keystone a bcrypt hash).

    CLI Example:

    .. code-block:: bash

        salt '*' openstack_keystone.request_count
        salt '*' openstack_keystone.request_count logins=True
    """
    return __utils__["openstack_session.request_count"](__context__, logins)


def _q(value):
    return urllib.parse.quote(str(value), safe="")


def _one(items, what):
    if len(items) > 1:
        raise CommandExecutionError(f"{what} matches {len(items)} records in Keystone")
    return items[0] if items else None


def _patch(kind, record_id, fields, auth, cloud, secrets_=()):
    """PATCH /<kind>s/<id> with ``fields``; (the connection, the new record)."""
    conn = _conn(auth, cloud)
    _, data = conn.call("PATCH", f"/{kind}s/{_q(record_id)}", {kind: dict(fields)},
                        secrets_=secrets_)
    return conn, data[kind]


def _delete(kind, record_id, auth, cloud, forget=None):
    """DELETE /<kind>s/<id> (a missing one is fine); ``forget(key, value)``
    says which cached lookups the deletion made stale."""
    conn = _conn(auth, cloud)
    conn.call("DELETE", f"/{kind}s/{_q(record_id)}", ok=(204, 404))
    if forget:
        conn.cache = {k: v for k, v in conn.cache.items() if not forget(k, v)}
    return True


def _same_id(kinds, record_id):
    """A ``forget`` for _delete: cached records of ``kinds`` with this id."""
    return lambda key, value: key[0] in kinds and bool(value) and value.get("id") == record_id


# --------------------------------------------------------------------------
# domains, projects, users
# --------------------------------------------------------------------------
def domain_id(name, auth=None, cloud=None):
    """The id of domain ``name`` (a name, or failing that an id). Raises if missing.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.domain_id Default cloud=admin
    """
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
    """The project ``name`` in ``domain`` as a dict, or None.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.project_get service cloud=admin
    """
    return _in_domain_get("project", name, domain, auth, cloud)


def project_create(name, domain="Default", description=None, enabled=True,
                   auth=None, cloud=None):
    """Create project ``name`` in ``domain``; the new record.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.project_create service description='Service Project' cloud=admin
    """
    conn = _conn(auth, cloud)
    did = domain_id(domain, auth, cloud)
    body = {"name": name, "domain_id": did, "enabled": bool(enabled)}
    if description is not None:
        body["description"] = description
    _, data = conn.call("POST", "/projects", {"project": body})
    conn.cache[("project", name, did)] = data["project"]
    return data["project"]


def project_update(project_id, fields, auth=None, cloud=None):
    """PATCH the project with ``fields``; the record.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.project_update 0123abcd '{description: Services}' cloud=admin
    """
    conn, rec = _patch("project", project_id, fields, auth, cloud)
    conn.cache[("project", rec["name"], rec["domain_id"])] = rec
    return rec


def project_delete(project_id, auth=None, cloud=None):
    """Delete the project (a missing one is fine).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.project_delete 0123abcd cloud=admin
    """
    return _delete("project", project_id, auth, cloud, _same_id(("project",), project_id))


def user_get(name, domain="Default", auth=None, cloud=None):
    """The user ``name`` in ``domain`` as a dict, or None.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.user_get nova cloud=admin
    """
    return _in_domain_get("user", name, domain, auth, cloud)


def user_create(name, password, domain="Default", default_project_id=None, email=None,
                enabled=True, auth=None, cloud=None):
    """Create user ``name`` with ``password``; the new record.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.user_create nova password=...  # in the job cache: prefer the state cloud=admin
    """
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
    """PATCH the user; ``fields`` may hold ``password``. Returns the record.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.user_update 0123abcd '{enabled: true}' cloud=admin
    """
    conn, rec = _patch("user", user_id, fields, auth, cloud, secrets_=(fields.get("password"),))
    conn.cache[("user", rec["name"], rec["domain_id"])] = rec
    return rec


def user_delete(user_id, auth=None, cloud=None):
    """Delete the user (a missing one is fine).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.user_delete 0123abcd cloud=admin
    """
    return _delete("user", user_id, auth, cloud, _same_id(("user", "user-ref"), user_id))


def user_ref(name, domain="Default", auth=None, cloud=None):
    """The user's id/name/domain_id, from this run's password check when it had one.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.user_ref nova cloud=admin
    """
    conn = _conn(auth, cloud)
    did = domain_id(domain, auth, cloud)
    ref = conn.cache.get(("user-ref", name, did))
    return ref if ref is not None else user_get(name, domain, auth, cloud)


def user_authenticate(name, password, domain="Default", auth=None, cloud=None):
    """Authenticate as the user by name: its id/name/domain_id, or None on HTTP 401.

    One request proves at once that the user exists, is enabled and has this
    password, and (``project_id``: the project Keystone scoped the token to,
    the user's default project when it has a role there) which default
    project it has, so a no-op ``user_present`` needs no list call.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.user_authenticate nova password=...  # in the job cache cloud=admin
    """
    conn = _conn(auth, cloud)
    did = domain_id(domain, auth, cloud)
    store = conn.store
    slot = store.slot("user", conn.url, name, did, password) if store is not None else None
    kept = store.load(slot) if store is not None else None
    if kept is not None:
        ref = _kept_user_token(conn, name, did, kept["token"], password)
        if ref is not None:
            return ref
        store.forget(slot)
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": name, "domain": {"id": did}, "password": password}}}}}
    status, data, headers = conn.call("POST", "/auth/tokens?nocatalog", body, ok=(201, 401),
                                      authenticated=False, secrets_=(password,), full=True)
    if status != 201:
        return None
    token = data["token"]
    if store is not None and headers.get("X-Subject-Token"):
        store.save(slot, {"token": headers["X-Subject-Token"],
                          "expires": __utils__["openstack_tokens.expires_at"](
                              token.get("expires_at"))})
    return _token_user_ref(conn, name, did, token)


def _kept_user_token(conn, name, did, subject, password):
    """The user's ref from a token kept by an earlier run (openstack_tokens),
    validated by the admin: Keystone answers 404 for a token revoked by a
    password change, a disabled or deleted user, or a project role gone. The
    token's project is the default project at its login, so the user's record
    says whether it still is (None: it is not, the caller looks further)."""
    status, data = conn.call("GET", "/auth/tokens?nocatalog", ok=(200, 401, 404),
                             headers={"X-Subject-Token": subject},
                             secrets_=(password, subject))
    if status != 200:
        return None
    token = data["token"]
    if token["user"]["name"] != name or token["user"]["domain"]["id"] != did:
        return None
    _, rec = conn.call("GET", f"/users/{_q(token['user']['id'])}", ok=(200,))
    rec = rec["user"]
    project = (token.get("project") or {}).get("id")
    if project != rec.get("default_project_id"):
        token = dict(token, project=None, roles=[])
    return _token_user_ref(conn, name, did, token)


def _token_user_ref(conn, name, did, token):
    """The user's ref (and the roles it names, for role_present) from a token."""
    user = token["user"]
    # No scope asked: Keystone scopes the token to the user's default project
    # when the user has a role there, and lists those roles (global ones, with
    # their ids): user_present needs no user lookup, role_present no role list.
    ref = {"id": user["id"], "name": user["name"], "domain_id": user["domain"]["id"],
           "project_id": (token.get("project") or {}).get("id")}
    conn.cache[("user-ref", name, did)] = ref
    for role in token.get("roles") or []:
        conn.cache.setdefault(("role", role["name"]), {"id": role["id"], "name": role["name"]})
    return ref


def user_check_password(user_id, password, auth=None, cloud=None):
    """True when ``password`` gets a token for the user (an unscoped one, no catalog).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.user_check_password 0123abcd password=...  # in the job cache cloud=admin
    """
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
    """The global role ``name`` as a dict, or None.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.role_get service cloud=admin
    """
    conn = _conn(auth, cloud)

    def fetch():
        # One list for every role a run asks about (the formula grants two).
        roles = _cached_get(conn, ("roles",), lambda: conn.call("GET", "/roles")[1]["roles"])
        # Global roles only: domain-specific roles carry a domain_id.
        found = [r for r in roles if r["name"] == name and not r.get("domain_id")]
        return _one(found, f"role '{name}'")

    return _cached_get(conn, ("role", name), fetch)


def role_create(name, auth=None, cloud=None):
    """Create the global role ``name``; the new record.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.role_create service cloud=admin
    """
    conn = _conn(auth, cloud)
    _, data = conn.call("POST", "/roles", {"role": {"name": name}})
    conn.cache[("role", name)] = data["role"]
    conn.cache.pop(("roles",), None)
    return data["role"]


def role_delete(role_id, auth=None, cloud=None):
    """Delete the role (a missing one is fine).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.role_delete 0123abcd cloud=admin
    """
    same = _same_id(("role",), role_id)
    return _delete("role", role_id, auth, cloud, lambda k, v: k == ("roles",) or same(k, v))


def _grant_path(project_id, user_id, role_id):
    return f"/projects/{_q(project_id)}/users/{_q(user_id)}/roles/{_q(role_id)}"


def _direct_roles(conn, project_id, user_id):
    """The ids of the roles the user holds directly (not inherited, not
    through a group) on the project: one query for every grant a run checks."""
    def fetch():
        _, data = conn.call("GET", "/role_assignments",
                            params={"user.id": user_id, "scope.project.id": project_id})
        return {a["role"]["id"] for a in data["role_assignments"]
                if a.get("user", {}).get("id") == user_id
                and a.get("scope", {}).get("project", {}).get("id") == project_id
                and "OS-INHERIT:inherited_to" not in a.get("scope", {})}
    return _cached_get(conn, ("grants", project_id, user_id), fetch)


def role_grant_check(project_id, user_id, role_id, auth=None, cloud=None):
    """True when the user holds the role directly on the project.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.role_grant_check <project_id> <user_id> <role_id> cloud=admin
    """
    return role_id in _direct_roles(_conn(auth, cloud), project_id, user_id)


def role_grant(project_id, user_id, role_id, auth=None, cloud=None):
    """Grant the role to the user on the project.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.role_grant <project_id> <user_id> <role_id> cloud=admin
    """
    conn = _conn(auth, cloud)
    conn.call("PUT", _grant_path(project_id, user_id, role_id))
    conn.cache.get(("grants", project_id, user_id), set()).add(role_id)
    return True


def role_revoke(project_id, user_id, role_id, auth=None, cloud=None):
    """Revoke the role from the user on the project (if held).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.role_revoke <project_id> <user_id> <role_id> cloud=admin
    """
    conn = _conn(auth, cloud)
    conn.call("DELETE", _grant_path(project_id, user_id, role_id), ok=(204, 404))
    conn.cache.get(("grants", project_id, user_id), set()).discard(role_id)
    return True


# --------------------------------------------------------------------------
# services, regions, endpoints
# --------------------------------------------------------------------------
def service_list(name, service_type=None, auth=None, cloud=None):
    """Services named ``name`` (of ``service_type`` when given).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.service_list nova service_type=compute cloud=admin
    """
    conn = _conn(auth, cloud)

    def fetch():
        # The whole catalog's services, once per run: a run that checks
        # several services (compute, placement...) asks once, and a cloud has
        # tens of services, not thousands.
        return conn.call("GET", "/services")[1]["services"]

    found = [s for s in _cached_get(conn, ("services",), fetch) if s.get("name") == name]
    if service_type:
        found = [s for s in found if s.get("type") == service_type]
    return list(found)


def service_create(name, service_type, description=None, auth=None, cloud=None):
    """Create the catalog service ``name`` of ``service_type``.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.service_create nova compute description='OpenStack Compute' cloud=admin
    """
    conn = _conn(auth, cloud)
    body = {"name": name, "type": service_type, "enabled": True}
    if description is not None:
        body["description"] = description
    _, data = conn.call("POST", "/services", {"service": body})
    if ("services",) in conn.cache:
        conn.cache[("services",)] = conn.cache[("services",)] + [data["service"]]
    return data["service"]


def service_update(service_id, fields, auth=None, cloud=None):
    """PATCH the service with ``fields``; the record.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.service_update 0123abcd '{enabled: true}' cloud=admin
    """
    conn, rec = _patch("service", service_id, fields, auth, cloud)
    conn.cache.pop(("services",), None)
    return rec


def service_delete(service_id, auth=None, cloud=None):
    """Delete the service (its endpoints go with it).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.service_delete 0123abcd cloud=admin
    """
    return _delete("service", service_id, auth, cloud, lambda key, _: key[0] == "services")


def region_exists(region, auth=None, cloud=None):
    """True when region ``region`` exists.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.region_exists RegionOne cloud=admin
    """
    conn = _conn(auth, cloud)
    status, _ = conn.call("GET", f"/regions/{_q(region)}", ok=(200, 404))
    return status == 200


def region_create(region, auth=None, cloud=None):
    """Create region ``region``.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.region_create RegionTwo cloud=admin
    """
    _, data = _conn(auth, cloud).call("POST", "/regions", {"region": {"id": region}})
    return data["region"]


def region_delete(region, auth=None, cloud=None):
    """Delete region ``region`` (a missing one is fine).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.region_delete RegionTwo cloud=admin
    """
    return _delete("region", region, auth, cloud)


def endpoint_list(service_id, region=None, interface=None, auth=None, cloud=None):
    """Endpoints of a service, filtered by Keystone on region and interface.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.endpoint_list 0123abcd region=RegionOne interface=public cloud=admin
    """
    conn = _conn(auth, cloud)
    # The region's endpoints (Keystone filters on the region), once per run and
    # region, the service picked here: a run that checks several services in
    # one region asks once; the writes below keep the list current.
    params = {"region_id": region} if region else None
    found = _cached_get(conn, ("endpoints", region),
                        lambda: conn.call("GET", "/endpoints", params=params)[1]["endpoints"])
    # Re-check the region too: a filter Keystone does not know is silently ignored.
    return [dict(e) for e in found
            if e.get("service_id") == service_id
            and (not region or e.get("region_id") == region)
            and (not interface or e.get("interface") == interface)]


def endpoint_create(service_id, interface, url, region, auth=None, cloud=None):
    """Create an endpoint of the service.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.endpoint_create 0123abcd public http://ctl:8774/v2.1 RegionOne cloud=admin
    """
    body = {"service_id": service_id, "interface": interface, "url": url,
            "region_id": region, "enabled": True}
    conn = _conn(auth, cloud)
    _, data = conn.call("POST", "/endpoints", {"endpoint": body})
    for key in (("endpoints", region), ("endpoints", None)):
        if key in conn.cache:
            conn.cache[key] = conn.cache[key] + [data["endpoint"]]
    return data["endpoint"]


def endpoint_update(endpoint_id, fields, auth=None, cloud=None):
    """PATCH the endpoint with ``fields``; the record.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.endpoint_update 0123abcd '{url: http://ctl:8774/v2.1}' cloud=admin
    """
    conn, rec = _patch("endpoint", endpoint_id, fields, auth, cloud)
    conn.cache = {k: v for k, v in conn.cache.items() if k[0] != "endpoints"}
    return rec


def endpoint_delete(endpoint_id, auth=None, cloud=None):
    """Delete the endpoint (a missing one is fine).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_keystone.endpoint_delete 0123abcd cloud=admin
    """
    return _delete("endpoint", endpoint_id, auth, cloud, lambda key, _: key[0] == "endpoints")
