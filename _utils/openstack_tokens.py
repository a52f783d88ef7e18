"""Keystone tokens kept between runs, so a no-op run does not log in.

A password login costs Keystone a bcrypt hash (0.2-0.7 s on two cores); a
highstate that corrects drift every N minutes would pay it for the admin and
for every service user it checks. The tokens those logins return are kept
here until shortly before they expire, and reused:

* the admin's token: used as is; a 401 (revoked meanwhile) forgets it and
  logs in again, once;
* a service user's token: *validated* (one cheap GET by the admin) instead of
  logging in again. It proves the password as well as a login does: Keystone
  revokes a user's tokens when the password changes, or the user is disabled
  or deleted, and a Fernet token's roles are computed when it is validated.

Where and how: one file per credential set under ``<cachedir>/openstack_tokens``
(folder 0700, files 0600, root), named by an HMAC of the credentials (password
included, so a changed password never finds an old token) under a random key
kept in that folder; nothing in it is a password. A token is a bearer
credential for at most its lifetime (Keystone's default: 1 h): less than the
service passwords root can read in nova.conf and pillar already. Turn it off
with ``openstack_keystone:token_cache: false`` (then every run logs in).
"""
import datetime
import hashlib
import hmac
import json
import os
import secrets
import time

FOLDER = "openstack_tokens"
_KEY_FILE = ".key"
# A token that expires within this many seconds is not reused: a run must not
# start with a token that dies halfway (keystoneauth re-authenticates at 120).
MIN_LIFE = 300


class Store:
    """The token folder of one minion cache directory."""

    def __init__(self, cachedir, write=None):
        """``write``: openstack_files.atomic_write (its module is a sibling,
        passed in by the caller's ``__utils__``); only ``save`` needs it."""
        self.path = os.path.join(cachedir, FOLDER)
        self._write = write
        self._key = None

    def _folder(self):
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        os.chmod(self.path, 0o700)
        return self.path

    def _hmac_key(self):
        if self._key is None:
            path = os.path.join(self._folder(), _KEY_FILE)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                with open(path, "rb") as fh:
                    self._key = fh.read()
            else:
                key = secrets.token_bytes(32)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(key)
                self._key = key
            if len(self._key) < 32:
                raise OSError(f"{path} is damaged")
        return self._key

    def slot(self, *material):
        """The file name of a credential set (any JSON-able values)."""
        text = json.dumps(material, sort_keys=True, default=str).encode()
        return hmac.new(self._hmac_key(), text, hashlib.sha256).hexdigest()

    def load(self, slot):
        """The saved entry of ``slot`` (a dict holding ``expires``), or None when
        there is none, it is unreadable or it expires within MIN_LIFE."""
        try:
            with open(os.path.join(self.path, slot)) as fh:
                entry = json.load(fh)
            if float(entry["expires"]) > time.time() + MIN_LIFE:
                return entry
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def save(self, slot, entry):
        """Keep ``entry`` (a dict with ``expires``: seconds since the epoch),
        written atomically, 0600; expired entries of other slots go."""
        self._write(os.path.join(self._folder(), slot), json.dumps(entry), 0o600,
                    os.getuid(), os.getgid())
        self._prune(keep=slot)

    def forget(self, slot):
        try:
            os.unlink(os.path.join(self.path, slot))
        except OSError:
            pass

    def clear(self):
        """Forget every token; returns how many there were."""
        count = 0
        for name in self._names():
            self.forget(name)
            count += 1
        return count

    def _names(self):
        try:
            names = os.listdir(self.path)
        except OSError:
            return []
        return [n for n in names if not n.startswith(".")]

    def _prune(self, keep):
        now = time.time()
        for name in self._names():
            if name == keep:
                continue
            try:
                with open(os.path.join(self.path, name)) as fh:
                    if float(json.load(fh)["expires"]) > now:
                        continue
            except (OSError, ValueError, KeyError, TypeError):
                pass
            self.forget(name)


def expires_at(text):
    """Keystone's ``expires_at`` (ISO 8601, UTC) as seconds since the epoch
    (0 if unreadable: such a token is never reused)."""
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return 0.0


def store_for(opts, config_get, write):
    """The token store of this minion (``opts['cachedir']``), or None when
    ``openstack_keystone:token_cache`` (minion config or pillar) is false;
    ``write``: openstack_files.atomic_write."""
    enabled = config_get("openstack_keystone:token_cache", True)
    if isinstance(enabled, str):
        enabled = enabled.strip().lower() not in ("0", "false", "no", "off", "")
    if not enabled or not opts.get("cachedir"):
        return None
    return Store(opts["cachedir"], write)


def clear(cachedir):
    """Forget every token kept under ``cachedir``; returns how many there were."""
    return Store(cachedir).clear()
