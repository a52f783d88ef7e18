"""The INI text engine of ``openstack_ini``: parse an oslo.config file, plan
the edits that bring some keys to their wanted values, apply them, and the
rules a section, key or value must follow. Pure text: no file I/O (the
execution module reads, locks and writes). Also used by the formula's pillar
validator, so it refuses exactly what the engine would.

Parsing follows oslo.config's iniparser: a ``[section]`` header and a
``key = value`` (or ``key: value``) line start in column 0, a line starting
with ``#`` or ``;`` is a comment, an indented line continues the value above.
``[DEFAULT]`` is an ordinary section, and section names are case-sensitive.
Values are read as oslo.config reads them (stripped, one pair of matching
quotes dropped) and written so that it reads back exactly what was asked.
"""
import re

try:
    from salt.exceptions import CommandExecutionError
except ImportError:  # pragma: no cover - only without salt installed
    CommandExecutionError = RuntimeError

# Keys whose values are secrets, whatever the file: passwords, shared secrets,
# URLs that carry credentials (transport_url, [database] connection), tokens.
SECRET_KEY_PATTERN = re.compile(r"pass|secret|transport_url|connection|token", re.I)

# One pass finds every header and option line. The leading "\n" lets the regex
# engine jump from newline to newline instead of trying every character; the
# text is searched with a "\n" prepended, so offsets are shifted by one.
_LINE = re.compile(
    r"\n(?:"
    r"\[(?P<section>[^\r\n]*)\][ \t\r]*(?=\n|\Z)"
    r"|(?P<key>[^#;\[\s][^=:\r\n]*?)[ \t]*[=:](?P<value>[^\r\n]*)"
    r"(?P<cont>(?:\r?\n[ \t]+\S[^\r\n]*)*)"
    r")"
)
_TRUE = {"1", "t", "true", "on", "y", "yes"}
_FALSE = {"0", "f", "false", "off", "n", "no"}


class _Option:
    __slots__ = ("start", "end", "value")

    def __init__(self, start, end, value):
        self.start, self.end, self.value = start, end, value


class _Section:
    __slots__ = ("name", "body_start", "body_end")

    def __init__(self, name, body_start, body_end):
        self.name, self.body_start, self.body_end = name, body_start, body_end


class IniDocument:
    """The text of one INI file plus an index of its headers and options."""

    def __init__(self, text):
        self.text = text
        self.newline = "\r\n" if "\r\n" in text[: text.find("\n") + 1] else "\n"
        self.sections = []  # in file order; a name may appear more than once
        self.options = {}  # (section, key) -> [_Option, ...] in file order
        current = None
        for match in _LINE.finditer("\n" + text):
            start = match.start()  # == offset of the line in ``text``
            name = match.group("section")
            if name is not None:
                end = self._line_end(match.end() - 1)
                if current is not None:
                    current.body_end = start
                current = _Section(name, end, len(text))
                self.sections.append(current)
            elif current is not None:  # options before any header are not read by oslo
                key = match.group("key").strip()
                value = _unquote(match.group("value").strip())
                cont = match.group("cont")
                if cont:
                    value = "\n".join([value] + [c.strip() for c in cont.strip("\r\n").splitlines() if c.strip()])
                end = self._line_end(match.end() - 1)
                self.options.setdefault((current.name, key), []).append(_Option(start, end, value))

    def _line_end(self, pos):
        """Offset just past the newline ending the line that holds ``pos``."""
        nl = self.text.find("\n", pos)
        return len(self.text) if nl < 0 else nl + 1

    def _commented_default(self, key, start, end):
        """Offset of the first "#key = ..." line in [start, end), or None.

        str.find on the key then a look around each hit: much faster than a
        multi-line regex over sections of thousands of comment lines.
        """
        text = self.text
        pos = text.find(key, start, end)
        while pos >= 0:
            line_start = text.rfind("\n", 0, pos) + 1
            head = text[line_start:pos]
            if head[:1] in ("#", ";") and not head[1:].strip(" \t"):
                after = pos + len(key)
                rest = text[after:after + 64].lstrip(" \t")
                if rest[:1] in ("=", ":"):
                    return line_start
            pos = text.find(key, pos + 1, end)
        return None

    def get(self, section, key):
        """[values] of ``key`` in ``section``, in file order (empty when absent)."""
        return [opt.value for opt in self.options.get((section, key), ())]

    def section_spans(self, section):
        return [s for s in self.sections if s.name == section]

    def insertion_point(self, section, key):
        """Where a new ``key`` goes: after its commented default, else at the section's end."""
        spans = self.section_spans(section)
        for span in spans:
            found = self._commented_default(key, span.body_start, span.body_end)
            if found is not None:
                return self._line_end(found)
        last = spans[-1]
        body = self.text[last.body_start:last.body_end]
        content_len = len(body.rstrip())
        if content_len == 0:
            return last.body_start
        return min(self._line_end(last.body_start + content_len - 1), last.body_end)


def is_secret(key, secret_keys=None):
    """True when the values of ``key`` are never shown (see SECRET_KEY_PATTERN)."""
    return bool(SECRET_KEY_PATTERN.search(key)) or key in (secret_keys or ())


def _unquote(value):
    """oslo.config drops one pair of matching quotes around a value."""
    if value and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _written(text):
    """The text to write so that oslo.config reads back exactly ``text``.

    A value oslo would change (one that starts and ends with the same quote,
    or has edge spaces) is wrapped in one more pair of double quotes.
    """
    if text and ((text[0] == text[-1] and text[0] in "\"'") or text != text.strip()):
        return f'"{text}"'
    return text


