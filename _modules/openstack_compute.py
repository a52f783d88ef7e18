"""Nova Compute API day-2 operations over one keystoneauth1 Session: the
nova-compute service of a host (disable, enable, delete), moving a host's
servers away (live migration, else cold migration), host aggregates, and the
Placement resource providers a deleted compute could leave behind.

Credentials and the Session are the identity engine's
(``_utils/openstack_session.py``): ``auth`` (a dict), ``cloud`` (a clouds.yaml
name), else ``openstack_compute:auth`` / ``:cloud``, else
``openstack_keystone:auth`` / ``:cloud`` from config or pillar. One admin token
per run, whose answer carries the catalog (the Nova and Placement URLs cost no
request); lookups are cached for the run and updated by each write.

Microversions, pinned per call, each the oldest that has everything its call
needs (Zed, 26.x, serves compute 2.1-2.93 and placement 1.0-1.39), so a newer
Nova changes nothing under us:

- ``2.53`` os-services: service ids are UUIDs, ``PUT /os-services/{id}``
  takes ``status``/``disabled_reason``, ``DELETE`` by that id.
- ``2.25`` servers (list, actions): ``os-migrateLive`` with ``host: null``
  (the scheduler picks) and ``block_migration: "auto"`` and without the
  ``force`` flag 2.30-2.67 know; ``migrate``/``confirmResize`` take no body.
- ``2.59`` os-migrations: records carry their ``uuid``, come newest first and
  take ``limit``, so one call tells the state of every migration we started.
- ``2.41`` os-aggregates: records carry their ``uuid``.
- ``2.53`` os-hypervisors: a hypervisor's ``id`` is the compute node's UUID,
  which is its Placement resource provider's UUID.
- placement ``1.14``: ``in_tree`` lists a provider's whole tree, so a leftover
  tree is removed leaves first.

Every loop is bounded in requests and time: pages of a list (``MAX_PAGES``),
polls of a drain (``timeout`` / ``poll_interval``), and each request (60 s).
Nothing returned, raised or logged holds a password or a token.
"""
import time
import urllib.parse

from salt.exceptions import CommandExecutionError

__virtualname__ = "openstack_compute"

MV_SERVICES = "2.53"
MV_SERVERS = "2.25"
MV_MIGRATIONS = "2.59"
MV_AGGREGATES = "2.41"
MV_HYPERVISORS = "2.53"
MV_PLACEMENT = "1.14"

MAX_PAGES = 50
# Keys of the run's lookup cache, which the identity engine shares (its keys
# are tuples that start with a Keystone record kind).
_SERVICES, _AGGREGATES = ("nova", "services"), ("nova", "aggregates")
# Nova's check_instance_state: live_migrate takes vm_state active or paused,
# migrate (a resize to the same flavor) active or stopped; both need no task.
LIVE_STATUSES = ("ACTIVE", "PAUSED")
COLD_STATUSES = ("ACTIVE", "SHUTOFF")
LIVE_DONE, COLD_DONE = ("completed",), ("confirmed",)
FAILED = ("error", "failed", "cancelled", "reverted")


def __virtual__():
    if "openstack_session.installed" not in __utils__:
        return (False, "openstack_compute: the formula's _utils are not loaded "
                       "(run saltutil.sync_all)")
    if not __utils__["openstack_session.installed"]():
        return (False, "openstack_compute: the keystoneauth1 Python package "
                       "(and requests) is not installed")
    return __virtualname__


def _conn(auth=None, cloud=None):
    """The run's connection for these credentials (one token, one pool)."""
    return __utils__["openstack_session.module_connect"](
        auth, cloud, __salt__["config.get"], ("openstack_compute", "openstack_keystone"), __context__,
        __utils__["openstack_state.mask"],
        __utils__["openstack_tokens.store_for"](
            __opts__, __salt__["config.get"], __utils__["openstack_files.atomic_write"]))


def _nova(conn, method, path, microversion, **kwargs):
    return conn.call(method, path, service="compute", microversion=microversion, **kwargs)


def _placement(conn, method, path, **kwargs):
    return conn.call(method, path, service="placement", microversion=MV_PLACEMENT, **kwargs)


def _q(value):
    return urllib.parse.quote(str(value), safe="")


