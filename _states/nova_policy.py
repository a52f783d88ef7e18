"""Nova's API policy, checked: ``rules_known`` refuses rule names the
installed Nova does not know, before policy.yaml is written (the formula
runs it as a ``prereq`` of the file, so only when the file would change)."""

__virtualname__ = "nova_policy"


def __virtual__():
    if "nova_policy.known_rules" not in __salt__:
        return (False, "nova_policy states need the nova_policy execution module "
                       "(run saltutil.sync_all)")
    return __virtualname__


def rules_known(name, rules, sample=None):
    """Every rule name in ``rules`` is a rule of the installed Nova (``name``:
    the policy file they are written to; ``sample``: its policy defaults, see
    ``nova_policy.known_rules``). Changes nothing."""
    ret = __utils__["openstack_state.new_ret"](name)
    with __utils__["openstack_state.guard_state"](ret, __opts__["test"], globals()):
        if not rules:
            ret["comment"] = f"{name}: no rule to check (Nova's defaults apply)"
            return ret
        known = set(__salt__["nova_policy.known_rules"](sample))
        unknown = [rule for rule in rules if rule not in known]
        if unknown:
            ret["result"] = False
            ret["comment"] = (f"{name} not written: the installed Nova has no rule "
                              f"{', '.join(unknown)} (nova:policy)")
        else:
            ret["comment"] = f"{name}: the installed Nova knows all {len(rules)} rule(s)"
    return ret
