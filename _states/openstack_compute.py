"""Nova Compute API day-2 operations, idempotent: a host's nova-compute
service disabled or enabled, a host drained (its servers moved away) or
decommissioned (its service record deleted), host aggregates present or absent.

Each state compares first and writes only what differs: a second run sends no
write request. With ``test=True`` the changes it would make are reported
exactly (for a drain: which servers would move live and which cold) and no
write is sent. Every state takes ``auth`` (a dict of admin credentials) or
``cloud`` (a clouds.yaml name); without either, ``openstack_compute:auth`` /
``:cloud``, then ``openstack_keystone:auth`` / ``:cloud`` from pillar/config.
``name`` is the host (or the aggregate); ``host`` overrides it so that state
ids can say what they do.
"""
import time

__virtualname__ = "openstack_compute"

DEFAULT_REASON = "drained by Salt (openstack_compute.host_drained)"


def __virtual__():
    if "openstack_compute.compute_service" in __salt__:
        return __virtualname__
    return (False, "openstack_compute: the execution module is not loaded "
                   "(it needs the keystoneauth1 Python package)")


def _invalid(text):
    return __utils__["openstack_state.invalid"](text)


def _writes(*steps):
    """Run the ``(what, fun)`` steps in order; a failure after some of them
    is reported with those, so the state says what it did change."""
    done = []
    for what, fun in steps:
        try:
            fun()
        except Exception as exc:
            if done:
                raise __utils__["openstack_state.partial"](exc, done) from None
            raise
        done.append(what)


def _nc(fun, *args, **kwargs):
    return __salt__[f"openstack_compute.{fun}"](*args, **kwargs)


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


def _host_args(name, host, auth, cloud):
    host = name if host is None else host
    __utils__["openstack_state.need_str"](host, "host")
    return host, __utils__["openstack_state.auth_args"](auth, cloud)


def _service(host, ka):
    service = _nc("compute_service", host, **ka)
    if service is None:
        raise _invalid(f"no nova-compute service is registered for host '{host}'")
    return service


def _listed(items):
    # All of them: the operator acts on each one named.
    return ", ".join(items)


# --------------------------------------------------------------------------
# the nova-compute service
# --------------------------------------------------------------------------
def service_disabled(name, reason=None, host=None, auth=None, cloud=None):
    """The nova-compute service of ``host`` (default: ``name``) disabled, with
    ``reason`` when given (else any reason it has is kept)."""
    def body(ret):
        __utils__["openstack_state.need_str"](reason, "reason", allow_none=True)
        hst, ka = _host_args(name, host, auth, cloud)
        service = _service(hst, ka)
        changes = _disable_changes(service, reason)
        what = f"nova-compute service of host '{hst}'"
        ret["comment"] = f"{what} is disabled" + (
            f" ({service['disabled_reason']})" if service.get("disabled_reason") else "")
        _change(ret, changes, what, "disabled",
                lambda: _nc("service_disable", hst, reason or service.get("disabled_reason"),
                            **ka))
    return _run(name, body)


def _disable_changes(service, reason):
    changes = {}
    if service["status"] != "disabled":
        changes["status"] = {"old": service["status"], "new": "disabled"}
    if reason is not None and service.get("disabled_reason") != reason:
        changes["disabled_reason"] = {"old": service.get("disabled_reason"), "new": reason}
    return changes


def service_enabled(name, host=None, auth=None, cloud=None):
    """The nova-compute service of ``host`` (default: ``name``) enabled."""
    def body(ret):
        hst, ka = _host_args(name, host, auth, cloud)
        service = _service(hst, ka)
        what = f"nova-compute service of host '{hst}'"
        ret["comment"] = f"{what} is enabled"
        changes = {}
        if service["status"] != "enabled":
            changes["status"] = {"old": service["status"], "new": "enabled"}
            if service.get("disabled_reason"):  # Nova clears it on enable
                changes["disabled_reason"] = {"old": service["disabled_reason"], "new": None}
        _change(ret, changes, what, "enabled", lambda: _nc("service_enable", hst, **ka))
    return _run(name, body)


