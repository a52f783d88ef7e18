"""The formula's plan: what one minion does, decided in one place.

``nova/map.jinja`` merges the layers (defaults, OS family, release, pillar) and
calls :func:`plan`; the SLS files only loop over what it returns. Every
decision lives here or in the utilities it uses:

- ``_utils/nova_schema.py``: the pillar schema (key, type, meaning) and the
  per-key checks;
- ``_utils/nova_dialects.py``: the INI sections of each file in the release's
  option dialect, and the URLs in them;
- this module: the checks across keys, who does the one-off jobs (fleet
  placement), which concerns run, and the states of each (ids, arguments,
  requisites), for applying and for ``nova.clean``.
"""
import ipaddress
import os

import salt.utils.systemd

__virtualname__ = "nova_formula"

# The concerns in the order of the install guide; each is an SLS folder.
CONCERNS = ("database", "identity", "packages", "config", "policy", "firewall", "nova_network",
            "sysctl", "libvirt", "db_sync", "service", "migration", "discover", "aggregates")
# pillar nova:manage flag that switches a concern off (config always runs)
MANAGED_BY = {"service": "services"}
ROLES = ("api", "scheduler", "conductor", "compute")


def __virtual__():
    if "nova_schema.check" not in __utils__:
        return (False, "nova_formula: the formula's _utils are not loaded (run saltutil.sync_all)")
    return __virtualname__


def _u(fun):
    return __utils__[fun]


def _rules():
    """The engines' own rules, which the schema checks call."""
    return {"db_user": _u("openstack_sql.validate_user"),
            "db_host": _u("openstack_sql.validate_host"),
            "db_connection_keys": _u("openstack_sql.connection_keys"),
            "auth_keys": _u("openstack_session.auth_keys"),
            "ini_name": _u("openstack_inifile.check_name"),
            "ini_values": _u("openstack_inifile.wanted_values"),
            "cell0_name": _u("nova_dialects.cell0_name")}


def _minion_id():
    return __opts__.get("id") or __grains__.get("id")


# ---------------------------------------------------------------- the fleet

def sync_conductor(fleet):
    """The one conductor that runs the DB sync: named, else first by id.

    CLI Example:

    .. code-block:: bash

        salt-call nova_formula.sync_conductor '{controllers: [ctl2, ctl1]}'
    """
    return _u("nova_plan.sync_conductor")(fleet)


def fleet_targets(fleet, aggregates=None, day2=None):
    """The orchestrate's targets (nova/orch/*.sls, rendered on the master):
    the one-off job minions and a target per step, roles given as compound
    targets matched against the master's minion data cache.

    CLI Example:

    .. code-block:: bash

        salt-run salt.cmd nova_formula.fleet_targets "$(salt-call --out=json pillar.get nova:fleet)"

    ``aggregates``: nova:aggregates (when set, a last step makes them);
    ``day2``: nova:{canary, migration, manage, maintenance} (the day-2 steps).
    """
    resolved = {}
    for role in ("controllers", "conductors", "computes"):
        if isinstance(fleet.get(role), str):
            if __opts__.get("__role") != "master":
                # only the master's minion data cache knows which minions match
                return {"errors": [f"nova:fleet:{role}: a compound target is matched on the "
                                   "master: run the orchestrate there (salt-run)"]}
            found = __salt__["saltutil.runner"]("cache.grains", tgt=fleet[role],
                                                tgt_type="compound") or {}
            resolved[role] = sorted(found)
    return _u("nova_plan.fleet_targets")(fleet, resolved, aggregates, day2)


def _placement(nova, me):
    """Which one-off jobs (DB sync, databases, Keystone records) run on ``me``."""
    fleet = nova["fleet"]
    sync = sync_conductor(fleet)
    # No fleet data: a lone conductor is the sync conductor.
    sync_here = "conductor" in nova["roles"] and sync in (None, me)
    owner = me if sync_here else sync
    return {"sync_conductor": sync, "db_sync": sync_here,
            "database": (fleet.get("database") or owner) == me,
            "identity": (fleet.get("identity") or owner) == me}


