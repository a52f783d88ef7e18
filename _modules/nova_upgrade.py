"""What a rolling update (nova.orch.upgrade) does across the fleet, decided on
the master: nova_formula's fleet targets, and which Nova hosts are behind the
version to roll to (asked of the minions); the decisions are nova_plan's."""
__virtualname__ = "nova_upgrade"


def __virtual__():
    if "nova_plan.upgrade_targets" not in __utils__:
        return (False, "nova_upgrade: the formula's _utils are not loaded (run saltutil.sync_all)")
    return __virtualname__


def targets(fleet, version, aggregates=None):
    """nova.orch.upgrade's targets and steps: fleet_targets, the Nova hosts
    behind ``version`` (nova:version; their installed python3-nova, or for
    ``latest`` a newer one they could install) and the batches to roll.

    CLI Example:

    .. code-block:: bash

        salt-run salt.cmd nova_upgrade.targets "$(salt-call --out=json pillar.get nova:fleet)" 2:26.2.2-1~deb12u5
    """
    to = __salt__["nova_formula.fleet_targets"](fleet, aggregates)
    if to.get("errors"):
        return to
    fun = "pkg.latest_version" if version == "latest" else "pkg.version"
    # saltutil.runner's own ``arg`` is the runner's positional arguments:
    # everything for salt.execute goes in ``kwarg``
    found = __salt__["saltutil.runner"]("salt.execute", kwarg={
        "tgt": to["everyone"]["tgt"], "fun": fun, "arg": ["python3-nova"], "timeout": 60,
        "tgt_type": to["everyone"]["tgt_type"]})
    installed = {m: v if isinstance(v, str) else "" for m, v in (found or {}).items()}
    return __utils__["nova_plan.upgrade_targets"](to, installed, version)
