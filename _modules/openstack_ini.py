"""Lossless editing of OpenStack INI files (nova.conf, api-paste.ini, ...).

The files we manage are large oslo.config samples, mostly commented defaults.
This module changes only the lines of the keys it is asked about and keeps
every other byte: comments, blank lines, order, CRLF or LF, a missing final
newline, mode and owner. One read and at most one atomic write per call,
under an flock of the file.

The text engine (parsing as oslo.config does, planning and applying the
edits, the rules of names and values) is ``_utils/openstack_inifile.py``;
this module does the file work around it.
"""
import errno
import fcntl
import logging
import os

try:
    from salt.exceptions import CommandExecutionError
except ImportError:  # pragma: no cover - only without salt installed
    CommandExecutionError = RuntimeError

log = logging.getLogger(__name__)

__virtualname__ = "openstack_ini"


def __virtual__():
    if "openstack_inifile.edit" not in __utils__:
        return (False, "openstack_ini: the formula's _utils are not loaded "
                       "(run saltutil.sync_all)")
    return __virtualname__


def _text(fun):
    return __utils__[f"openstack_inifile.{fun}"]


def _os_error(path, action, exc):
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return CommandExecutionError(f"{path}: cannot {action}: {reason}")


class _LockedFile:
    """Open ``path`` and hold an exclusive flock on the inode that is current.

    Writers replace the file by rename, so after waiting for the lock we check
    that we still hold the file at ``path``; concurrent applies serialise.
    """

    def __init__(self, path, exclusive=True):
        self.path, self.exclusive, self.fd = path, exclusive, None

    def __enter__(self):
        path = self.path
        if not os.path.isabs(path):
            raise CommandExecutionError(f"{path}: the path must be absolute")
        for _ in range(100):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except FileNotFoundError:
                raise CommandExecutionError(f"{path}: the file does not exist") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    fd = os.open(os.path.realpath(path), os.O_RDONLY)
                else:
                    raise _os_error(path, "open", exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
                st = os.fstat(fd)
                if os.path.isdir(path) or (st.st_mode & 0o170000) == 0o040000:
                    raise CommandExecutionError(f"{path}: is a directory, not a file")
                if os.stat(path).st_ino == st.st_ino:
                    self.fd, self.stat = fd, st
                    return self
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # replaced while we waited: lock the new file
        raise CommandExecutionError(f"{path}: the file keeps being replaced; giving up")

    def read(self):
        chunks = []
        try:
            while True:
                chunk = os.read(self.fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError as exc:
            raise _os_error(self.path, "read", exc) from None
        return b"".join(chunks).decode("utf-8", "surrogateescape")

    def __exit__(self, *exc):
        os.close(self.fd)


def _atomic_write(path, text, stat):
    """Replace ``path`` by ``text`` atomically, keeping its mode and owner."""
    try:
        __utils__["openstack_files.atomic_write"](path, text, stat.st_mode & 0o7777,
                                                 stat.st_uid, stat.st_gid)
    except OSError as exc:
        raise _os_error(path, "write", exc) from None


def _edit(path, wanted, test, secret_keys):
    masked = __utils__["openstack_state.mask_text"]()
    with _LockedFile(path, exclusive=not test) as handle:
        text, changes = _text("edit")(handle.read(), wanted, secret_keys, masked)
        if text is not None and not test:
            _atomic_write(path, text, handle.stat)
    return changes


def get_option(path, section, key):
    """Value of ``key`` in ``section`` of ``path``: a string, a list when the key
    is repeated (multi-valued option), or None when absent.

    CLI Example:

    .. code-block:: bash

        salt '*' openstack_ini.get_option /etc/nova/nova.conf DEFAULT my_ip
    """
    _text("check_name")(path, section, key)
    with _LockedFile(path, exclusive=False) as handle:
        values = _text("values")(handle.read(), section, key)
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def set_options(path, sections, test=False, secret_keys=None):
    """Set ``{section: {key: value}}`` in ``path``; return the changes made.

    A list value writes a multi-valued option (the key once per item, in
    order); ``None`` removes the key. Changes are ``{section: {key: {old,
    new}}}`` with secrets shown as ``********``. With ``test=True`` nothing
    is written.

    CLI Example:

    .. code-block:: bash

        salt '*' openstack_ini.set_options /etc/nova/nova.conf '{DEFAULT: {debug: true}}'
    """
    wanted = _text("normalise")(path, sections)
    return _edit(path, wanted, test, secret_keys)


def remove_options(path, sections, test=False, secret_keys=None):
    """Remove keys: ``sections`` is ``{section: [key, ...]}`` (or ``{section: {key: any}}``).

    CLI Example:

    .. code-block:: bash

        salt '*' openstack_ini.remove_options /etc/nova/nova.conf '{DEFAULT: [sql_connection]}'
    """
    wanted = _text("normalise")(path, sections, removal=True)
    return _edit(path, wanted, test, secret_keys)


def set_permissions(path, mode=None, user=None, group=None, test=False):
    """Give ``path`` this mode / owner / group; return ``{what: {old, new}}`` for
    what differed (with ``test=True`` nothing is changed).

    CLI Example:

    .. code-block:: bash

        salt '*' openstack_ini.set_permissions /etc/nova/nova.conf mode=0640 user=root group=nova
    """
    import grp
    import pwd

    try:
        st = os.stat(path)
    except OSError as exc:
        raise _os_error(path, "stat", exc) from None
    changes = {}
    uid = _owner_change(path, changes, "user", user, st.st_uid, pwd.getpwnam, pwd.getpwuid)
    gid = _owner_change(path, changes, "group", group, st.st_gid, grp.getgrnam, grp.getgrgid)
    if mode is not None:
        try:
            wanted_mode = int(str(mode), 8)
        except ValueError:
            raise CommandExecutionError(f"{path}: mode {mode!r} is not an octal number") from None
        if st.st_mode & 0o7777 != wanted_mode:
            changes["mode"] = {"old": f"{st.st_mode & 0o7777:04o}", "new": f"{wanted_mode:04o}"}
    if changes and not test:
        try:
            if "mode" in changes:  # narrow first, so the file is never wider than asked
                os.chmod(path, wanted_mode)
            if uid != -1 or gid != -1:
                os.chown(path, uid, gid)
        except OSError as exc:
            raise _os_error(path, "change ownership or mode of", exc) from None
    return changes


def _owner_change(path, changes, what, wanted, current_id, by_name, by_id):
    """Record in ``changes`` a differing owner (``what``: user or group); return
    the id to chown to, or -1 to leave it."""
    if wanted is None:
        return -1
    try:
        ident = by_name(str(wanted))[2]
    except KeyError:
        raise CommandExecutionError(f"{path}: {what} {wanted!r} does not exist") from None
    if ident == current_id:
        return -1
    changes[what] = {"old": _name_of(by_id, current_id), "new": str(wanted)}
    return ident


def _name_of(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)