# --------------------------------------------------------------------------
# draining a host
# --------------------------------------------------------------------------
def host_drained(name, host=None, reason=None, timeout=1800, poll_interval=5,
                 cold_migration=True, missing_ok=False, auth=None, cloud=None):
    """No instance left on ``host`` (default: ``name``): its nova-compute
    service is disabled first (with ``reason``; default: the reason it
    already has, else one naming this state), then the servers of every
    project are live-migrated (scheduler's choice of host, block migration
    auto); a server Nova refuses to live-migrate (HTTP 400/409, or the
    migration fails) is cold-migrated and confirmed, unless
    ``cold_migration`` is False. Cold migrations away from the host waiting
    in VERIFY_RESIZE are confirmed. At most ``timeout`` seconds, polling
    every ``poll_interval``; the failure comment names every instance left
    and why. ``missing_ok``: a host without a nova-compute service (already
    decommissioned) is drained too, not an error."""
    def body(ret):
        __utils__["openstack_state.need_str"](reason, "reason", allow_none=True)
        for value, arg in ((timeout, "timeout"), (poll_interval, "poll_interval")):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise _invalid(f"{arg} must be a number of seconds > 0")
        hst, ka = _host_args(name, host, auth, cloud)
        if missing_ok and _nc("compute_service", hst, **ka) is None:
            ret["comment"] = f"host '{hst}' has no nova-compute service: nothing to drain"
            return
        service = _service(hst, ka)
        plan = _nc("drain_plan", hst, bool(cold_migration), **ka)
        why = reason or service.get("disabled_reason") or DEFAULT_REASON
        changes = {}
        if _disable_changes(service, reason):
            changes["service"] = {"old": _service_text(service), "new": f"disabled ({why})"}
        for key, field in (("live migration", "live"), ("cold migration", "cold"),
                           ("confirm resize", "confirm")):
            if plan[field]:
                changes[key] = plan[field]
        what = f"host '{hst}'"
        if not (changes or plan["busy"] or plan["stuck"]):
            ret["comment"] = f"{what} is drained: no instance on it, nova-compute disabled ({why})"
            return
        if __opts__["test"]:
            notes = [f"busy, waited for: {_pairs(plan['busy'])}"] if plan["busy"] else []
            if plan["stuck"]:
                notes.append(f"cannot be moved: {_pairs(plan['stuck'])}")
            ret.update(result=None if changes or plan["busy"] else False, changes=changes,
                       comment=f"{what} would be drained" if changes or plan["busy"]
                       else f"{what} cannot be drained")
            ret["comment"] += f" ({'; '.join(notes)})" if notes else ""
            return
        steps = []
        if "service" in changes:
            steps.append((f"disabled nova-compute ({why})",
                          lambda: _nc("service_disable", hst, why, **ka)))
            ret["changes"]["service"] = changes["service"]
        moving = plan["live"] or plan["cold"] or plan["confirm"] or plan["busy"]
        if moving:
            steps.append(("drain", lambda: _drain(ret, hst, what, ka, timeout, poll_interval,
                                                  cold_migration)))
        _writes(*steps)
        if moving:
            return
        if plan["stuck"]:  # nothing to send: the servers left are known already
            ret.update(result=False, comment=f"{what} is not drained: {len(plan['stuck'])} "
                       f"instance(s) cannot be moved: {_pairs(plan['stuck'])}")
        else:
            ret["comment"] = f"{what} drained: no instance on it, nova-compute disabled ({why})"
    return _run(name, body)


def _service_text(service):
    reason = service.get("disabled_reason")
    return service["status"] + (f" ({reason})" if reason else "")


