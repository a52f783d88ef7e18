"""What every state and module of this formula shares: masking secrets, and
the one protocol of a state (compare, honour ``test``, change, report).

Loaded by Salt as ``__utils__["openstack_state.<function>"]`` (``_utils/`` is
synced with the modules). A utility module sees no other ``__utils__``, and
it never calls back into a state's code: a callback run from here would
resolve ``__utils__`` and ``__opts__`` through the utilities' loader (Salt
3008.4: "LazyLoader does not have a packed value for: __utils__"). The state
keeps the control flow::

    def thing_present(name, ...):
        ret = __utils__["openstack_state.new_ret"](name)
        try:
            current = read()                                  # compare
            ret["comment"] = "... is present"
            if __utils__["openstack_state.change"](           # report; True: act now
                    ret, {"thing": {"old": current, "new": wanted}}, __opts__["test"],
                    would="... would be created", done="... created"):
                create()
        except Exception as exc:
            __utils__["openstack_state.failed"](ret, exc, secrets=[password])
        return ret

``failed`` turns an error into a failed state whose comment is masked (or,
in a test run where states it requires are pending, into result None);
``guard`` does it for a ``with`` block, and ``guard_state`` is that block for
a state function, read from the state module's own ``__opts__["test"]`` and
globals, so every state module runs its bodies the same way::

    ret = __utils__["openstack_state.new_ret"](name)
    with __utils__["openstack_state.guard_state"](ret, __opts__["test"], globals()):
        body(ret)
    return ret
"""
import logging
import re
from collections.abc import Mapping
from urllib.parse import quote

log = logging.getLogger(__name__)

MASK = "********"
# user:password@ inside any URL (mysql+pymysql://, rabbit://, http://...).
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
# What MySQL's escape_string does to a value (a secret may show escaped).
_SQL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", '"': '\\"', "\0": "\\0",
                              "\n": "\\n", "\r": "\\r", "\x1a": "\\Z"})


def mask_text():
    """The string every secret is shown as."""
    return MASK


def secret_forms(secret):
    """The ways ``secret`` can show up in a text: as is, URL-encoded, as
    Python's repr escapes it and as SQL escapes it."""
    if isinstance(secret, bytes):
        secret = secret.decode("utf-8", "replace")
    secret = str(secret)
    forms = {secret, quote(secret, safe=""), repr(secret)[1:-1], secret.translate(_SQL_ESCAPES)}
    return sorted((f for f in forms if f), key=len, reverse=True)


def mask(text, secrets=()):
    """``text`` with every secret (in each of its forms) and every URL
    password replaced by ``********``."""
    text = str(text)
    for secret in secrets or ():
        if secret is None or secret == "" or secret == b"":
            continue
        for form in secret_forms(secret):
            text = text.replace(form, MASK)
    return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)


def mask_url(url):
    """``url`` with its ``user:password@`` part masked; non-strings as they are."""
    if not isinstance(url, str):
        return url
    return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", url)


class Invalid(Exception):
    """Bad state input or a refusal: a failed state whose comment is the
    message as it is (like Salt's CommandExecutionError)."""


def invalid(text):
    """The exception a state raises for bad input or a refusal."""
    return Invalid(text)


def need_str(value, arg, allow_none=False, hint=""):
    """Refuse ``value`` unless it is a non-empty string (or None, allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{arg} must be a non-empty string{hint}")


def need_text(value, arg):
    """Refuse ``value`` unless it is a string or None."""
    if value is not None and not isinstance(value, str):
        raise Invalid(f"{arg} must be a string")


def auth_args(auth, cloud):
    """A state's Keystone admin credentials (``auth`` dict or ``cloud``
    name), checked, as the execution modules' keyword arguments."""
    if auth is not None and not isinstance(auth, dict):
        raise Invalid("auth must be a dict of Keystone admin credentials")
    if cloud is not None and not isinstance(cloud, str):
        raise Invalid("cloud must be a clouds.yaml cloud name")
    return {"auth": auth, "cloud": cloud}


def new_ret(name):
    """A state return that says: nothing to do, all fine."""
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def failed(ret, exc, secrets=(), invalid=(), test=False, running=None, low=None, chunks=None):
    """Make ``ret`` report the error ``exc``: result False, no changes, a
    masked comment, never a traceback. ``invalid``: exception types whose
    message is shown as it is (bad input), like Salt's CommandExecutionError.

    With ``test`` and ``running`` (the state's ``__running__``): when the
    check failed while earlier states it depends on are pending (they would
    change something first, e.g. install the package or fix the grant the
    check needs), the result is None with that reason, not a failure.
    ``low`` and ``chunks`` (``__low__``, ``__lowstate__``) narrow "depends on"
    to the state's requisites, followed through; without them every earlier
    pending state counts."""
    known = isinstance(exc, (Invalid, *invalid)) or _is_command_error(exc)
    text = str(exc) if known else f"unexpected error: {type(exc).__name__}: {exc}"
    if not known:
        log.debug("state %s failed", ret.get("name"), exc_info=exc)
    try:
        text = mask(text, secrets)
    except Exception:  # noqa: BLE001 - never risk an unmasked text
        text = f"unexpected error: {type(exc).__name__}"
    waiting = pending_states(running, low, chunks) if test else []
    if waiting:
        shown = ", ".join(waiting[:5]) + (" ..." if len(waiting) > 5 else "")
        text = (f"cannot be checked before {len(waiting)} earlier pending state(s) "
                f"change ({shown}): {text}")
    ret.update(result=None if waiting else False, changes={}, comment=text)
    return ret


