"""The steps of a rolling update (nova.orch.upgrade), each a state that
checks before it acts:

- ``checked``: ``nova-status upgrade check`` with the installed code passes
  (warnings pass); a failure fails the state with the check's own message.
- ``daemon_current``: a running daemon older than its packages or a file it
  reads is restarted (once); a current one is left alone.
- ``services_current``: waits (bounded) until every Nova service record of
  every cell reports the installed code's service version.
- ``online_migrations_done``: ``nova-manage db online_data_migrations`` until
  it says done; changes list the rows migrated.

``test=True`` only reads.
"""
import time

__virtualname__ = "nova_upgrade"
NOVA_CONF = "/etc/nova/nova.conf"


def __virtual__():
    if "nova_manage.service_versions" not in __salt__ or "nova_service.stale" not in __salt__:
        return (False, "nova_upgrade states need the nova_manage and nova_service execution "
                       "modules (run saltutil.sync_all)")
    return __virtualname__


def _run(name, body):
    ret = __utils__["openstack_state.new_ret"](name)
    with __utils__["openstack_state.guard_state"](ret, __opts__["test"], globals()):
        body(ret)
    return ret


def checked(name, config=NOVA_CONF):
    """``nova-status upgrade check`` passes with the installed code."""
    def body(ret):
        res = __salt__["nova_manage.upgrade_check"](config=config)
        if res["ok"]:
            ret["comment"] = "nova-status upgrade check passed" + (
                " with warnings" if res["retcode"] == 1 else "")
            return
        ret["result"] = False
        ret["comment"] = ("nova-status upgrade check failed (exit {}): {}".format(
            res["retcode"], "; ".join(res["failures"]) or res["output"][-1500:]))
    return _run(name, body)


def daemon_current(name, pidfile=None, files=None, packages=None):
    """Service ``name``'s daemon runs the installed packages and the files it
    reads as they are now: restarted when it started before one changed."""
    def body(ret):
        newer = __salt__["nova_service.stale"](name, pidfile=pidfile, files=files or [],
                                               packages=packages or [])
        if not newer:
            ret["comment"] = f"{name} runs the installed code and configuration (or is stopped)"
            return
        changes = {"restarted": {"old": "started before " + ", ".join(newer), "new": "restarted"}}
        if __opts__["test"]:
            ret.update(result=None, changes=changes,
                       comment=f"{name} would be restarted (older than {', '.join(newer)})")
            return
        if not __salt__["service.restart"](name):
            ret.update(result=False, comment=f"{name} did not restart")
            return
        ret.update(changes=changes, comment=f"{name} restarted: it was older than "
                                            f"{', '.join(newer)}")
    return _run(name, body)


def services_current(name, config=NOVA_CONF, timeout=600, interval=5):
    """Every Nova service of every cell reports the installed code's service
    version, waited for (at most ``timeout`` seconds, read every ``interval``)."""
    def body(ret):
        deadline = time.monotonic() + int(timeout)
        while True:
            res = __salt__["nova_manage.service_versions"](config=config)
            if res["current"] or __opts__["test"] or time.monotonic() >= deadline:
                break
            time.sleep(int(interval))
        if res["current"]:
            ret["comment"] = (f"all {len(res['services'])} Nova services report service "
                              f"version {res['newest']}")
            return
        ret["result"] = None if __opts__["test"] else False
        ret["comment"] = (f"Nova services not at service version {res['newest']}"
                          + ("" if __opts__["test"] else f" within {timeout} s") + ": "
                          + (", ".join(res["behind"]) or "no service registered"))
    return _run(name, body)


def online_migrations_done(name, config=NOVA_CONF, timeout=600, max_count=None):
    """``nova-manage db online_data_migrations`` run until it reports
    nothing left (bounded by ``timeout``); changes: rows migrated. Nova has
    no dry run of them: ``test=True`` says they would run."""
    def body(ret):
        if __opts__["test"]:
            ret["comment"] = ("nova-manage db online_data_migrations runs in a real run "
                              "(until done; it changes nothing when none is pending)")
            return
        deadline, total = time.monotonic() + int(timeout), {}
        while True:
            res = __salt__["nova_manage.online_data_migrations"](config=config,
                                                                 max_count=max_count)
            for key, rows in res["migrated"].items():
                total[key] = total.get(key, 0) + rows
            if res["retcode"] != 1 or time.monotonic() >= deadline:
                break
        if total:
            ret["changes"] = {"migrated": total}
        if res["retcode"] == 0:
            ret["comment"] = ("online data migrations done" +
                              (f" ({sum(total.values())} rows)" if total else ", none pending"))
            return
        ret["result"] = False
        ret["comment"] = ("online data migrations not done" + (
            f": {res['why']}" if res["retcode"] == 2 else f" within {timeout} s"))
    return _run(name, body)
