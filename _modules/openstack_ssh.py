"""Migration trust among compute hosts, through the Salt mine.

Each compute's ``nova`` user has an SSH key (``~/.ssh/id_ed25519``); its
public key and the host's SSH host keys are published in the mine under
``nova_migration`` (``identity`` is what is sent: public keys and the
host's names, never a private key). Every compute then writes the others'
public keys to the user's ``authorized_keys`` and their host keys to its
``known_hosts``, so ``ssh``/``scp``/``sftp`` between computes work with
``StrictHostKeyChecking=yes``.

The lines this module writes end with the comment ``nova-migration@<host>``;
every other line of those files stays byte for byte. Files are written
atomically (temp file in the same folder, fsync, rename), mode 0600, owned
by the user.
"""
import os
import pwd
import re
import subprocess

__virtualname__ = "openstack_ssh"

MINE_FUN = "nova_migration"
MARK = "nova-migration@"
KEY_FILE = "id_ed25519"
SSHD_DIR = "/etc/ssh"


def __virtual__():
    if "openstack_files.atomic_write" not in __utils__:
        return (False, "openstack_ssh: the formula's _utils are not loaded (run saltutil.sync_all)")
    return __virtualname__


def _me():
    return __opts__.get("id") or __grains__.get("id")


def _account(user):
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"no such user: {user!r}") from None


def _ssh_dir(user):
    return os.path.join(_account(user).pw_dir, ".ssh")


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def public_key(user="nova"):
    """The public key of ``user``'s migration key (``type base64``), or None.

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.public_key nova
    """
    text = _read(os.path.join(_ssh_dir(user), KEY_FILE + ".pub"))
    if not text or not os.path.exists(os.path.join(_ssh_dir(user), KEY_FILE)):
        return None
    return " ".join(text.split()[:2])


def key_create(user="nova"):
    """Make ``user``'s ed25519 key (no passphrase) in ``~/.ssh``; return the
    public key. The private key never leaves the file (mode 0600, the user's).

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.key_create nova
    """
    acct, folder = _account(user), _ssh_dir(user)
    if not os.path.isdir(folder):
        os.mkdir(folder, 0o700)
        os.chown(folder, acct.pw_uid, acct.pw_gid)
    path = os.path.join(folder, KEY_FILE)
    for stale in (path, path + ".pub"):
        if os.path.exists(stale):
            os.unlink(stale)
    proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                           f"{MARK}{_me()}", "-f", path], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ssh-keygen failed for {path}: {proc.stderr.strip()[-500:]}")
    for made in (path, path + ".pub"):
        os.chown(made, acct.pw_uid, acct.pw_gid)
    return public_key(user)


def host_keys(sshd_dir=SSHD_DIR):
    """This host's SSH host public keys (``type base64``), sorted.

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.host_keys
    """
    found = []
    for name in sorted(os.listdir(sshd_dir)):
        if re.fullmatch(r"ssh_host_\w+_key\.pub", name):
            parts = (_read(os.path.join(sshd_dir, name)) or "").split()
            if len(parts) >= 2:
                found.append(f"{parts[0]} {parts[1]}")
    return sorted(found)


def names():
    """The names other computes reach this host by: minion id, host name,
    FQDN and its non-loopback IPv4 addresses.

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.names
    """
    out = [_me(), __grains__.get("host"), __grains__.get("fqdn")]
    out += [a for a in __grains__.get("ipv4", []) if not a.startswith("127.")]
    return [n for n in dict.fromkeys(out) if n]


def identity(user="nova", sshd_dir=SSHD_DIR):
    """What this compute publishes in the mine: its names, ``user``'s public
    key and the host keys (no private key).

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.identity nova
    """
    return {"host": _me(), "names": names(), "user_key": public_key(user),
            "host_keys": host_keys(sshd_dir)}


def _mine(tgt, tgt_type):
    """The mine's ``nova_migration`` entries of ``tgt``, asked once per run:
    each ``mine.get`` is a round trip to the master (with a key load) of
    ~50 ms, and a no-op asks for this minion's entry and its peers'."""
    key = ("openstack_ssh.mine", repr(tgt), tgt_type)
    if key not in __context__:
        __context__[key] = __salt__["mine.get"](tgt, MINE_FUN, tgt_type=tgt_type) or {}
    return __context__[key]


def _forget_mine():
    for key in [k for k in __context__ if isinstance(k, tuple) and k[:1] == ("openstack_ssh.mine",)]:
        del __context__[key]


def published(tgt=None, tgt_type="list"):
    """What the mine holds for this minion (None: nothing). With ``tgt`` (the
    computes, this one among them) the answer is the one ``peers`` then
    reuses: one round trip to the master for both.

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.published
        salt cmp1 openstack_ssh.published '[cmp1, cmp2]'
    """
    if tgt is not None:
        found = _mine(tgt, tgt_type)
        if _me() in found:
            return found[_me()]
    return _mine(_me(), "list").get(_me())