def _pairs(mapping):
    return _listed(f"{k}: {v}" for k, v in sorted(mapping.items()))


def _drain(ret, host, what, ka, timeout, poll_interval, cold_migration):
    done = _nc("drain", host, timeout=timeout, poll_interval=poll_interval,
               cold_migration=bool(cold_migration), **ka)
    for key, moved in (("live migration", done["moved"]["live"]),
                       ("cold migration", done["moved"]["cold"]),
                       ("confirm resize", done["confirmed"])):
        if moved:
            ret["changes"][key] = moved
    counts = (f"{len(done['moved']['live'])} live-migrated, {len(done['moved']['cold'])} "
              f"cold-migrated, {len(done['confirmed'])} confirmed"
              + (f", {len(done['gone'])} gone meanwhile" if done["gone"] else "")
              + f" in {done['seconds']:g} s")
    if done["left"]:
        ret["result"] = False
        ret["comment"] = (f"{what} is not drained"
                          + (f" (timed out after {float(timeout):g} s)" if done["timed_out"] else "")
                          + f": {len(done['left'])} instance(s) left: {_pairs(done['left'])} "
                          f"({counts})")
    else:
        ret["comment"] = f"{what} drained ({counts})"


# --------------------------------------------------------------------------
# decommissioning a host
# --------------------------------------------------------------------------
def host_decommissioned(name, host=None, require_down=True, wait_down=0, auth=None,
                        cloud=None):
    """No nova-compute service record for ``host`` (default: ``name``).
    Refused while instances remain on it (named), and, with
    ``require_down``, while its nova-compute still reports up (stop it first:
    a running one registers again). Nova 26.x's delete also removes the host
    from its aggregates, its compute nodes' Placement provider trees and its
    host mapping; a provider tree nova-api failed to delete (it only logs
    that) is then deleted through Placement. An absent service is done.
    ``wait_down``: seconds to wait for a stopped nova-compute to be reported
    down (the service list asked again every 10 s; Salt's ``retry`` would
    see the run's cached list)."""
    def body(ret):
        hst, ka = _host_args(name, host, auth, cloud)
        what = f"nova-compute service of host '{hst}'"
        service = _nc("compute_service", hst, **ka)
        if service is None:
            ret["comment"] = f"{what} is absent: the host is decommissioned"
            return
        servers = _nc("servers_on_host", hst, **ka)
        if servers:
            labels = [f"{s['name']} ({s['id']})" for s in servers]
            raise _invalid(f"cannot decommission host '{hst}': {len(servers)} instance(s) still "
                           f"on it: {_listed(labels)}; drain it first "
                           "(openstack_compute.host_drained)")
        deadline = time.monotonic() + (wait_down or 0)
        while (require_down and service.get("state") == "up" and not __opts__["test"]
               and time.monotonic() < deadline):
            time.sleep(min(10, max(wait_down, 0.01)))
            service = _nc("compute_service", hst, refresh=True, **ka) or service
        if require_down and service.get("state") == "up":
            raise _invalid(f"cannot decommission host '{hst}': its nova-compute is still up "
                           f"(last report {service.get('updated_at')}); stop it first (Nova "
                           "reports it down after service_down_time, 60 s by default)")
        nodes = _nc("compute_nodes", hst, **ka)
        in_aggregates = sorted(a["name"] for a in _nc("aggregates", **ka).values()
                               if hst in a["hosts"])
        changes = {"service": {"old": f"{service['id']} ({_service_text(service)})", "new": None}}
        if nodes:
            changes["compute nodes"] = {"old": sorted(f"{n['hypervisor_hostname']} ({n['id']})"
                                                      for n in nodes), "new": None}
        if in_aggregates:
            changes["aggregates"] = {"old": in_aggregates, "new": []}

        def act():
            removed, in_use = [], {}

            def leftovers():
                for node in nodes:
                    leftover = _nc("provider_tree_delete", node["id"], **ka)
                    removed.extend(leftover["removed"])
                    in_use.update(leftover["in_use"])
            _writes(("deleted the nova-compute service", lambda: _nc("service_delete", hst, **ka)),
                    ("checked Placement", leftovers))
            if removed:
                ret["changes"]["placement providers removed"] = removed
            if in_use:
                ret["result"] = False
                ret["comment"] = (f"{what} deleted, but Placement keeps provider(s) with "
                                  f"allocations: {_pairs({k: ', '.join(v) for k, v in in_use.items()})}")

        _change(ret, changes, what, "deleted", act)
    return _run(name, body)


