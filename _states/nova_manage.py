"""Nova's schema and cells, converged: each state checks before it acts.

- ``api_db_synced`` / ``db_synced``: run ``nova-manage (api_)db sync`` only
  when the database version is not the head revision of the installed code.
- ``cell_present``: the cell is mapped with nova.conf's URLs: created when
  missing, updated after a password rotation (cell0 over SQL, other cells by
  ``cell_v2 create_cell`` / ``update_cell``).
- ``hosts_discovered``: ``cell_v2 discover_hosts`` only when a registered
  compute host has no host mapping; fails (so ``retry`` can wait) while fewer
  than ``expect`` computes (a count, or host names: a missing one is named)
  have registered.

A second run reports no changes and writes nothing; ``test=True`` only reads.
In a test run, a check that cannot run yet because earlier states are
pending (packages not installed, nova.conf not written, a grant missing)
reports result None with that reason.
"""
from salt.exceptions import CommandExecutionError

__virtualname__ = "nova_manage"
NOVA_CONF = "/etc/nova/nova.conf"  # nova-manage's own default


def __virtual__():
    if "nova_manage.version" not in __salt__:
        return (False, "nova_manage states need the nova_manage execution module "
                       "(run saltutil.sync_all; it needs the pymysql library)")
    return __virtualname__


def _run(name, body):
    """Call ``body(ret)``; an error becomes a failed state (or, in a test run
    behind pending states it requires, result None with the reason)."""
    ret = __utils__["openstack_state.new_ret"](name)
    with __utils__["openstack_state.guard_state"](ret, __opts__["test"], globals()):
        body(ret)
    return ret


def _change(ret, changes, would, done, act):
    if __utils__["openstack_state.change"](ret, changes, __opts__["test"], would, done):
        act()


def _synced(name, api, config):
    what = "API database" if api else "database"

    def body(ret):
        current = __salt__["nova_manage.version"](api=api, config=config)
        heads = __salt__["nova_manage.heads"]()["api" if api else "main"]
        if current in heads:
            ret["comment"] = f"Nova {what} is at the code's head ({current})"
            return
        changes = {"version": {"old": current, "new": heads[0] if heads else None}}

        def act():
            changes["version"]["new"] = __salt__["nova_manage.sync"](api=api, config=config)
            ret["comment"] = f"Nova {what} migrated to {changes['version']['new']}"

        _change(ret, changes, f"Nova {what} would be migrated from {current} to {heads}",
                None, act)

    return _run(name, body)


def api_db_synced(name="api_db", config=NOVA_CONF):
    """The API database schema is at the installed code's head (``config``:
    nova.conf's path, in every state here)."""
    return _synced(name, True, config)


def db_synced(name="db", config=NOVA_CONF):
    """The main (cell) database schema is at the installed code's head."""
    return _synced(name, False, config)


def cell_present(name, config=NOVA_CONF):
    """Cell ``name`` is mapped with the URLs nova.conf implies: created when
    missing, updated when its transport URL or database connection differs
    (a rotated password). cell0 is written over SQL, any other cell through
    ``cell_v2 create_cell`` / ``update_cell``; both take their URLs from
    nova.conf, never from argv, and no URL reaches the state's return."""
    def body(ret):
        state = __salt__["nova_manage.cell_state"](name, config=config)
        if state is None:
            changes = {"cell": {"old": None, "new": name}}
            verb = "created"
        else:
            changes = {key: {"old": "(differs from nova.conf)", "new": "(from nova.conf)"}
                       for key in state["stale"]}
            verb = "updated"
        ret["comment"] = f"Cell {name} is mapped with nova.conf's URLs"

        def act():
            if name == "cell0":
                __salt__["nova_manage.map_cell0"](config=config)
            elif state is None:
                __salt__["nova_manage.create_cell"](name, config=config)
            else:
                __salt__["nova_manage.update_cell"](state["uuid"], config=config)
            now = __salt__["nova_manage.cell_state"](name, config=config)
            if now is None or now["stale"]:
                raise CommandExecutionError(f"nova-manage reported success but cell {name} "
                                            "does not have nova.conf's URLs")

        _change(ret, changes, f"Cell {name} would be {verb}", f"Cell {name} {verb}", act)

    return _run(name, body)


def _short(host):
    return str(host).split(".")[0].lower()


def _absent_hosts(expected, registered):
    """Expected names with no registered compute: a minion id may be the FQDN
    of a host that nova-compute registered by its short name (or the reverse)."""
    known = {_short(h) for h in registered}
    return [h for h in expected if _short(h) not in known]


def hosts_discovered(name, expect=0, hosts=None, config=NOVA_CONF):
    """Every registered compute host is mapped to a cell. ``expect``: a count,
    or the host names of computes that must have registered (use ``retry`` to
    wait); a missing one is named. With a count, ``hosts`` (e.g. the fleet's
    compute minion ids) lets the message name the missing ones too (not
    ``names``: Salt reserves it). In a test run, computes not registered yet
    are reported (result None): the run would start them first."""
    def body(ret):
        known = __salt__["nova_manage.computes"](config=config)
        registered, mapped = known["registered"], set(known["mapped"])
        if isinstance(expect, (list, tuple)):
            wanted = [str(h) for h in expect]
            absent = _absent_hosts(wanted, registered)
            short = len(wanted) - len(absent)
            count = len(wanted)
        else:
            count = int(expect)
            wanted = [str(h) for h in hosts or []]
            short = len(registered)
            absent = _absent_hosts(wanted, registered) if short < count else []
        if absent or short < count:
            ret["result"] = None if __opts__["test"] else False
            ret["comment"] = (f"{short} of {count} expected compute hosts "
                              f"registered ({', '.join(registered) or 'none'})"
                              + (f"; missing: {', '.join(absent)}" if absent else "")
                              + ("; they would be waited for and mapped" if __opts__["test"] else
                                 "; are nova-compute services running and reaching the broker?"))
            return
        missing = [h for h in registered if h not in mapped]
        ret["comment"] = f"All {len(registered)} compute hosts are mapped to cells"

        def act():
            __salt__["nova_manage.discover_hosts"](config=config)
            now = set(__salt__["nova_manage.computes"](config=config)["mapped"])
            left = [h for h in missing if h not in now]
            if left:
                raise CommandExecutionError(f"discover_hosts left unmapped: {', '.join(left)}")

        _change(ret, {"mapped": missing} if missing else {},
                f"Would map compute hosts: {', '.join(missing)}",
                f"Mapped compute hosts: {', '.join(missing)}", act)

    return _run(name, body)
