"""Keystone identity records (Identity API v3), idempotent.

Records are found by name (and domain), created when missing, updated in place
when they differ, never duplicated. A user's password is verified by
authenticating as the user and set only when that fails. ``endpoints_present``
manages one service's public/internal/admin URLs in one region, updating an
endpoint in place (its id is kept) and removing duplicates that other tools
left; interfaces it is not given and other services are never touched.

Every state takes ``auth`` (a dict of admin credentials) or ``cloud`` (a
clouds.yaml cloud name); without either, ``openstack_keystone:auth`` or
``openstack_keystone:cloud`` from pillar/config is used. Passwords never appear
in changes or comments: they show as ``********``.
"""
import logging
import re

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "openstack_keystone"

def __virtual__():
    if "openstack_keystone.project_get" in __salt__:
        return __virtualname__
    return (False, "openstack_keystone: the execution module is not loaded "
                   "(it needs the keystoneauth1 Python package)")


def _invalid(text):
    return __utils__["openstack_state.invalid"](text)


def _ks(fun, *args, **kwargs):
    return __salt__[f"openstack_keystone.{fun}"](*args, **kwargs)


def _run(name, body):
    """Call a state body; turn any error into a failed state, no traceback."""
    ret = __utils__["openstack_state.new_ret"](name)
    with __utils__["openstack_state.guard_state"](ret, __opts__["test"], globals()):
        body(ret)
    return ret


def _change(ret, changes, what, verb, act):
    """Report ``changes`` of ``what``; unless testing, ``act()`` them."""
    if __utils__["openstack_state.change"](ret, changes, __opts__["test"], f"{what} would be {verb}",
                                           f"{what} {verb}") and act is not None:
        act()


def _masked():
    return __utils__["openstack_state.mask_text"]()


# --------------------------------------------------------------------------
# projects
# --------------------------------------------------------------------------
def project_present(name, domain="Default", description=None, enabled=True,
                    auth=None, cloud=None):
    """A project ``name`` in ``domain`` (its description set when given)."""
    def body(ret):
        __utils__["openstack_state.need_str"](name, "name")
        __utils__["openstack_state.need_str"](domain, "domain")
        __utils__["openstack_state.need_text"](description, "description")
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        what = f"project '{name}' in domain '{domain}'"
        rec = _ks("project_get", name, domain, **ka)
        if rec is None:
            return _change(ret, {"project": {"old": None, "new": name}}, what, "created",
                    lambda: _ks("project_create", name, domain, description, enabled, **ka))
        fields = {}
        if description is not None and rec.get("description", "") != description:
            fields["description"] = description
        if bool(rec.get("enabled", True)) != bool(enabled):
            fields["enabled"] = bool(enabled)
        if not fields:
            ret["comment"] = f"{what} is in the correct state"
            return
        _change(ret, {k: {"old": rec.get(k), "new": v} for k, v in fields.items()}, what, "updated",
                lambda: _ks("project_update", rec["id"], fields, **ka))
    return _run(name, body)


def project_absent(name, domain="Default", auth=None, cloud=None):
    return _domain_record_absent("project", name, domain, auth, cloud)


def _domain_record_absent(kind, name, domain, auth, cloud):
    """Delete the ``kind`` (project or user) ``name`` of ``domain`` if it exists."""
    def body(ret):
        __utils__["openstack_state.need_str"](name, "name")
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        what = f"{kind} '{name}' in domain '{domain}'"
        rec = _absent_lookup(f"{kind}_get", name, domain, ka)
        if rec is None:
            ret["comment"] = f"{what} is already absent"
            return
        _change(ret, {kind: {"old": name, "new": None}}, what, "deleted",
                lambda: _ks(f"{kind}_delete", rec["id"], **ka))
    return _run(name, body)


def _absent_lookup(fun, name, domain, ka):
    """Lookup for an _absent state: a missing domain means the record is absent."""
    try:
        return _ks(fun, name, domain, **ka)
    except CommandExecutionError as exc:
        if re.match(r"domain '.*' does not exist", str(exc)):
            return None
        raise


