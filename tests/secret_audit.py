"""Find secrets where a user or another local account could see them.

Reusable by any test (the reliability tests, the end-to-end deploy):

    from secret_audit import ArgvSampler, audit

    with ArgvSampler() as argv:            # samples /proc/*/cmdline every 20 ms
        proc = subprocess.run([...salt-call...], capture_output=True, text=True)
    hits = audit(sentinels, outputs={"apply": proc.stdout + proc.stderr},
                 paths=["/var/log", "/tmp", cachedir], argv=argv,
                 exclude=[pillar_dir, *managed_files])
    assert not hits, describe(hits)

``audit`` searches each sentinel in several encodings (raw, URL-encoded with
``quote`` and ``quote_plus``, JSON- and repr-escaped, SQL-escaped, base64) and
its longest alphanumeric run (8+ characters): any escaping keeps that run, so
give every sentinel a unique random core (see :func:`sentinel`) and a leak in
an encoding nobody thought of is still found. Hits never hold the secret, so
a failing assertion does not leak it either.
"""
import base64
import json
import os
import re
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

# Every character a URL, a shell, SQL, JSON or YAML could choke on.
NASTY = "@:/%#&'\" \\"
MAX_FILE_BYTES = 64 << 20  # bigger files are skipped (counted in .skipped)
CHUNK = 4 << 20


def sentinel(label, without=""):
    """A unique secret: ``label``, a random 16-hex core, then every nasty
    character but those in ``without``."""
    nasty = "".join(ch for ch in NASTY if ch not in without)
    return f"{label}-{secrets.token_hex(8)}{nasty}end"


def forms(secret):
    """{kind: text} of the ways ``secret`` could be written down."""
    out = {
        "raw": secret,
        "url": quote(secret, safe=""),
        "url-keep-slash": quote(secret),
        "url-plus": quote_plus(secret),
        "json": json.dumps(secret)[1:-1],
        "repr": repr(secret)[1:-1],
        "sql": secret.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"'),
        "base64": base64.b64encode(secret.encode()).decode().rstrip("="),
    }
    runs = re.findall(r"[A-Za-z0-9]+", secret)
    core = max(runs, key=len) if runs else ""
    if len(core) >= 8:
        out["core"] = core
    return {kind: text for kind, text in out.items() if text}


@dataclass(frozen=True)
class Hit:
    """One sentinel found somewhere. ``where`` never holds the secret."""
    sentinel: int   # index in the sentinels given to audit()
    kind: str       # which form matched (raw, url, json, core, ...)
    where: str      # "output:<name>", "file:<path>@<offset>", "argv:<pid> <program>"

    def __str__(self):
        return f"sentinel #{self.sentinel} ({self.kind}) in {self.where}"


def describe(hits):
    return "\n".join(str(h) for h in hits) or "no hits"