def _refusal(conn, status, data):
    """Nova's reason for refusing an action, as data: masked like an error."""
    return conn.clean(f"HTTP {status}: {__utils__['openstack_session.api_message'](data, 'refused')}")


def request_count():
    """HTTP requests sent so far in this run (Keystone, Nova, Placement).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.request_count
    """
    return __utils__["openstack_session.request_count"](__context__)


def _label(server):
    """How a server is named in comments: ``name (id)`` (names repeat)."""
    return f"{server.get('name')} ({server.get('id')})"


# --------------------------------------------------------------------------
# the nova-compute service of a host
# --------------------------------------------------------------------------
def compute_services(auth=None, cloud=None, refresh=False):
    """Every nova-compute service, by host: one list call, kept for the run
    (``refresh``: listed again).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.compute_services cloud=admin
    """
    conn = _conn(auth, cloud)
    if refresh or _SERVICES not in conn.cache:
        _, data = _nova(conn, "GET", "/os-services", MV_SERVICES,
                        params={"binary": "nova-compute"})
        conn.cache[_SERVICES] = {s["host"]: s for s in data["services"]
                                  if s.get("binary") == "nova-compute"}
    return dict(conn.cache[_SERVICES])


def compute_service(host, auth=None, cloud=None, refresh=False):
    """The nova-compute service of ``host`` (id, status, state, disabled_reason...), or None.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.compute_service cmp1 cloud=admin
    """
    return compute_services(auth, cloud, refresh).get(host)


def _service_put(host, body, auth, cloud):
    conn = _conn(auth, cloud)
    service = compute_service(host, auth, cloud)
    if service is None:
        raise CommandExecutionError(f"no nova-compute service is registered for host '{host}'")
    _, data = _nova(conn, "PUT", f"/os-services/{_q(service['id'])}", MV_SERVICES, body=body)
    record = dict(service, **data["service"])
    conn.cache[_SERVICES][host] = record
    return record


def service_disable(host, reason=None, auth=None, cloud=None):
    """Disable the nova-compute service of ``host`` (the scheduler skips it), with ``reason``.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.service_disable cmp1 reason='disk swap' cloud=admin
    """
    body = {"status": "disabled"}
    if reason:
        body["disabled_reason"] = reason
    return _service_put(host, body, auth, cloud)


def service_enable(host, auth=None, cloud=None):
    """Enable the nova-compute service of ``host`` (Nova clears its disabled reason).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.service_enable cmp1 cloud=admin
    """
    return _service_put(host, {"status": "enabled"}, auth, cloud)


def service_delete(host, auth=None, cloud=None):
    """Delete the nova-compute service record of ``host``. Nova 26.x refuses
    (HTTP 409) while instances or migrations use the host; else it removes the
    host from its aggregates, the compute nodes' Placement provider trees (a
    failure there is only logged by nova-api), the host mapping, the service
    and its compute nodes. True; False when there was no such service.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.service_delete cmp9 cloud=admin
    """
    conn = _conn(auth, cloud)
    service = compute_service(host, auth, cloud)
    if service is None:
        return False
    _nova(conn, "DELETE", f"/os-services/{_q(service['id'])}", MV_SERVICES, ok=(204, 404))
    conn.cache[_SERVICES].pop(host, None)
    conn.cache.pop(_AGGREGATES, None)  # Nova took the host out of its aggregates
    return True


# --------------------------------------------------------------------------
# servers on a host, migrations
# --------------------------------------------------------------------------
def _server(rec):
    return {"id": rec["id"], "name": rec.get("name"), "status": rec.get("status"),
            "task_state": rec.get("OS-EXT-STS:task_state"),
            "host": rec.get("OS-EXT-SRV-ATTR:host"), "project_id": rec.get("tenant_id")}