def pending_states(running, low=None, chunks=None):
    """Ids of the states of this run that would change something (result
    None in a test run), in the order they ran; with ``low`` and ``chunks``,
    only those the state ``low`` requires, directly or through others."""
    scope = _required_ids(low, chunks) if low and chunks else None
    found = []
    for tag, res in sorted((running or {}).items(), key=_run_num):
        if isinstance(res, Mapping) and res.get("result") is None:  # Salt freezes them
            sid = res.get("__id__") or tag.split("_|-")[1 if "_|-" in tag else 0]
            if scope is None or sid in scope:
                found.append(sid)
    return found


_REQUISITES = ("require", "watch", "prereq", "onchanges", "use")


def _required_ids(low, chunks):
    """The ids of the chunks ``low`` requires (any requisite kind, or its
    ``_in`` form on the other side), followed through: a requisite names an
    id, a state's name, or a whole SLS."""
    def matches(req):
        if isinstance(req, str):
            return [c for c in chunks if req in (c.get("__id__"), c.get("name"))]
        found = []
        for kind, value in (req.items() if isinstance(req, Mapping) else ()):
            if kind == "sls":
                found += [c for c in chunks if c.get("__sls__") == value]
            else:
                found += [c for c in chunks if value in (c.get("__id__"), c.get("name"))
                          and kind in ("id", c.get("state"))]
        return found

    def requisites(chunk):
        for kind in _REQUISITES:
            for req in chunk.get(kind) or ():
                yield from matches(req)
        # ... and those that name it in their own `<kind>_in`
        for other in chunks:
            for kind in _REQUISITES:
                if any(chunk in matches(req) for req in other.get(f"{kind}_in") or ()):
                    yield other

    seen, todo = set(), [low]
    while todo:
        for dep in requisites(todo.pop()):
            if dep.get("__id__") not in seen:
                seen.add(dep.get("__id__"))
                todo.append(dep)
    return seen


def _run_num(item):
    return item[1].get("__run_num__", 0) if isinstance(item[1], Mapping) else 0


def _is_command_error(exc):
    # Salt's CommandExecutionError and its subclasses, found by name so this
    # module imports nothing of Salt's at load time.
    return any(cls.__name__ == "CommandExecutionError" for cls in type(exc).__mro__)


def change(ret, changes, test, would, done):
    """Report ``changes``; return True when the caller must make them now.
    With ``test``: result None and the ``would`` comment. Else the ``done``
    comment (None: the caller writes it). No changes: ``ret`` is left alone."""
    if not changes:
        return False
    ret["changes"] = changes
    if test:
        ret["result"] = None
        ret["comment"] = would
        return False
    if done is not None:
        ret["comment"] = done
    return True


class _Partial(Exception):
    """A write failed after others were made: the cause, and what was done."""

    def __init__(self, cause, done):
        super().__init__(str(cause))
        self.cause, self.done = cause, list(done)


def partial(cause, done):
    """The exception to raise when a write fails after the writes ``done``
    (labels): ``guard`` reports the failure and, as changes, what was done."""
    return _Partial(cause, done)


class _Guard:
    def __init__(self, ret, secrets, invalid, test, running, low, chunks):
        self.ret, self.secrets, self.invalid = ret, secrets, invalid
        self.test, self.running, self.low, self.chunks = test, running, low, chunks

    def __enter__(self):
        return self.ret

    def __exit__(self, kind, exc, trace):
        if not isinstance(exc, Exception):
            return False  # no error, or KeyboardInterrupt/SystemExit: not ours
        if isinstance(exc, _Partial):
            failed(self.ret, exc.cause, self.secrets, self.invalid)
            self.ret["changes"] = {"done before the failure": exc.done}
        else:
            failed(self.ret, exc, self.secrets, self.invalid, self.test, self.running,
                   self.low, self.chunks)
        return True


def guard(ret, secrets=(), invalid=(), test=False, running=None, low=None, chunks=None):
    """A context manager: an error raised in its block makes ``ret`` a failed
    state (``failed``, with these arguments), never a traceback; a ``partial``
    one also lists what was done before it."""
    return _Guard(ret, secrets, invalid, test, running, low, chunks)


def guard_state(ret, test, dunders, secrets=(), invalid=()):
    """``guard`` for a state function: ``test`` is its ``__opts__["test"]``
    (read in the state's own frame: ``__opts__`` resolves through the loader
    that is running), ``dunders`` its module's ``globals()``, whose
    ``__running__``, ``__low__`` and ``__lowstate__`` (plain values Salt
    injects for the call) say what the state waits for."""
    return guard(ret, secrets, invalid, test=bool(test), running=dunders.get("__running__"),
                 low=dunders.get("__low__"), chunks=dunders.get("__lowstate__"))