# ---------------------------------------------------------------- validation

def validate(nova, raw=None, releases=None):
    """Problems of the merged map ``nova`` (and of the raw pillar ``raw``:
    unknown keys) as "nova:<key>: <problem>" messages; empty when valid.

    CLI Example:

    .. code-block:: bash

        salt-call nova_formula.validate "$(salt-call --out=json state.show_sls nova._mapdata)"
    """
    errors = _u("nova_schema.check")(nova, raw, releases, _rules())
    if errors:
        return errors
    me = _minion_id()
    return _u("nova_schema.across_keys")(nova, set(nova["roles"]), _placement(nova, me), me,
                                         _rules()) + _unknown_policy_rules(nova)


def _unknown_policy_rules(nova):
    """nova:policy rules the installed Nova does not know, checked against its
    policy sample when it is installed (else the policy state checks them
    once the packages are in)."""
    sample = nova["lookup"]["policy_sample"]
    if "api" not in nova["roles"] or not nova["policy"] or not sample or not os.path.exists(sample):
        return []
    with open(sample, encoding="utf-8", errors="replace") as fh:
        known = set(_u("nova_dialects.policy_rule_names")(fh.read()))
    return [f"nova:policy:{name}: not a rule of the installed Nova (see {sample})"
            for name in sorted(nova["policy"]) if name not in known]


def schema():
    """The pillar reference: ``{"nova:<key>": description}``.

    CLI Example:

    .. code-block:: bash

        salt-call nova_formula.schema
    """
    return _u("nova_schema.schema")()


# ---------------------------------------------------------------- the plan

def _my_ip(nova):
    if nova.get("my_ip"):
        return nova["my_ip"]
    for addr in __grains__.get("ipv4", []):
        if not ipaddress.ip_address(addr).is_loopback:
            return addr
    return "127.0.0.1"