def servers_on_host(host, auth=None, cloud=None):
    """The servers of every project on ``host``: id, name, status, task_state.
    One list call per page of Nova's ``max_limit`` (1000).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.servers_on_host cmp1 cloud=admin
    """
    conn = _conn(auth, cloud)
    found, params = [], {"all_tenants": "1", "host": host}
    for _ in range(MAX_PAGES):
        _, data = _nova(conn, "GET", "/servers/detail", MV_SERVERS, params=params)
        page = data.get("servers") or []
        found.extend(_server(s) for s in page)
        if not page or not any(link.get("rel") == "next"
                               for link in data.get("servers_links") or []):
            break
        params = dict(params, marker=page[-1]["id"])
    else:
        raise CommandExecutionError(f"more than {MAX_PAGES} pages of servers on host '{host}'")
    # Nova's host filter is exact; checked again in case a policy widens it.
    return sorted((s for s in found if s["host"] in (host, None)),
                  key=lambda s: (str(s["name"]), s["id"]))


def migrations(host, limit=100, auth=None, cloud=None):
    """The newest ``limit`` migrations away from ``host``, newest first
    (uuid, instance_uuid, migration_type, status, dest_compute).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.migrations cmp1 limit=20 cloud=admin
    """
    conn = _conn(auth, cloud)
    _, data = _nova(conn, "GET", "/os-migrations", MV_MIGRATIONS,
                    params={"source_compute": host, "limit": int(limit)})
    keys = ("uuid", "instance_uuid", "migration_type", "status", "dest_compute")
    return [{k: m.get(k) for k in keys} for m in data["migrations"]
            if m.get("source_compute") in (host, None)]


def _action(server_id, body, auth, cloud, done=(202,)):
    """POST a server action; {accepted, reason}: a refusal (400, 404, 409) is data."""
    conn = _conn(auth, cloud)
    status, data = _nova(conn, "POST", f"/servers/{_q(server_id)}/action", MV_SERVERS,
                         body=body, ok=done + (400, 404, 409))
    if status in done:
        return {"accepted": True, "status": status, "reason": None}
    return {"accepted": False, "status": status, "reason": _refusal(conn, status, data)}


def server_live_migrate(server_id, auth=None, cloud=None):
    """Ask Nova to live-migrate the server: the scheduler picks the host, block
    migration when there is no shared storage. ``{accepted, status, reason}``.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.server_live_migrate 0123abcd cloud=admin
    """
    return _action(server_id, {"os-migrateLive": {"host": None, "block_migration": "auto"}},
                   auth, cloud)


def server_migrate(server_id, auth=None, cloud=None):
    """Ask Nova to cold-migrate the server (the scheduler picks the host; the
    server is stopped, moved and waits in VERIFY_RESIZE). ``{accepted, status, reason}``.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.server_migrate 0123abcd cloud=admin
    """
    return _action(server_id, {"migrate": None}, auth, cloud)


def server_confirm_resize(server_id, auth=None, cloud=None):
    """Confirm a finished cold migration (VERIFY_RESIZE). ``{accepted, status, reason}``.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.server_confirm_resize 0123abcd cloud=admin
    """
    return _action(server_id, {"confirmResize": None}, auth, cloud, done=(204, 202))


# --------------------------------------------------------------------------
# draining a host
# --------------------------------------------------------------------------
def _how(server, cold_migration):
    """'live', 'cold', 'busy', or why the server cannot be moved."""
    if server["task_state"]:
        return "busy"
    if server["status"] in LIVE_STATUSES:
        return "live"
    if server["status"] in COLD_STATUSES:
        if cold_migration:
            return "cold"
        return f"{server['status']}: only a cold migration moves it (cold_migration is off)"
    return (f"status {server['status']}: Nova moves ACTIVE and PAUSED servers live, "
            f"ACTIVE and SHUTOFF ones cold")


def drain_plan(host, cold_migration=True, auth=None, cloud=None):
    """What a drain of ``host`` would do, changing nothing: ``live`` and
    ``cold`` (servers by how they would move, judged by status: a live
    migration Nova refuses falls back to cold), ``confirm`` (cold migrations
    away from the host waiting in VERIFY_RESIZE), ``busy`` (a task is running:
    waited for), ``stuck`` (cannot be moved: why). Two list calls.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.drain_plan cmp1 cloud=admin
    """
    plan = {"live": [], "cold": [], "confirm": [], "busy": {}, "stuck": {}}
    for server in servers_on_host(host, auth, cloud):
        how = _how(server, cold_migration)
        if how in ("live", "cold"):
            plan[how].append(_label(server))
        elif how == "busy":
            plan["busy"][_label(server)] = f"task {server['task_state']}"
        else:
            plan["stuck"][_label(server)] = how
    plan["confirm"] = [_label({"name": "instance", "id": m["instance_uuid"]})
                       for m in migrations(host, auth=auth, cloud=cloud) if _unconfirmed(m)]
    return plan


