"""The canary of new computes (nova.orch.deploy's last step): a compute
still disabled since it registered (``enable_new_services = false``), or by
a failed canary, is enabled, boots a test server forced onto it and deletes
it; a failed canary disables it again at once, with the reason in the
service record and in the state's comment (Nova 26 places no server, a
forced one included, on a disabled compute: for the seconds of the canary
the scheduler may send it others, which Nova reschedules if it fails them). A compute an operator disabled
(any other reason) is left alone; an enabled one needs nothing."""

__virtualname__ = "openstack_canary"
FAILED = "nova-formula canary failed: "  # openstack_canary.waiting knows it


def __virtual__():
    if "openstack_canary.prove" not in __salt__:
        return (False, "openstack_canary states need the openstack_canary execution module")
    return __virtualname__


def host_proven(name, flavor, image, timeout=300, host=None, auth=None, cloud=None):
    """Compute ``host`` (default ``name``) is enabled, after a canary server
    when it is waiting for one."""
    host = host or name
    ret = __utils__["openstack_state.new_ret"](name)
    with __utils__["openstack_state.guard_state"](ret, __opts__["test"], globals(),
                                                   invalid=(ValueError,)):
        ka = {"auth": auth, "cloud": cloud}
        service = __salt__["openstack_compute.compute_service"](host, **ka)
        if service is None:
            raise ValueError(f"no nova-compute service is registered for host '{host}'")
        if service.get("status") == "enabled":
            ret["comment"] = f"host '{host}' is enabled"
            return ret
        if not __salt__["openstack_canary.waiting"](service):
            ret["comment"] = (f"host '{host}' was disabled by someone else "
                              f"({service.get('disabled_reason')}): left alone")
            return ret
        changes = {"canary": f"a test server on {host} ({flavor}, {image})",
                   "service": {"old": f"disabled ({service.get('disabled_reason')})",
                               "new": "enabled"}}
        if __opts__["test"]:
            ret.update(result=None, changes=changes,
                       comment=f"host '{host}' would get a canary server, then be enabled")
            return ret
        # Nova 26 schedules nothing, forced hosts included, onto a disabled
        # compute (its provider's COMPUTE_STATUS_DISABLED trait, seen on the
        # fleet: "No valid host"): enabled for the canary, disabled again at
        # once when it fails
        __salt__["openstack_compute.service_enable"](host, **ka)
        try:
            ok, why = __salt__["openstack_canary.prove"](host, flavor, image, timeout, **ka)
        except Exception as exc:  # the host must not stay enabled unproven
            ok, why = False, str(exc)
        if ok:
            ret.update(changes=dict(changes, canary=why),
                       comment=f"host '{host}' passed its canary and is enabled")
            return ret
        reason = FAILED + why
        __salt__["openstack_compute.service_disable"](host, reason[:255], **ka)
        ret.update(result=False, changes={"service": {"old": service.get("disabled_reason"),
                                                      "new": reason[:255]}},
                   comment=f"host '{host}' failed its canary and stays disabled: {why}")
    return ret