def publish(user="nova", sshd_dir=SSHD_DIR):
    """Send this compute's identity to the mine.

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.publish nova
    """
    _forget_mine()
    return bool(__salt__["mine.send"](MINE_FUN, mine_function="openstack_ssh.identity",
                                      user=user, sshd_dir=sshd_dir))


def unpublish():
    """Take this compute's identity out of the mine.

    CLI Example:

    .. code-block:: bash

        salt cmp2 openstack_ssh.unpublish
    """
    _forget_mine()
    return bool(__salt__["mine.delete"](MINE_FUN))


def peers(tgt, tgt_type="list"):
    """{minion: identity} of the other computes (``tgt``) in the mine.

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.peers '[cmp1, cmp2]'
    """
    found = _mine(tgt, tgt_type)
    return {m: ident for m, ident in sorted(found.items())
            if m != _me() and isinstance(ident, dict)}


# ---------------------------------------------------------------- the files
def _ours(line):
    parts = line.split()
    return bool(parts) and not line.startswith("#") and parts[-1].startswith(MARK)


def _merge(text, wanted):
    """``text`` with our lines replaced by ``wanted`` (others kept as they
    are, ours in their place or appended), and the hosts added/removed."""
    text = text or ""
    lines = text.splitlines(keepends=True)
    kept = [ln for ln in lines if not _ours(ln)]
    old = {ln.rstrip("\r\n") for ln in lines if _ours(ln)}
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    new = "".join(kept) + "".join(ln + "\n" for ln in wanted)
    host = lambda ln: ln.split()[-1][len(MARK):]  # noqa: E731
    added = sorted({host(ln) for ln in set(wanted) - old})
    removed = sorted({host(ln) for ln in old - set(wanted)})
    return new, added, removed


def wanted_lines(found):
    """({authorized_keys lines}, {known_hosts lines}) for the peers ``found``
    ({minion: identity}).

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.wanted_lines "$(salt --out=json cmp1 openstack_ssh.peers '[cmp2]')"
    """
    auth, known = [], []
    for minion, ident in sorted(found.items()):
        mark = f"{MARK}{ident.get('host') or minion}"
        if ident.get("user_key"):
            auth.append(f"{ident['user_key']} {mark}")
        hosts = ",".join(ident.get("names") or [minion])
        known += [f"{hosts} {key} {mark}" for key in ident.get("host_keys") or []]
    return auth, known


def trust(user="nova", tgt=None, tgt_type="list", test=False):
    """Write the peers' keys into ``user``'s authorized_keys and known_hosts;
    return {file: {"added": [hosts], "removed": [hosts]}} of what changed
    (with ``test``: what would). ``tgt``: the computes (the others are read
    from the mine).

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.trust nova '[cmp1, cmp2]'
    """
    auth, known = wanted_lines(peers(tgt, tgt_type))
    acct, folder = _account(user), _ssh_dir(user)
    changes = {}
    for name, wanted in (("authorized_keys", auth), ("known_hosts", known)):
        path = os.path.join(folder, name)
        old = _read(path)
        new, added, removed = _merge(old, wanted)
        if new == (old or "") and old is not None:
            continue
        if not (added or removed) and old is None and not wanted:
            continue
        changes[path] = {"added": added, "removed": removed}
        if not test:
            if not os.path.isdir(folder):
                os.mkdir(folder, 0o700)
                os.chown(folder, acct.pw_uid, acct.pw_gid)
            __utils__["openstack_files.atomic_write"](path, new, 0o600, acct.pw_uid,
                                                      acct.pw_gid)
    return changes


def sftp_subsystem(path="/etc/ssh/sshd_config"):
    """The ``Subsystem sftp`` command sshd's config sets, or None.

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.sftp_subsystem
    """
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].lower() == "subsystem" and parts[1] == "sftp":
            return " ".join(parts[2:])
    return None


def sftp_enable(path="/etc/ssh/sshd_config", test=False):
    """Add ``Subsystem sftp internal-sftp`` (before any ``Match`` block, where
    sshd accepts it) when the config has no sftp subsystem; True when added.

    CLI Example:

    .. code-block:: bash

        salt cmp1 openstack_ssh.sftp_enable
    """
    if sftp_subsystem(path):
        return False
    text = _read(path)
    if text is None:
        raise ValueError(f"{path} does not exist")
    lines = text.splitlines(keepends=True)
    at = next((i for i, ln in enumerate(lines) if ln.split()[:1] and
               ln.split()[0].lower() == "match"), len(lines))
    if at and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    lines.insert(at, "# nova-formula: OpenSSH 9's scp (resize, cold migration) needs sftp\n"
                     "Subsystem sftp internal-sftp\n")
    if not test:
        st = os.stat(path)
        __utils__["openstack_files.atomic_write"](path, "".join(lines), st.st_mode & 0o7777,
                                                  st.st_uid, st.st_gid)
    return True