def _unconfirmed(migration):
    return migration["migration_type"] == "migration" and migration["status"] == "finished"


class _Drain:
    """One drain: each server's step and the reasons it collected.

    Steps: start -> live or cold (its migration record watched); a failed
    live one -> cold-next -> (Nova cleared the task) cold-start -> cold; a
    finished cold one -> confirm -> moved. busy: someone else's task runs.
    """

    def __init__(self, host, cold_migration, deadline, auth, cloud):
        self.host, self.cold, self.deadline = host, cold_migration, deadline
        self.ka = {"auth": auth, "cloud": cloud}
        self.moves = {}  # server id -> {server, how, step, why, migration}
        self.moved = {"live": [], "cold": [], "confirmed": []}
        self.seen = set()  # migration uuids that existed before our first action

    def add(self, server, step="start"):
        self.moves[server["id"]] = {"server": server, "how": None, "step": step, "why": [],
                                    "migration": None}

    def confirm_left_over(self, mig):
        """A cold migration away from the host waiting in VERIFY_RESIZE (left
        by a timed-out run, or by hand): the server still holds resources on
        this host until it is confirmed, so it is confirmed too."""
        self.add({"id": mig["instance_uuid"], "name": "instance", "status": "VERIFY_RESIZE",
                  "task_state": None, "host": mig["dest_compute"]}, step="cold")
        move = self.moves[mig["instance_uuid"]]
        move.update(how="cold", confirm_only=True)
        self._advance(move, mig)

    def pending(self, steps=("start", "cold-next", "cold-start", "busy", "live", "cold",
                             "confirm")):
        return [m for m in self.moves.values() if m["step"] in steps]

    def _left(self, move, reason):
        move["step"] = "left"
        move["why"].append(reason)

    def _try(self, move, how):
        sid = move["server"]["id"]
        fun = server_live_migrate if how == "live" else server_migrate
        answer = fun(sid, **self.ka)
        if answer["accepted"]:
            move["how"] = move["step"] = how
            return True
        if answer["status"] == 404:
            move["step"] = "gone"
            return True
        move["why"].append(f"{how} migration refused ({answer['reason']})")
        return False

    def start(self):
        """Send the migrations that can start now (none after the deadline)."""
        if time.monotonic() >= self.deadline:
            return
        for move in self.pending(("start", "cold-start")):
            server = move["server"]
            how = "cold" if move["step"] == "cold-start" else _how(server, self.cold)
            if how == "busy":
                move["step"] = "busy"
            elif how == "live":
                if self._try(move, "live"):
                    continue
                # Refused at once (HTTP 400/409): Nova set no task, cold can go now.
                if not self.cold:
                    self._left(move, "cold_migration is off")
                elif server["status"] not in COLD_STATUSES:
                    self._left(move, f"a {server['status']} server cannot be cold-migrated")
                elif not self._try(move, "cold"):
                    move["step"] = "left"
            elif how == "cold":
                if not self._try(move, "cold"):
                    move["step"] = "left"
            else:
                self._left(move, how)

    def observe(self):
        """One poll: the migrations away from the host (one call), and the
        servers on it when one waits for its task to end (one more)."""
        if self.pending(("busy", "cold-next")):
            now = {s["id"]: s for s in servers_on_host(self.host, **self.ka)}
            for move in self.pending(("busy", "cold-next")):
                server = now.get(move["server"]["id"])
                if server is None:
                    move["step"] = "gone"
                elif not server["task_state"]:
                    move["server"] = server
                    move["step"] = "start" if move["step"] == "busy" else "cold-start"
        limit = max(100, 3 * len(self.moves))
        newest = {}
        for mig in migrations(self.host, limit=limit, **self.ka):
            if mig["uuid"] not in self.seen:
                newest.setdefault(mig["instance_uuid"], mig)  # newest first
        for sid, move in self.moves.items():
            mig = newest.get(sid)
            if move["step"] in ("live", "cold", "confirm") and mig:
                self._advance(move, mig)

    def _advance(self, move, mig):
        kind = "live-migration" if move["how"] == "live" else "migration"
        if mig["migration_type"] != kind:
            return
        move["migration"] = mig
        status = mig["status"]
        if move["how"] == "live" and status in LIVE_DONE:
            move["step"] = "moved"
        elif move["how"] == "cold" and status in COLD_DONE:
            move["step"] = "moved"
        elif move["how"] == "cold" and status == "finished" and move["step"] != "confirm":
            answer = server_confirm_resize(move["server"]["id"], **self.ka)
            move["step"] = "confirm"
            if not answer["accepted"]:  # e.g. confirmed by Nova's resize_confirm_window
                move["why"].append(f"confirmResize refused ({answer['reason']})")
        elif status in FAILED:
            self.seen.add(mig["uuid"])
            move["why"].append(f"{move['how']} migration {mig['uuid']} ended in status {status}")
            if (move["how"] == "live" and self.cold
                    and move["server"]["status"] in COLD_STATUSES):
                move["step"] = "cold-next"
            else:
                move["step"] = "left"
        if move["step"] == "moved":
            kind = "confirmed" if move.get("confirm_only") else move["how"]
            self.moved[kind].append(_label(move["server"]))