# --------------------------------------------------------------------------
# users
# --------------------------------------------------------------------------
def user_present(name, password, domain="Default", default_project=None, email=None,
                 enabled=True, default_project_domain=None, auth=None, cloud=None):
    """A user with ``password``; the password is checked by authenticating as the user."""
    def body(ret):
        __utils__["openstack_state.need_str"](name, "name")
        __utils__["openstack_state.need_str"](password, "password", hint=" (quote it in pillar)")
        __utils__["openstack_state.need_str"](domain, "domain")
        __utils__["openstack_state.need_str"](default_project, "default_project", allow_none=True)
        __utils__["openstack_state.need_str"](email, "email", allow_none=True)
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        what = f"user '{name}' in domain '{domain}'"
        project_id = None
        if default_project:
            pdomain = default_project_domain or domain
            project = _ks("project_get", default_project, pdomain, **ka)
            if project is None:
                if not __opts__["test"]:
                    raise _invalid(f"default_project '{default_project}' does not exist "
                                   f"in domain '{pdomain}'")
                project_id = f"<project {default_project}>"  # created earlier in a real run
            else:
                project_id = project["id"]
        auth_ok = None  # None: not tried
        if enabled and email is None:
            # One authentication checks the password, that the user exists and is
            # enabled, and (its token's project scope) the default project.
            ref = _ks("user_authenticate", name, password, domain, **ka)
            if ref is not None and (default_project is None or ref["project_id"] == project_id):
                ret["comment"] = f"{what} is in the correct state"
                return
            auth_ok = ref is not None
        rec = _ks("user_get", name, domain, **ka)
        if rec is None:
            return _change(ret, {"user": {"old": None, "new": name}, "password": _masked()},
                           what, "created",
                           lambda: _ks("user_create", name, password, domain, project_id, email,
                                       enabled, **ka))
        fields = {}
        if project_id and rec.get("default_project_id") != project_id:
            fields["default_project_id"] = project_id
        if email is not None and rec.get("email") != email:
            fields["email"] = email
        if bool(rec.get("enabled", True)) != bool(enabled):
            fields["enabled"] = bool(enabled)
        changes = {k: {"old": rec.get(k), "new": v} for k, v in fields.items()}
        if "default_project_id" in changes:
            changes["default_project_id"]["new"] = default_project
        if not rec.get("enabled", True) and enabled:
            # A disabled user cannot authenticate: enable first, then check.
            if __opts__["test"]:
                changes["password"] = "unverified (user is disabled)"
            else:
                _ks("user_update", rec["id"], fields, **ka)
                fields = {}
        # A disabled user cannot log in, so its password is only checked once enabled;
        # a failed login of an enabled user above needs no second try.
        if "password" not in changes and enabled and (
                (auth_ok is False and rec.get("enabled", True))
                or (not auth_ok and not _ks("user_check_password", rec["id"], password, **ka))):
            fields["password"] = password
            changes["password"] = _masked()
        ret["comment"] = f"{what} is in the correct state"
        _change(ret, changes, what, "updated",
                lambda: fields and _ks("user_update", rec["id"], fields, **ka))
    return _run(name, body)


def user_absent(name, domain="Default", auth=None, cloud=None):
    return _domain_record_absent("user", name, domain, auth, cloud)


# --------------------------------------------------------------------------
# roles and grants
# --------------------------------------------------------------------------
def role_present(name, auth=None, cloud=None):
    def body(ret):
        __utils__["openstack_state.need_str"](name, "name")
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        if _ks("role_get", name, **ka) is not None:
            ret["comment"] = f"role '{name}' is in the correct state"
            return
        _change(ret, {"role": {"old": None, "new": name}}, f"role '{name}'", "created",
                lambda: _ks("role_create", name, **ka))
    return _run(name, body)


def role_absent(name, auth=None, cloud=None):
    def body(ret):
        __utils__["openstack_state.need_str"](name, "name")
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        rec = _ks("role_get", name, **ka)
        if rec is None:
            ret["comment"] = f"role '{name}' is already absent"
            return
        _change(ret, {"role": {"old": name, "new": None}}, f"role '{name}'", "deleted",
                lambda: _ks("role_delete", rec["id"], **ka))
    return _run(name, body)


def _grant_ids(name, user, project, user_domain, project_domain, ka, absent):
    """(project, user, role) records; a missing one fails (or means absent/pending)."""
    for value, arg in ((name, "name"), (user, "user"), (project, "project"),
                       (user_domain, "user_domain"), (project_domain, "project_domain")):
        __utils__["openstack_state.need_str"](value, arg)
    lookup = _absent_lookup if absent else (lambda f, n, d, k: _ks(f, n, d, **k))
    recs = {
        "role": (_ks("role_get", name, **ka), f"role '{name}'"),
        "user": (lookup("user_ref", user, user_domain, ka),
                 f"user '{user}' in domain '{user_domain}'"),
        "project": (lookup("project_get", project, project_domain, ka),
                    f"project '{project}' in domain '{project_domain}'"),
    }
    missing = [label for rec, label in recs.values() if rec is None]
    return {k: v[0] for k, v in recs.items()}, missing