def _workers(nova):
    """API workers: pillar, else half the CPUs within [2, 8] (puppet-nova's os_workers)."""
    if nova["api"]["workers"]:
        return int(nova["api"]["workers"])
    return max(2, min(int(__grains__.get("num_cpus") or 2) // 2, 8))


def _concerns(nova, roles, where, driver, me=None):
    """The concerns this minion runs, in order (before nova:manage)."""
    look = nova["lookup"]
    compute = "compute" in roles
    libvirt = compute and (not driver or driver.startswith("libvirt"))
    wanted = {
        "database": where["database"], "identity": where["identity"],
        "packages": bool(roles), "config": bool(roles),
        "firewall": bool(roles & {"compute", "api"}),
        "nova_network": bool(roles) and nova["network"]["type"] == "neutron"
        and bool(look["services"].get("nova_network")),
        "sysctl": compute and nova["network"]["type"] == "neutron" and bool(nova["sysctl"]),
        "libvirt": libvirt and nova["network"]["plugin"] == "linuxbridge",
        "policy": "api" in roles and bool(look["policy_file"]),
        "db_sync": where["db_sync"], "service": bool(roles),
        "discover": where["db_sync"] and nova["dialect"] == "current",
        "aggregates": where["identity"] and bool(nova["aggregates"]),
        # trust among computes: only where there are others (not an all-in-one)
        "migration": compute and nova["migration"]["enabled"] and (isinstance(
            nova["fleet"]["computes"], str) or bool(set(nova["fleet"]["computes"]) - {me})),
    }
    return [c for c in CONCERNS if wanted[c]], libvirt


def map_cached(raw, tplroot="nova"):
    """The merged map (with its plan) an earlier SLS of this run built from
    the same pillar, or None: map.jinja then merges and plans once per run,
    not once per SLS file (each import costs three file fetches).

    CLI Example:

    .. code-block:: bash

        salt-call nova_formula.map_cached "$(salt-call --out=json pillar.get nova)"
    """
    return __context__.get(_map_key(raw, tplroot))


def map_cache(raw, tplroot, nova):
    """Keep map.jinja's merged map (with its plan) for the rest of the run.

    CLI Example:

    .. code-block:: bash

        salt-call nova_formula.map_cache '{}' nova '{}'
    """
    __context__[_map_key(raw, tplroot)] = nova
    return True


def _map_key(raw, tplroot):
    return "nova_formula.map." + _u("nova_plan.digest")(raw, tplroot, __grains__.get("os_family"))


def plan(nova, raw=None, releases=None, tplroot="nova"):
    """What this minion does, for map.jinja: the validation result and, per
    concern, the states to write (ids, arguments, requisites). With an invalid
    pillar the plan holds only the errors, so nothing but the validation
    renders. Cached for the run (every SLS imports map.jinja).

    CLI Example:

    .. code-block:: bash

        salt-call state.show_sls nova._mapdata
    """
    host = (_minion_id(), __grains__.get("ipv4"), __grains__.get("num_cpus"),
            sorted(_sysctl_missing(nova)))
    key = "nova_formula.plan." + _u("nova_plan.digest")(nova, raw, releases, tplroot, host)
    if key not in __context__:
        __context__[key] = _plan(nova, raw, releases, tplroot)
    return __context__[key]


def _plan(nova, raw, releases, tplroot):
    errors = validate(nova, raw, releases)
    if errors:
        return _refused("Invalid pillar, nothing was changed:", errors)
    me = _minion_id()
    roles = [r for r in ROLES if r in nova["roles"]]
    where = _placement(nova, me)
    wanted, libvirt = _concerns(nova, set(roles), where, nova["compute"]["driver"], me)
    left_out = [c for c in wanted if not nova["manage"].get(MANAGED_BY.get(c, c), True)]
    concerns = [c for c in wanted if c not in left_out]
    problems = _host_problems(concerns)
    if problems:
        return _refused("This minion cannot apply the formula, nothing was changed:", problems)
    workers = _workers(nova)
    facts = {"roles": roles, "where": where, "libvirt": libvirt, "concerns": concerns,
             "tplroot": tplroot, "databases": _u("nova_dialects.databases")(nova),
             "sections": _u("nova_dialects.sections")(nova, roles, _my_ip(nova), workers),
             "server_files": _u("nova_dialects.server_files")(nova, roles, workers),
             "policy_file": _u("nova_dialects.policy_file")(nova, roles),
             "files_of": _u("nova_schema.files")(),
             "sysctl_missing": _sysctl_missing(nova) if "sysctl" in concerns else []}
    out = _u("nova_plan.states")(nova, facts)
    comment = (f"nova pillar is valid (release {nova['release']}, dialect {nova['dialect']}, "
               f"roles: {', '.join(roles) or 'none'})")
    if left_out:
        comment += "; left out by nova:manage: " + ", ".join(left_out)
    out.update(errors=[], roles=roles, concerns=concerns, left_out=left_out, comment=comment,
               sync_conductor=where["sync_conductor"])
    return out


def _sysctl_missing(nova):
    """The kernel parameters of the map the running kernel does not have (the
    bridge-nf keys exist only once br_netfilter is loaded)."""
    sysctl = nova.get("sysctl") if isinstance(nova.get("sysctl"), dict) else {}
    return [k for k in sysctl if not os.path.exists(os.path.join("/proc/sys", *str(k).split(".")))]


def _refused(header, errors):
    return {"errors": errors, "roles": [], "concerns": [], "left_out": [], "needs": {},
            "clean": {}, "comment": header + "\n" + "\n".join(errors)}


def _host_problems(concerns):
    """What on this host keeps the formula from doing its job. Asked of
    salt.utils.systemd, not of ``__salt__``: looking up a function the
    service module lacks makes Salt's loader try every module (~0.6 s)."""
    if ("service" in concerns and "systemd_service" not in __opts__.get("disable_modules", ())
            and salt.utils.systemd.offline(__context__)):
        return ["Salt's service module cannot act here: systemctl is installed but systemd is "
                "not running as PID 1 (a container or chroot), so every service state would "
                "succeed without doing anything. Set `disable_modules: [systemd_service]` in "
                "this minion's config so Salt uses the init scripts, and restart the minion."]
    return []