def drain(host, timeout=1800, poll_interval=5, cold_migration=True, auth=None, cloud=None):
    """Move every server of every project off ``host``: live migration (host
    chosen by the scheduler, block migration auto), and when Nova refuses it
    (HTTP 400/409) or the migration fails, a cold migration (confirmed when it
    reaches VERIFY_RESIZE), unless ``cold_migration`` is False. Cold
    migrations away from the host left unconfirmed are confirmed too. Disable
    the host first (``service_disable``), or the scheduler may fill it again.

    Bounded: at most ``timeout`` seconds and ``timeout / poll_interval``
    polls; no migration is started after the deadline (those already sent go
    on in Nova). A poll costs one request (two while a server waits for a task
    to end). Returns ``moved`` ({live, cold}: servers), ``confirmed``, ``left``
    ({server: why}), ``gone`` (deleted or moved by someone else meanwhile),
    ``timed_out``, ``seconds``.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.drain cmp1 timeout=600 cloud=admin
    """
    timeout, poll_interval = float(timeout), max(float(poll_interval), 0.01)
    started = time.monotonic()
    run = _Drain(host, cold_migration, started + timeout, auth, cloud)
    for server in servers_on_host(host, auth, cloud):
        run.add(server)
    recent = migrations(host, auth=auth, cloud=cloud)
    run.seen = {m["uuid"] for m in recent if not _unconfirmed(m)}
    for mig in filter(_unconfirmed, recent):
        run.confirm_left_over(mig)
    polls, max_polls, timed_out = 0, int(timeout / poll_interval) + 1, False
    while True:
        run.start()
        if not run.pending():
            break
        if time.monotonic() >= run.deadline or polls >= max_polls:
            timed_out = True
            break
        time.sleep(max(0.0, min(poll_interval, run.deadline - time.monotonic())))
        polls += 1
        run.observe()
    return _drain_result(run, host, timed_out, started, timeout, auth, cloud)


def _drain_result(run, host, timed_out, started, timeout, auth, cloud):
    left = {}
    for move in run.moves.values():
        if move["step"] == "left":
            left[_label(move["server"])] = "; ".join(move["why"])
        elif move["step"] not in ("moved", "gone"):
            mig, step = move["migration"], move["step"]
            if step in ("live", "cold", "confirm"):
                state = (f"{move['how']} migration {mig['uuid']} still {mig['status']}" if mig
                         else f"{move['how']} migration sent, not recorded yet")
            elif step == "busy":
                state = f"task {move['server']['task_state']} still running"
            else:
                state = "cold migration not started" if step.startswith("cold") else "not started"
            left[_label(move["server"])] = "; ".join(
                move["why"] + [f"{state} when the timeout ({timeout:g} s) ran out"])
    if run.moves:  # the truth at the end: what is on the host now
        for server in servers_on_host(host, auth, cloud):
            move = run.moves.get(server["id"])
            if move is None:
                left[_label(server)] = "arrived on the host during the drain"
            elif _label(move["server"]) not in left:
                left[_label(server)] = "still on the host"
    return {"host": host,
            "moved": {"live": sorted(run.moved["live"]), "cold": sorted(run.moved["cold"])},
            "confirmed": sorted(run.moved["confirmed"]), "left": left,
            "gone": sorted(_label(m["server"]) for m in run.moves.values() if m["step"] == "gone"),
            "timed_out": timed_out, "seconds": round(time.monotonic() - started, 1)}