def _grant(name, user, project, user_domain, project_domain, ka, absent):
    """(description, (project_id, user_id, role_id) or None, missing record labels)."""
    what = f"role '{name}' for user '{user}' on project '{project}'"
    recs, missing = _grant_ids(name, user, project, user_domain, project_domain, ka, absent)
    ids = None if missing else (recs["project"]["id"], recs["user"]["id"], recs["role"]["id"])
    return what, ids, missing


def role_grant_present(name, user, project, user_domain="Default",
                       project_domain="Default", auth=None, cloud=None):
    """Role ``name`` for ``user`` on ``project``."""
    def body(ret):
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        what, ids, missing = _grant(name, user, project, user_domain, project_domain, ka,
                                    absent=False)
        if missing:
            if __opts__["test"]:
                # In a test run the records may be pending in earlier states.
                return _change(ret, {"grant": {"old": None, "new": what}}, what,
                               f"granted once {' and '.join(missing)} exist", None)
            ret["result"] = False
            ret["comment"] = f"cannot grant {what}: {' and '.join(missing)} does not exist"
            return
        if _ks("role_grant_check", *ids, **ka):
            ret["comment"] = f"{what} is already granted"
            return
        _change(ret, {"grant": {"old": None, "new": what}}, what, "granted",
                lambda: _ks("role_grant", *ids, **ka))
    return _run(name, body)


def role_grant_absent(name, user, project, user_domain="Default",
                      project_domain="Default", auth=None, cloud=None):
    def body(ret):
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        what, ids, missing = _grant(name, user, project, user_domain, project_domain, ka,
                                    absent=True)
        if missing:
            ret["comment"] = f"{what} is already absent ({' and '.join(missing)} does not exist)"
            return
        if not _ks("role_grant_check", *ids, **ka):
            ret["comment"] = f"{what} is already absent"
            return
        _change(ret, {"grant": {"old": what, "new": None}}, what, "revoked",
                lambda: _ks("role_revoke", *ids, **ka))
    return _run(name, body)


# --------------------------------------------------------------------------
# services
# --------------------------------------------------------------------------
def service_present(name, type, description=None, enabled=True,  # pylint: disable=redefined-builtin
                    auth=None, cloud=None):
    """A service ``name`` of ``type``; a same-named service of another type is retyped."""
    service_type = type

    def body(ret):
        __utils__["openstack_state.need_str"](name, "name")
        __utils__["openstack_state.need_str"](service_type, "type")
        __utils__["openstack_state.need_text"](description, "description")
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        what = f"service '{name}' (type {service_type})"
        found = _ks("service_list", name, **ka)
        same = [s for s in found if s.get("type") == service_type]
        if same:
            rec = same[0]
        elif len(found) == 1:
            rec = found[0]
        elif not found:
            return _change(ret, {"service": {"old": None, "new": name}}, what, "created",
                    lambda: _ks("service_create", name, service_type, description, **ka))
        else:
            raise _invalid(f"several services are named '{name}', none of type "
                           f"{service_type}: remove the extra ones first")
        fields = {}
        if rec.get("type") != service_type:
            fields["type"] = service_type
        if description is not None and rec.get("description", "") != description:
            fields["description"] = description
        if bool(rec.get("enabled", True)) != bool(enabled):
            fields["enabled"] = bool(enabled)
        if len(same) > 1:
            ret["warnings"] = [f"{len(same)} services named '{name}' of type {service_type} "
                               f"exist; managing {rec['id']}"]
        if not fields:
            ret["comment"] = f"{what} is in the correct state"
            return
        _change(ret, {k: {"old": rec.get(k), "new": v} for k, v in fields.items()}, what, "updated",
                lambda: _ks("service_update", rec["id"], fields, **ka))
    return _run(name, body)


def service_absent(name, type=None, auth=None, cloud=None):  # pylint: disable=redefined-builtin
    """No service ``name`` (of ``type`` when given); its endpoints go with it."""
    def body(ret):
        __utils__["openstack_state.need_str"](name, "name")
        __utils__["openstack_state.need_str"](type, "type", allow_none=True)
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        found = _ks("service_list", name, type, **ka)
        if not found:
            ret["comment"] = f"service '{name}' is already absent"
            return
        def act():
            for rec in found:
                _ks("service_delete", rec["id"], **ka)

        _change(ret, {"service": {"old": [s["id"] for s in found], "new": None}},
                f"service '{name}'", "deleted", act)
    return _run(name, body)


# --------------------------------------------------------------------------
# endpoints
# --------------------------------------------------------------------------
def _mask_url(url):
    return __utils__["openstack_state.mask_url"](url)


