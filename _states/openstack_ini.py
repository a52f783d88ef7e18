"""Keep keys of OpenStack INI files converged, losslessly.

.. code-block:: yaml

    /etc/nova/nova.conf:
      openstack_ini.options_present:
        - sections:
            DEFAULT:
              transport_url: rabbit://nova:secret@ctl:5672/
            database:
              connection: mysql+pymysql://nova:secret@ctl/nova
        - mode: '0640'
        - user: root
        - group: nova

Secret-looking keys (password, secret, transport_url, connection, ...) and
those in ``secret_keys`` are reported as ``********``.

``permissions_present`` sets mode and owner alone: a service that watches the
options state then restarts only when a key it reads changed, not when a
mode was fixed.
"""
__virtualname__ = "openstack_ini"


def __virtual__():
    if "openstack_ini.set_options" in __salt__:
        return __virtualname__
    return (False, "openstack_ini: the openstack_ini execution module is not loaded (run saltutil.sync_all)")


def _count(changes):
    return sum(len(keys) for keys in changes.values())


def _converge(name, call, what):
    """``call(test)`` compares and (unless test) changes in one locked pass,
    returning the changes; this reports them."""
    test = bool(__opts__.get("test"))
    ret = __utils__["openstack_state.new_ret"](name)
    with __utils__["openstack_state.guard_state"](ret, test, globals()):
        changes = call(test)
        parts = []
        option_count = _count({k: v for k, v in changes.items() if k != "permissions"})
        if option_count:
            parts.append(f"{option_count} option(s)")
        if "permissions" in changes:
            parts.append(", ".join(sorted(changes["permissions"])))
        summary = " and ".join(parts)
        ret["comment"] = f"{name}: {what} already as wanted"
        __utils__["openstack_state.change"](ret, changes, test, would=f"{name}: would change {summary}",
                                            done=f"{name}: changed {summary}")
    return ret


def _permissions(name, mode, user, group, test):
    if mode is None and user is None and group is None:
        return {}
    perms = __salt__["openstack_ini.set_permissions"](name, mode=mode, user=user, group=group,
                                                      test=test)
    return {"permissions": perms} if perms else {}


def options_present(name, sections, secret_keys=None, mode=None, user=None, group=None):
    """Make each ``sections[section][key]`` hold its value in the INI file ``name``.

    name
        Absolute path of an existing file.
    sections
        ``{section: {key: value}}``. A list value writes a multi-valued option
        (the key once per item, in order); ``None`` makes the key absent.
    secret_keys
        Further key names whose values must never be shown.
    mode, user, group
        Enforced on the file when given (permissions are narrowed before any
        secret is written).
    """
    def call(test):
        changes = _permissions(name, mode, user, group, test)
        changes.update(__salt__["openstack_ini.set_options"](name, sections, test=test, secret_keys=secret_keys))
        return changes

    managed_perms = mode is not None or user is not None or group is not None
    return _converge(name, call, "options and permissions" if managed_perms else "options")


def options_absent(name, sections, secret_keys=None):
    """Make the keys ``{section: [key, ...]}`` absent from the INI file ``name``."""
    def call(test):
        return __salt__["openstack_ini.remove_options"](name, sections, test=test, secret_keys=secret_keys)

    return _converge(name, call, "options")


def permissions_present(name, mode=None, user=None, group=None):
    """The existing file ``name`` has this mode, owner and group (each when given)."""
    return _converge(name, lambda test: _permissions(name, mode, user, group, test), "permissions")