# --------------------------------------------------------------------------
# compute nodes and their Placement resource providers
# --------------------------------------------------------------------------
def compute_nodes(host, auth=None, cloud=None):
    """The compute nodes (hypervisors) of ``host``: id (= its Placement
    resource provider's UUID) and hypervisor_hostname.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.compute_nodes cmp1 cloud=admin
    """
    conn = _conn(auth, cloud)
    # Nova answers 404 when no hypervisor name contains the pattern.
    status, data = _nova(conn, "GET", "/os-hypervisors/detail", MV_HYPERVISORS,
                         params={"hypervisor_hostname_pattern": host}, ok=(200, 404))
    found = data.get("hypervisors") or [] if status == 200 else []
    mine = [h for h in found if (h.get("service") or {}).get("host") == host]
    if not mine:
        # A node named unlike its host (ironic): the whole list, page by page.
        params = {"limit": 1000}
        for _ in range(MAX_PAGES):
            _, data = _nova(conn, "GET", "/os-hypervisors/detail", MV_HYPERVISORS, params=params)
            page = data.get("hypervisors") or []
            mine += [h for h in page if (h.get("service") or {}).get("host") == host]
            if len(page) < params["limit"]:
                break
            params = dict(params, marker=page[-1]["id"])
    return [{"id": h["id"], "hypervisor_hostname": h.get("hypervisor_hostname")} for h in mine]


def provider_tree(uuid, auth=None, cloud=None):
    """The Placement resource providers in the tree of ``uuid`` (empty when
    there is none): uuid, name, parent_provider_uuid.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.provider_tree 0123abcd-... cloud=admin
    """
    conn = _conn(auth, cloud)
    _, data = _placement(conn, "GET", "/resource_providers", params={"in_tree": uuid})
    keys = ("uuid", "name", "parent_provider_uuid")
    return [{k: p.get(k) for k in keys} for p in data["resource_providers"]]


def provider_consumers(uuid, auth=None, cloud=None):
    """The consumers (instance or migration UUIDs) holding allocations on the provider.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.provider_consumers 0123abcd-... cloud=admin
    """
    conn = _conn(auth, cloud)
    status, data = _placement(conn, "GET", f"/resource_providers/{_q(uuid)}/allocations",
                              ok=(200, 404))
    return sorted((data or {}).get("allocations") or {}) if status == 200 else []


def provider_tree_delete(uuid, auth=None, cloud=None):
    """Delete the provider tree of ``uuid``, leaves first, as nova-api does
    when it deletes a compute service. ``{removed: [names], in_use: {name:
    consumers}}``: a provider with allocations is kept and named (Placement
    answers 409), never forced.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.provider_tree_delete 0123abcd-... cloud=admin
    """
    conn = _conn(auth, cloud)
    tree = provider_tree(uuid, auth, cloud)
    parents = {p["uuid"]: p["parent_provider_uuid"] for p in tree}

    def depth(provider):
        level, parent = 0, provider["parent_provider_uuid"]
        while parent in parents and level < len(tree):  # bounded: a cycle cannot spin
            level, parent = level + 1, parents[parent]
        return level

    result = {"removed": [], "in_use": {}}
    blocked = set()
    for provider in sorted(tree, key=depth, reverse=True):
        name = f"{provider['name']} ({provider['uuid']})"
        if provider["uuid"] in blocked:
            result["in_use"][name] = ["its child providers are in use"]
            blocked.add(provider["parent_provider_uuid"])
            continue
        status, _ = _placement(conn, "DELETE", f"/resource_providers/{_q(provider['uuid'])}",
                               ok=(204, 404, 409))
        if status == 409:
            result["in_use"][name] = provider_consumers(provider["uuid"], auth, cloud)
            blocked.add(provider["parent_provider_uuid"])
        else:
            result["removed"].append(name)
    return result