class ArgvSampler:
    """Samples the argv (``/proc/<pid>/cmdline``) of every process in a thread.

    Each distinct (pid, argv) is kept once; ``.samples`` counts the sweeps
    and ``.seen`` the distinct command lines. Use as a context manager around
    what should be watched. ``environ=True`` also reads ``/proc/<pid>/environ``.
    """

    def __init__(self, interval=0.02, environ=False):
        self.interval = interval
        self.environ = environ
        self.samples = 0
        self.seen = {}  # (pid, bytes) -> first sweep number
        self._stop = threading.Event()
        self._thread = None

    def _sweep(self):
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            for what in ("cmdline", "environ") if self.environ else ("cmdline",):
                try:
                    with open(f"/proc/{name}/{what}", "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue  # the process ended
                if data:
                    self.seen.setdefault((int(name), what, data), self.samples)
        self.samples += 1

    def _loop(self):
        while not self._stop.is_set():
            self._sweep()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._sweep()
        self._thread = threading.Thread(target=self._loop, name="argv-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sweep()

    def entries(self):
        """[(label, bytes)] of everything sampled."""
        out = []
        for (pid, what, data) in self.seen:
            program = data.split(b"\0", 1)[0].decode("utf-8", "replace")[-60:]
            out.append((f"{what}:{pid} {program}", data))
        return out


class _Stats:
    def __init__(self):
        self.files = 0
        self.bytes = 0
        self.skipped = []  # (path, why)


def _needles(sentinels):
    """[(index, kind, bytes)] longest first, so a file reports its most precise form."""
    out = []
    for index, secret in enumerate(sentinels):
        for kind, text in forms(secret).items():
            out.append((index, kind, text.encode("utf-8")))
    return sorted(out, key=lambda n: -len(n[2]))


def _search_bytes(data, needles, where, hits, seen):
    for index, kind, needle in needles:
        if index in seen:
            continue  # one hit per sentinel and place is enough
        pos = data.find(needle)
        if pos >= 0:
            seen.add(index)
            hits.append(Hit(index, kind, where(pos)))


def _excluded(path, exclude):
    return any(path == ex or path.startswith(ex.rstrip("/") + "/") for ex in exclude)


def _search_file(path, needles, hits, stats, max_bytes):
    try:
        st = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISREG(st.st_mode):
        return  # sockets, fifos, devices, symlinks (their target is walked itself)
    if st.st_size > max_bytes:
        stats.skipped.append((path, f"{st.st_size} bytes"))
        return
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        stats.skipped.append((path, exc.strerror or str(exc)))
        return
    stats.files += 1
    stats.bytes += len(data)
    _search_bytes(data, needles, lambda pos: f"file:{path}@{pos}", hits, set())


def audit(sentinels, outputs=None, paths=(), argv=None, exclude=(), max_bytes=MAX_FILE_BYTES,
          stats=None):
    """Search every sentinel; return the list of :class:`Hit` (empty: none found).

    sentinels
        The secrets (strings).
    outputs
        ``{name: text}`` (state output, stderr, ...) or a list of texts.
    paths
        Files or folders, walked recursively without following symlinks;
        files above ``max_bytes`` and anything in ``exclude`` are skipped.
    argv
        An :class:`ArgvSampler` (or a list of (label, bytes)) to search too.
    stats
        Optional object receiving ``files``, ``bytes``, ``skipped`` counts.
    """
    needles = _needles([s for s in sentinels])
    hits = []
    stats = stats if stats is not None else _Stats()
    for attr, default in (("files", 0), ("bytes", 0), ("skipped", [])):
        if not hasattr(stats, attr):
            setattr(stats, attr, default)
    if isinstance(outputs, dict):
        items = outputs.items()
    else:
        items = ((f"#{i}", text) for i, text in enumerate(outputs or ()))
    for name, text in items:
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
        _search_bytes(data, needles, lambda pos, n=name: f"output:{n}@{pos}", hits, set())
    exclude = [os.path.abspath(str(e)) for e in exclude]
    for top in paths:
        top = os.path.abspath(str(top))
        if _excluded(top, exclude):
            continue
        if os.path.isfile(top):
            _search_file(top, needles, hits, stats, max_bytes)
            continue
        for folder, dirs, files in os.walk(top, followlinks=False):
            if folder.startswith("/proc") or _excluded(folder, exclude):
                dirs[:] = []
                continue
            for fname in files:
                path = os.path.join(folder, fname)
                if not _excluded(path, exclude):
                    _search_file(path, needles, hits, stats, max_bytes)
    if argv is not None:
        entries = argv.entries() if isinstance(argv, ArgvSampler) else argv
        for label, data in entries:
            _search_bytes(data, needles, lambda pos, lb=label: f"{lb}", hits, set())
    return hits


def wait_for(predicate, timeout=30.0, interval=0.1):
    """Poll ``predicate`` until true or ``timeout`` seconds; return its last value."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > end:
            return value
        time.sleep(interval)
