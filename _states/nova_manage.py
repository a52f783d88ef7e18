"""Nova's schema and cells, converged: each state checks before it acts.

- ``api_db_synced`` / ``db_synced``: run ``nova-manage (api_)db sync`` only
  when the database version is not the head revision of the installed code.
- ``cell_present``: ``cell_v2 map_cell0`` (name ``cell0``) or
  ``cell_v2 create_cell`` only when ``cell_v2 list_cells`` lacks the cell.
- ``hosts_discovered``: ``cell_v2 discover_hosts`` only when a registered
  compute host has no host mapping; fails (so ``retry`` can wait) while fewer
  than ``expect`` computes have registered.

A second run reports no changes and writes nothing; ``test=True`` only reads.
"""
from salt.exceptions import CommandExecutionError

__virtualname__ = "nova_manage"


def __virtual__():
    if "nova_manage.version" not in __salt__:
        return (False, "nova_manage states need the nova_manage execution module "
                       "(nova-manage is not installed)")
    return __virtualname__


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _synced(name, api):
    what = "API database" if api else "database"
    ret = _ret(name)
    try:
        current = __salt__["nova_manage.version"](api=api)
        heads = __salt__["nova_manage.heads"]()["api" if api else "main"]
        if current in heads:
            ret["comment"] = f"Nova {what} is at the code's head ({current})"
            return ret
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"Nova {what} would be migrated from {current} to {heads}"
            ret["changes"] = {"version": {"old": current, "new": heads[0] if heads else None}}
            return ret
        new = __salt__["nova_manage.sync"](api=api)
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    ret["changes"] = {"version": {"old": current, "new": new}}
    ret["comment"] = f"Nova {what} migrated to {new}"
    return ret


def api_db_synced(name="api_db"):
    """The API database schema is at the installed code's head."""
    return _synced(name, api=True)


def db_synced(name="db"):
    """The main (cell) database schema is at the installed code's head."""
    return _synced(name, api=False)


def cell_present(name):
    """Cell ``name`` is mapped: ``cell0`` through map_cell0, any other through
    create_cell; both read their URLs from nova.conf (never from argv)."""
    ret = _ret(name)
    try:
        cells = __salt__["nova_manage.list_cells"]()
        if name in cells:
            ret["comment"] = f"Cell {name} is mapped"
            return ret
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"Cell {name} would be created"
            ret["changes"] = {"cell": {"old": None, "new": name}}
            return ret
        if name == "cell0":
            __salt__["nova_manage.map_cell0"]()
        else:
            __salt__["nova_manage.create_cell"](name)
        if name not in __salt__["nova_manage.list_cells"]():
            raise CommandExecutionError(f"nova-manage reported success but cell {name} "
                                        "is not listed")
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    ret["changes"] = {"cell": {"old": None, "new": name}}
    ret["comment"] = f"Cell {name} created"
    return ret


def hosts_discovered(name, expect=0):
    """Every registered compute host is mapped to a cell; with ``expect``, at
    least that many computes must have registered (use ``retry`` to wait)."""
    ret = _ret(name)
    try:
        hosts = __salt__["nova_manage.computes"]()
        registered, mapped = hosts["registered"], set(hosts["mapped"])
        if len(registered) < int(expect):
            ret["result"] = False
            ret["comment"] = (f"{len(registered)} of {int(expect)} expected compute hosts "
                              f"registered ({', '.join(registered) or 'none'}); are "
                              "nova-compute services running and reaching the broker?")
            return ret
        missing = [h for h in registered if h not in mapped]
        if not missing:
            ret["comment"] = f"All {len(registered)} compute hosts are mapped to cells"
            return ret
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"Would map compute hosts: {', '.join(missing)}"
            ret["changes"] = {"mapped": missing}
            return ret
        __salt__["nova_manage.discover_hosts"]()
        left = [h for h in missing if h not in set(__salt__["nova_manage.computes"]()["mapped"])]
        if left:
            raise CommandExecutionError(f"discover_hosts left unmapped: {', '.join(left)}")
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    ret["changes"] = {"mapped": missing}
    ret["comment"] = f"Mapped compute hosts: {', '.join(missing)}"
    return ret