# --------------------------------------------------------------------------
# host aggregates
# --------------------------------------------------------------------------
def _aggregate(rec):
    return {"id": rec["id"], "uuid": rec.get("uuid"), "name": rec["name"],
            "availability_zone": rec.get("availability_zone"),
            "hosts": sorted(rec.get("hosts") or []),
            "metadata": dict(rec.get("metadata") or {})}


def aggregates(auth=None, cloud=None):
    """Every host aggregate by name (id, availability_zone, hosts, metadata):
    one list call, kept for the run.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.aggregates cloud=admin
    """
    conn = _conn(auth, cloud)
    if _AGGREGATES not in conn.cache:
        _, data = _nova(conn, "GET", "/os-aggregates", MV_AGGREGATES)
        conn.cache[_AGGREGATES] = {a["name"]: _aggregate(a) for a in data["aggregates"]}
    return dict(conn.cache[_AGGREGATES])


def aggregate_get(name, auth=None, cloud=None):
    """The aggregate ``name`` or None.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.aggregate_get fast-disks cloud=admin
    """
    return aggregates(auth, cloud).get(name)


def _aggregate_write(method, path, body, auth, cloud, ok=(200,)):
    conn = _conn(auth, cloud)
    aggregates(auth, cloud)
    _, data = _nova(conn, method, path, MV_AGGREGATES, body=body, ok=ok)
    record = _aggregate(data["aggregate"])
    conn.cache[_AGGREGATES][record["name"]] = record
    return record


def aggregate_create(name, availability_zone=None, auth=None, cloud=None):
    """Create the aggregate ``name`` (in ``availability_zone`` when given).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.aggregate_create fast-disks availability_zone=az1 cloud=admin
    """
    body = {"name": name}
    if availability_zone:
        body["availability_zone"] = availability_zone
    return _aggregate_write("POST", "/os-aggregates", {"aggregate": body}, auth, cloud)


def aggregate_set_zone(aggregate_id, availability_zone, auth=None, cloud=None):
    """Set the aggregate's availability zone (Nova 26.x refuses an empty one:
    a zone cannot be taken away, only the aggregate deleted).

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.aggregate_set_zone 3 az2 cloud=admin
    """
    return _aggregate_write("PUT", f"/os-aggregates/{_q(aggregate_id)}",
                            {"aggregate": {"availability_zone": availability_zone}}, auth, cloud)


def aggregate_add_host(aggregate_id, host, auth=None, cloud=None):
    """Add ``host`` to the aggregate.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.aggregate_add_host 3 cmp1 cloud=admin
    """
    return _aggregate_write("POST", f"/os-aggregates/{_q(aggregate_id)}/action",
                            {"add_host": {"host": host}}, auth, cloud)


def aggregate_remove_host(aggregate_id, host, auth=None, cloud=None):
    """Remove ``host`` from the aggregate.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.aggregate_remove_host 3 cmp1 cloud=admin
    """
    return _aggregate_write("POST", f"/os-aggregates/{_q(aggregate_id)}/action",
                            {"remove_host": {"host": host}}, auth, cloud)


def aggregate_set_metadata(aggregate_id, metadata, auth=None, cloud=None):
    """Set the aggregate's metadata keys in one request; a None value removes the key.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.aggregate_set_metadata 3 '{ssd: "true", old: null}' cloud=admin
    """
    return _aggregate_write("POST", f"/os-aggregates/{_q(aggregate_id)}/action",
                            {"set_metadata": {"metadata": dict(metadata)}}, auth, cloud)


def aggregate_delete(aggregate_id, auth=None, cloud=None):
    """Delete the aggregate (Nova refuses while it has hosts). A missing one is fine.

    CLI Example:

    .. code-block:: bash

        salt ctl1 openstack_compute.aggregate_delete 3 cloud=admin
    """
    conn = _conn(auth, cloud)
    aggregates(auth, cloud)
    _nova(conn, "DELETE", f"/os-aggregates/{_q(aggregate_id)}", MV_AGGREGATES, ok=(200, 204, 404))
    conn.cache[_AGGREGATES] = {n: a for n, a in conn.cache[_AGGREGATES].items()
                                if str(a["id"]) != str(aggregate_id)}
    return True
