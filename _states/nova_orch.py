"""The orchestrate's own checks (nova/orch/deploy.sls, run on the master).

``report``: its last step. Salt's ``salt.state`` step says "States ran
successfully" when ``allow_fail`` (nova:fleet:max_fail) let a minion fail
(Salt #29546, #54521): this step reads the earlier steps' returns and fails,
naming each failed minion and its step, whenever any minion failed.
"""

__virtualname__ = "nova_orch"


def __virtual__():
    if "nova_plan.rollout_failures" not in __utils__:
        return (False, "nova_orch: the formula's _utils are not loaded (run saltutil.sync_all)")
    return __virtualname__


def report(name):
    """Fail when any minion of an earlier step of this orchestrate failed,
    naming each (step, minion, why); changes nothing.

    .. code-block:: yaml

        nova-orch-report:
          nova_orch.report:
            - name: nova rollout
    """
    ret = __utils__["openstack_state.new_ret"](name)
    with __utils__["openstack_state.guard_state"](ret, __opts__["test"], globals()):
        failures = __utils__["nova_plan.rollout_failures"](dict(__running__))
        if failures:
            lines = [f"{f['step']}: {f['minion']}: {f['why']}" if f["minion"]
                     else f"{f['step']}: {f['why']}" for f in failures]
            hosts = sorted({f["minion"] for f in failures if f["minion"]})
            ret["result"] = False
            ret["comment"] = __utils__["openstack_state.mask"](
                f"{len(failures)} failure(s) in this rollout"
                + (f" (minions: {', '.join(hosts)})" if hosts else "") + ":\n"
                + "\n".join(lines))
        else:
            ret["comment"] = "every minion of every step succeeded"
    return ret