# --------------------------------------------------------------------------
# host aggregates
# --------------------------------------------------------------------------
def _metadata_value(key, value):
    if isinstance(value, bool):  # YAML true/false: Nova stores strings
        return "true" if value else "false"
    if value is None or isinstance(value, (str, int, float)):
        return None if value is None else str(value)
    raise _invalid(f"metadata value of {key!r} must be a string, number, boolean or null")


def _aggregate_input(name, availability_zone, hosts, metadata):
    __utils__["openstack_state.need_str"](name, "name")
    if availability_zone is not None and not isinstance(availability_zone, str):
        raise _invalid("availability_zone must be a string ('' for none)")
    if hosts is not None and (not isinstance(hosts, (list, tuple)) or not all(
            isinstance(h, str) and h.strip() for h in hosts)):
        raise _invalid("hosts must be a list of host names")
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and k for k in metadata):
        raise _invalid("metadata must be a mapping of keys to values")
    if "availability_zone" in metadata:
        raise _invalid("set the zone with availability_zone, not in metadata")
    wanted = {k: _metadata_value(k, v) for k, v in metadata.items()}
    return {k: v for k, v in wanted.items() if v is not None}


def _aggregate_changes(agg, availability_zone, hosts, wanted_meta):
    """The changes of an aggregate (None: to create); (changes, add, remove, meta)."""
    current = agg or {"availability_zone": None, "hosts": [], "metadata": {}}
    changes = {} if agg else {"aggregate": {"old": None, "new": None}}
    if availability_zone == "" and current["availability_zone"]:
        raise _invalid(f"aggregate '{agg['name']}' is in availability zone "
                       f"'{current['availability_zone']}', and Nova 26.x refuses to take a zone "
                       "away (an empty one): remove the aggregate (aggregate_absent) and "
                       "create it again")
    if availability_zone is not None and current["availability_zone"] != (availability_zone or None):
        changes["availability_zone"] = {"old": current["availability_zone"],
                                        "new": availability_zone or None}
    add, remove = [], []
    if hosts is not None and set(hosts) != set(current["hosts"]):
        add = sorted(set(hosts) - set(current["hosts"]))
        remove = sorted(set(current["hosts"]) - set(hosts))
        changes["hosts"] = {"old": sorted(current["hosts"]), "new": sorted(set(hosts))}
    meta = {}
    if wanted_meta is not None:
        have = {k: v for k, v in current["metadata"].items() if k != "availability_zone"}
        meta = {k: v for k, v in wanted_meta.items() if have.get(k) != v}
        meta.update({k: None for k in have if k not in wanted_meta})
        if meta:
            changes["metadata"] = {"old": {k: have.get(k) for k in sorted(meta)},
                                   "new": {k: meta[k] for k in sorted(meta)}}
    return changes, add, remove, meta