def _one_service(name, service_type, ka):
    found = _ks("service_list", name, service_type, **ka)
    if len(found) > 1:
        raise _invalid(f"{len(found)} services are named '{name}'"
                       + ("" if service_type else ": pass service_type to choose one"))
    return found[0] if found else None


def _plan_endpoints(existing, wanted):
    """Per interface: keep one endpoint (URL fixed in place), delete the rest.

    Returns (updates [(endpoint, url)], creates [(interface, url)], deletes [endpoint]).
    """
    updates, creates, deletes = [], [], []
    for iface, url in wanted.items():
        mine = [e for e in existing if e.get("interface") == iface]
        if not mine:
            creates.append((iface, url))
            continue
        # Prefer one that already has the URL and is enabled: fewest writes.
        mine.sort(key=lambda e: (e.get("url") != url, not e.get("enabled", True)))
        keep, extra = mine[0], mine[1:]
        if keep.get("url") != url or not keep.get("enabled", True):
            updates.append((keep, url))
        deletes.extend(extra)
    return updates, creates, deletes


def endpoints_present(name, region="RegionOne", public=None, internal=None, admin=None,
                      service_type=None, auth=None, cloud=None):
    """Service ``name``'s public/internal/admin URLs in ``region``, one endpoint each.

    URLs are stored verbatim (``http://h:8774/v2/%(tenant_id)s`` and
    ``http://h:8774/v2.1`` alike). An interface given as None is left alone.
    """
    def body(ret):
        __utils__["openstack_state.need_str"](name, "name")
        __utils__["openstack_state.need_str"](region, "region")
        __utils__["openstack_state.need_str"](service_type, "service_type", allow_none=True)
        wanted = {}
        for iface, url in (("public", public), ("internal", internal), ("admin", admin)):
            if url is None:
                continue
            if not isinstance(url, str) or not re.match(r"https?://[^/\s]+", url):
                raise _invalid(f"{iface} must be an http(s) URL, got "
                               f"{_mask_url(url) if isinstance(url, str) else type(url).__name__}")
            wanted[iface] = url
        if not wanted:
            raise _invalid("give at least one of public, internal, admin")
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        service = _one_service(name, service_type, ka)
        what = f"endpoints of service '{name}' in region '{region}'"
        if service is None:
            if __opts__["test"]:
                return _change(ret, {i: {"old": None, "new": _mask_url(u)}
                                     for i, u in wanted.items()},
                               what, "created once the service exists", None)
            raise _invalid(f"service '{name}' does not exist: declare "
                           "openstack_keystone.service_present for it first")
        existing = _ks("endpoint_list", service["id"], region, **ka)
        updates, creates, deletes = _plan_endpoints(existing, wanted)
        if not (updates or creates or deletes):
            ret["comment"] = f"{what} are in the correct state"
            return
        changes = {}
        for rec, url in updates:
            changes[rec["interface"]] = {"old": _mask_url(rec.get("url")), "new": _mask_url(url),
                                         "id": rec["id"]}
        for iface, url in creates:
            changes[iface] = {"old": None, "new": _mask_url(url)}
        if deletes:
            # named for what the run does: nothing is removed in a test run
            key = "duplicates to remove" if __opts__["test"] else "duplicates removed"
            changes[key] = sorted(f"{e['interface']} {e['id']}" for e in deletes)

        def act():
            if creates and not existing and not _ks("region_exists", region, **ka):
                _ks("region_create", region, **ka)
                changes["region"] = {"old": None, "new": region}
            for rec in deletes:
                _ks("endpoint_delete", rec["id"], **ka)
            for rec, url in updates:
                _ks("endpoint_update", rec["id"], {"url": url, "enabled": True}, **ka)
            for iface, url in creates:
                _ks("endpoint_create", service["id"], iface, url, region, **ka)

        _change(ret, changes, what, "updated", act)
    return _run(name, body)


def endpoints_absent(name, region="RegionOne", service_type=None, auth=None, cloud=None):
    """No endpoint of service ``name`` in ``region`` (other regions are kept)."""
    def body(ret):
        __utils__["openstack_state.need_str"](name, "name")
        __utils__["openstack_state.need_str"](region, "region")
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        what = f"endpoints of service '{name}' in region '{region}'"
        service = _one_service(name, service_type, ka)
        existing = _ks("endpoint_list", service["id"], region, **ka) if service else []
        if not existing:
            ret["comment"] = f"{what} are already absent"
            return
        def act():
            for rec in existing:
                _ks("endpoint_delete", rec["id"], **ka)

        _change(ret, {"deleted": sorted(f"{e['interface']} {e['id']}" for e in existing)},
                what, "deleted", act)
    return _run(name, body)