def render(value):
    """How oslo.config reads a pillar value back: booleans lower-case, numbers as str."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def same(current, wanted):
    """True when the text ``current`` means ``wanted`` to oslo.config."""
    if isinstance(wanted, bool):
        low = current.lower()
        return (wanted and low in _TRUE) or (not wanted and low in _FALSE)
    if isinstance(wanted, (int, float)):
        try:
            return float(current) == float(wanted)
        except ValueError:
            return False
    return current == wanted


def check_name(path, section, key=None):
    """Refuse a section or key that cannot be written back and read the same."""
    if not isinstance(section, str) or not section.strip():
        raise CommandExecutionError(f"{path}: section name {section!r} must be a non-empty string")
    if any(c in section for c in "[]=\r\n") or section != section.strip():
        raise CommandExecutionError(f"{path}: section name {section!r} must not contain '[', ']', '=', a newline or edge spaces")
    if key is None:
        return
    where = f"{path}: [{section}] {key!r}"
    if not isinstance(key, str) or not key.strip():
        raise CommandExecutionError(f"{where}: the key must be a non-empty string")
    if any(c in key for c in "[]=:\r\n") or key != key.strip() or key[0] in "#;":
        raise CommandExecutionError(f"{where}: the key must not contain '[', ']', '=', ':', a newline, edge spaces or start with '#'/';'")


def wanted_values(path, section, key, value):
    """Normalise a pillar value to the list of values to write (empty = absent)."""
    where = f"{path}: [{section}] {key}"
    items = [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not isinstance(item, (str, int, float, bool)):
            raise CommandExecutionError(f"{where}: value must be a string, number, boolean or a list of them, not {type(item).__name__}")
        text = render(item)
        if "\n" in text or "\r" in text:
            raise CommandExecutionError(f"{where}: value must not contain a newline")
    return items


def normalise(path, sections, removal=False):
    """Validate ``sections`` and return [(section, key, wanted_values)] in order."""
    if not isinstance(sections, dict):
        raise CommandExecutionError(f"{path}: sections must be a mapping of section -> {{key: value}}, not {type(sections).__name__}")
    wanted = []
    for section, keys in sections.items():
        check_name(path, section)
        if removal and isinstance(keys, (list, tuple)):
            keys = dict.fromkeys(keys)
        if not isinstance(keys, dict):
            raise CommandExecutionError(f"{path}: [{section}] must map keys to values, not {type(keys).__name__}")
        for key, value in keys.items():
            check_name(path, section, key)
            wanted.append((section, key, [] if removal else wanted_values(path, section, key, value)))
    return wanted


def _shown(values, secret, masked):
    if not values:
        return None
    if secret:
        return masked
    return values[0] if len(values) == 1 else list(values)


def plan_edits(doc, wanted, secret_keys, masked):
    """Compute (edits, changes) that bring ``doc`` to ``wanted`` without touching other bytes."""
    nl = doc.newline
    edits = []  # (start, end, replacement, order)
    new_sections = {}  # section -> [lines], for sections missing from the file
    changes = {}
    for order, (section, key, values) in enumerate(wanted):
        current = doc.get(section, key)
        if len(current) == len(values) and all(same(c, v) for c, v in zip(current, values)):
            continue
        secret = is_secret(key, secret_keys)
        changes.setdefault(section, {})[key] = {
            "old": _shown(current, secret, masked),
            "new": _shown([render(v) for v in values], secret, masked),
        }
        lines = "".join(f"{key} = {_written(render(v))}{nl}" for v in values)
        existing = doc.options.get((section, key), [])
        if existing:
            first = existing[0]
            if lines and not doc.text.endswith("\n", first.start, first.end):
                lines = lines[: -len(nl)]  # the replaced line was the last, without newline
            edits.append((first.start, first.end, lines, order))
            edits.extend((opt.start, opt.end, "", order) for opt in existing[1:])
        elif not doc.section_spans(section):
            new_sections.setdefault(section, []).append(lines)
        else:
            at = doc.insertion_point(section, key)
            edits.append((at, at, lines, order))
    if new_sections:
        block = "".join(f"{nl}[{name}]{nl}" + "".join(body) for name, body in new_sections.items())
        edits.append((len(doc.text), len(doc.text), block if doc.text else block[len(nl):], len(wanted)))
    return edits, changes


def apply_edits(text, edits):
    """Apply non-overlapping edits; insertions at the same offset keep their order."""
    out, prev = [], 0
    for start, end, replacement, _ in sorted(edits, key=lambda e: (e[0], e[1] > e[0], e[3])):
        if start == end and start == len(text) and text and not text.endswith("\n") and replacement:
            # Appending to a file without a final newline: end our text the same way.
            nl = "\r\n" if replacement.endswith("\r\n") else "\n"
            replacement = nl + replacement[: -len(nl)] if replacement.endswith(nl) else nl + replacement
        out.append(text[prev:start])
        out.append(replacement)
        prev = end
    out.append(text[prev:])
    return "".join(out)



def parse(text):
    """The parsed document of ``text`` (headers and options indexed)."""
    return IniDocument(text)


def values(text, section, key):
    """[values] of ``key`` in ``section`` of ``text``, in file order (empty: absent)."""
    return IniDocument(text).get(section, key)


def edit(text, wanted, secret_keys, masked):
    """``(new_text, changes)`` that bring ``text`` to ``wanted`` (from
    :func:`normalise`) without touching other bytes; ``new_text`` is None when
    nothing changes. Secret values show as ``masked`` in ``changes``."""
    doc = IniDocument(text)
    edits, changes = plan_edits(doc, wanted, secret_keys, masked)
    return (apply_edits(doc.text, edits) if changes else None), changes