def aggregate_present(name, availability_zone=None, hosts=None, metadata=None,
                      auth=None, cloud=None):
    """The host aggregate ``name``. Each argument left out (None) is left
    alone; given, it is the whole truth: ``availability_zone`` ('' for none:
    Nova 26.x cannot take a zone away, so that fails on an aggregate in one),
    ``hosts`` (hosts not listed are removed from the aggregate; each must have
    a nova-compute service), ``metadata`` (keys not listed are removed, the
    zone's own key aside; values are stored as strings, booleans as
    ``true``/``false``)."""
    def body(ret):
        wanted_meta = _aggregate_input(name, availability_zone, hosts, metadata)
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        what = f"aggregate '{name}'"
        agg = _nc("aggregate_get", name, **ka)
        changes, add, remove, meta = _aggregate_changes(agg, availability_zone, hosts,
                                                        wanted_meta)
        if add:
            services = _nc("compute_services", **ka)
            unknown = [h for h in add if h not in services]
            if unknown:
                raise _invalid(f"cannot add host(s) {', '.join(unknown)} to {what}: no "
                               "nova-compute service is registered for them")
        if "aggregate" in changes:
            changes["aggregate"]["new"] = name
        ret["comment"] = f"{what} is in the correct state"

        def act():
            ref = {"id": agg["id"] if agg else None}
            steps = []
            if agg is None:
                steps.append(("created", lambda: ref.update(id=_nc(
                    "aggregate_create", name, availability_zone or None, **ka)["id"])))
            steps += [(f"removed host {h}", lambda h=h: _nc("aggregate_remove_host", ref["id"],
                                                             h, **ka)) for h in remove]
            if agg and "availability_zone" in changes:
                steps.append((f"set availability zone {availability_zone}",
                              lambda: _nc("aggregate_set_zone", ref["id"], availability_zone,
                                          **ka)))
            steps += [(f"added host {h}", lambda h=h: _nc("aggregate_add_host", ref["id"], h,
                                                           **ka)) for h in add]
            if meta:
                steps.append(("set metadata",
                              lambda: _nc("aggregate_set_metadata", ref["id"], meta, **ka)))
            _writes(*steps)

        _change(ret, changes, what, "created" if agg is None else "updated", act)
    return _run(name, body)


def aggregate_hosts_left(name, hosts, auth=None, cloud=None):
    """Every host not in ``hosts`` out of the aggregate ``name`` (nothing is
    added or created; a missing aggregate is fine). Run before the
    aggregates' ``aggregate_present`` so that a host moving between zones has
    left its old one when it joins the new one (Nova refuses a host in two)."""
    def body(ret):
        _aggregate_input(name, None, hosts, None)
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        what = f"aggregate '{name}'"
        agg = _nc("aggregate_get", name, **ka)
        ret["comment"] = f"{what} holds no host it should not"
        leaving = sorted(set(agg["hosts"]) - set(hosts)) if agg else []
        changes = {"hosts": {"old": agg["hosts"], "new": sorted(set(agg["hosts"]) - set(
            leaving))}} if leaving else {}

        def act():
            _writes(*[(f"removed host {h}", lambda h=h: _nc("aggregate_remove_host", agg["id"],
                                                             h, **ka)) for h in leaving])

        _change(ret, changes, f"{what}: host(s) {', '.join(leaving)}", "removed", act)
    return _run(name, body)


def aggregate_absent(name, auth=None, cloud=None):
    """No host aggregate ``name`` (its hosts are removed from it first, as Nova requires)."""
    def body(ret):
        __utils__["openstack_state.need_str"](name, "name")
        ka = __utils__["openstack_state.auth_args"](auth, cloud)
        what = f"aggregate '{name}'"
        agg = _nc("aggregate_get", name, **ka)
        if agg is None:
            ret["comment"] = f"{what} is already absent"
            return
        changes = {"aggregate": {"old": name, "new": None}}
        if agg["hosts"]:
            changes["hosts"] = {"old": agg["hosts"], "new": []}

        def act():
            _writes(*[(f"removed host {h}", lambda h=h: _nc("aggregate_remove_host", agg["id"],
                                                             h, **ka)) for h in agg["hosts"]],
                    ("deleted", lambda: _nc("aggregate_delete", agg["id"], **ka)))

        _change(ret, changes, what, "deleted", act)
    return _run(name, body)
