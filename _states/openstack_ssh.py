"""Migration trust among computes (see the openstack_ssh execution module):
the nova user's key, this host's identity in the mine, the others' keys in
authorized_keys and known_hosts, sshd serving sftp. Each compares first,
honours ``test`` and reports only what changed; no private key is ever in
a return."""

__virtualname__ = "openstack_ssh"


def __virtual__():
    if "openstack_ssh.identity" not in __salt__:
        return (False, "openstack_ssh states need the openstack_ssh execution module "
                       "(run saltutil.sync_all)")
    return __virtualname__


def _ssh(fun, *args, **kwargs):
    return __salt__[f"openstack_ssh.{fun}"](*args, **kwargs)


def _state(name, body):
    ret = __utils__["openstack_state.new_ret"](name)
    with __utils__["openstack_state.guard_state"](ret, __opts__["test"], globals(),
                                                   invalid=(ValueError,)):
        body(ret)
    return ret


def _change(ret, changes, what, act):
    if __utils__["openstack_state.change"](ret, changes, __opts__["test"], f"{what} would change",
                                           f"{what} changed") and act is not None:
        act()


def key_present(name):
    """User ``name`` has its migration SSH key (ed25519, no passphrase)."""
    def body(ret):
        key = _ssh("public_key", name)
        if key:
            ret["comment"] = f"{name}'s migration key is present"
            return
        _change(ret, {"key": {"old": None, "new": f"ed25519 key of {name}"}},
                f"{name}'s migration key", lambda: _ssh("key_create", name))
    return _state(name, body)


def published(name, sshd_dir="/etc/ssh", tgt=None, tgt_type="list"):
    """The mine holds this compute's names, ``name``'s public key and the
    host keys (``openstack_ssh.identity``), as they are now. ``tgt``: the
    computes (this one among them), read once for this state and
    ``trust_present``."""
    def body(ret):
        want, have = _ssh("identity", name, sshd_dir), _ssh("published", tgt, tgt_type)
        if want == have:
            ret["comment"] = "this compute's keys are in the mine"
            return
        if not want["user_key"] and not __opts__["test"]:
            raise ValueError(f"{name} has no migration key to publish")
        diff = sorted(k for k in want if (have or {}).get(k) != want[k])
        _change(ret, {"mine": {"old": "absent" if have is None else "stale",
                               "new": "published", "fields": diff}},
                "this compute's keys in the mine", lambda: _ssh("publish", name, sshd_dir))
    return _state(name, body)


def unpublished(name):
    """This compute's keys are out of the mine (the others then drop it)."""
    def body(ret):
        if _ssh("published") is None:
            ret["comment"] = "this compute's keys are not in the mine"
            return
        _change(ret, {"mine": {"old": "published", "new": "absent"}},
                "this compute's keys in the mine", lambda: _ssh("unpublish"))
    return _state(name, body)


def trust_present(name, tgt, tgt_type="list"):
    """User ``name`` trusts the other computes of ``tgt`` found in the mine:
    their user keys in authorized_keys, their host keys in known_hosts;
    computes no longer in the mine are dropped from both."""
    def body(ret):
        changes = _ssh("trust", name, tgt, tgt_type, test=True)
        if not changes:
            ret["comment"] = f"{name} trusts the other computes already"
            return
        _change(ret, changes, f"{name}'s authorized_keys/known_hosts",
                lambda: _ssh("trust", name, tgt, tgt_type))
    return _state(name, body)


def sftp_served(name):
    """sshd's config ``name`` has an sftp subsystem (else one is added)."""
    def body(ret):
        have = _ssh("sftp_subsystem", name)
        if have:
            ret["comment"] = f"{name} serves sftp ({have})"
            return
        _change(ret, {"Subsystem sftp": {"old": None, "new": "internal-sftp"}}, name,
                lambda: _ssh("sftp_enable", name))
    return _state(name, body)
