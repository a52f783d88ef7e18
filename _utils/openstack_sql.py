"""The pure SQL side of ``openstack_db``: names checked and quoted, privileges
normalised, ``SHOW GRANTS`` parsed and compared, stored password hashes
checked on the client, connection settings completed. No server access (the
execution module has the connection). The formula's pillar validator uses the
same name rules, so it refuses exactly what the engine would.
"""
import hashlib
import hmac
import re

try:
    from salt.exceptions import CommandExecutionError
except ImportError:  # pragma: no cover - only without salt installed
    CommandExecutionError = RuntimeError

CONNECTION_KEYS = ("host", "port", "unix_socket", "user", "password", "charset",
                   "ssl_ca", "ssl_cert", "ssl_key", "connect_timeout")
DEFAULTS = {"host": "127.0.0.1", "port": 3306, "unix_socket": None, "user": "root",
            "password": "", "charset": "utf8mb4", "ssl_ca": None, "ssl_cert": None,
            "ssl_key": None, "connect_timeout": 10}

_DB_RE = re.compile(r"^[A-Za-z0-9_$][A-Za-z0-9_$-]{0,63}$")
_USER_RE = re.compile(r"^[A-Za-z0-9_.$-]{1,32}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.%_:/-]{1,255}$")
_CHARSET_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")

# Database-level privileges every MySQL 8 / MariaDB 10 server includes in ALL.
CORE_DB_PRIVILEGES = frozenset((
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "REFERENCES", "INDEX",
    "ALTER", "CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE", "CREATE VIEW",
    "SHOW VIEW", "CREATE ROUTINE", "ALTER ROUTINE", "EVENT", "TRIGGER"))
DB_PRIVILEGES = CORE_DB_PRIVILEGES | {"ALL PRIVILEGES", "GRANT OPTION", "USAGE",
                                      "DELETE HISTORY", "SHOW CREATE ROUTINE"}

_GRANT_RE = re.compile(
    r"^GRANT (?P<privs>.+?) ON (?:(?P<kind>FUNCTION|PROCEDURE|PACKAGE BODY|PACKAGE) )?"
    r"(?P<db>`(?:[^`]|``)*`|\*)\.(?P<tbl>`(?:[^`]|``)*`|\*) TO (?P<rest>.*)$", re.S)


def quote_identifier(name):
    """Backtick-quote an identifier (doubling any backtick)."""
    return "`" + str(name).replace("`", "``") + "`"


def grant_pattern(database):
    """The database name as a GRANT pattern: ``_`` and ``%`` taken literally."""
    return re.sub(r"([_%])", r"\\\1", database)


def validate_database(name, arg="name"):
    """``name`` when it is a database name the engine accepts; raises otherwise."""
    if not isinstance(name, str) or not _DB_RE.match(name):
        raise CommandExecutionError(f"invalid database name in '{arg}': {name!r} (allowed: letters, "
                      "digits, '_', '$', '-', at most 64 characters)")
    return name


def validate_user(name, arg="name"):
    """``name`` when it is a MySQL user name (1-32 safe characters); raises otherwise."""
    if not isinstance(name, str) or not _USER_RE.match(name):
        raise CommandExecutionError(f"invalid user name in '{arg}': {name!r} (allowed: letters, digits, "
                      "'_', '.', '$', '-', at most 32 characters)")
    return name


def validate_host(host, arg="host"):
    """``host`` lower-cased when it is a host pattern; raises otherwise."""
    if not isinstance(host, str) or not _HOST_RE.match(host):
        raise CommandExecutionError(f"invalid host pattern in '{arg}': {host!r} (allowed: letters, "
                      "digits, '.', '%', '_', ':', '/', '-')")
    # Host names are case-insensitive and servers store them lower-cased.
    return host.lower()


def validate_password(password, arg="password"):
    """The password as a string; raises when empty or not a string."""
    if isinstance(password, bool) or not isinstance(password, (str, int)) or password == "":
        raise CommandExecutionError(f"'{arg}' must be a non-empty string")
    return str(password)


def validate_charset(value, arg):
    """A character set or collation name lower-cased (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _CHARSET_RE.match(value):
        raise CommandExecutionError(f"invalid '{arg}': {value!r} (letters, digits and '_' only)")
    return value.lower()


def normalize_privileges(privileges, arg="privileges"):
    """``'ALL'`` / ``'select, Insert'`` / list -> sorted list of canonical names."""
    if isinstance(privileges, str):
        items = privileges.split(",")
    elif isinstance(privileges, (list, tuple, set)):
        items = list(privileges)
    else:
        raise CommandExecutionError(f"'{arg}' must be a string or a list of privilege names")
    result = set()
    for item in items:
        if not isinstance(item, str):
            raise CommandExecutionError(f"invalid privilege in '{arg}': {item!r}")
        priv = " ".join(item.upper().split())
        if not priv:
            continue
        if priv == "ALL":
            priv = "ALL PRIVILEGES"
        if priv not in DB_PRIVILEGES:
            raise CommandExecutionError(f"invalid privilege in '{arg}': {item!r} (not a "
                          "database-level privilege)")
        result.add(priv)
    if not result:
        raise CommandExecutionError(f"'{arg}' names no privilege")
    return sorted(result)


def _split_privileges(text):
    """Split a SHOW GRANTS privilege list on commas outside parentheses."""
    parts, depth, cur = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(char)
    parts.append("".join(cur))
    return [" ".join(p.upper().split()) for p in parts if p.strip()]


def _unquote(token):
    if token == "*":
        return "*"
    return token[1:-1].replace("``", "`")


def parse_grant(line):
    """Parse one SHOW GRANTS line into a dict, or None (roles, proxies, …)."""
    match = _GRANT_RE.match(line.strip())
    if not match:
        return None
    privs = _split_privileges(match.group("privs"))
    grant_option = bool(re.search(r"\bWITH GRANT OPTION\b", match.group("rest")))
    normal = set()
    for priv in privs:
        if "(" in priv:  # column privilege: not a database-level grant
            continue
        normal.add("ALL PRIVILEGES" if priv in ("ALL", "ALL PRIVILEGES") else priv)
    if "GRANT OPTION" in normal:
        normal.discard("GRANT OPTION")
        grant_option = True
    return {"kind": match.group("kind"), "database": _unquote(match.group("db")),
            "table": _unquote(match.group("tbl")), "privileges": sorted(normal),
            "grant_option": grant_option}


def compare_grants(desired, held, strict=False):
    """What to change so ``held`` (privileges on one object) meets ``desired``.

    ``desired`` comes from :func:`normalize_privileges`; ``held`` is
    ``{"privileges": [...], "grant_option": bool}`` for the same ``db.*``.
    Returns ``{"grant": [...], "grant_option": bool, "revoke": [...],
    "revoke_grant_option": bool}``; ``revoke`` is filled only when ``strict``.
    """
    want = set(desired)
    want_go = "GRANT OPTION" in want
    want -= {"GRANT OPTION", "USAGE"}
    have = set(held.get("privileges", ())) - {"USAGE"}
    have_go = bool(held.get("grant_option"))
    have_all = "ALL PRIVILEGES" in have or CORE_DB_PRIVILEGES <= have
    if "ALL PRIVILEGES" in want:
        grant = [] if have_all else ["ALL PRIVILEGES"]
    else:
        grant = [] if have_all else sorted(want - have)
    plan = {"grant": grant, "grant_option": want_go and not have_go,
            "revoke": [], "revoke_grant_option": False}
    if strict:
        if "ALL PRIVILEGES" not in want:
            if "ALL PRIVILEGES" in have:
                # Revoking ALL removes the wanted ones too: grant them again after.
                plan["revoke"] = ["ALL PRIVILEGES"]
                plan["grant"] = sorted(want)
            else:
                plan["revoke"] = sorted(have - want)
        plan["revoke_grant_option"] = have_go and not want_go
    return plan


def describe_plan(plan):
    """The plan in words: 'revoke ...; grant ...' (empty: nothing to do)."""
    parts = []
    if plan["revoke"] or plan["revoke_grant_option"]:
        parts.append("revoke " + ", ".join(
            plan["revoke"] + (["GRANT OPTION"] if plan["revoke_grant_option"] else [])))
    if plan["grant"] or plan["grant_option"]:
        parts.append("grant " + ", ".join(
            plan["grant"] + (["GRANT OPTION"] if plan["grant_option"] else [])))
    return "; ".join(parts)


def native_password_hash(password, encoding="utf-8"):
    """mysql_native_password: '*' + upper hex SHA1(SHA1(password))."""
    raw = password.encode(encoding) if isinstance(password, str) else password
    return "*" + hashlib.sha1(hashlib.sha1(raw).digest()).hexdigest().upper()


_CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SHA256_ORDER = [(0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
                 (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29)]


def sha256_crypt(password, salt, rounds=5000):
    """The SHA-256 crypt digest (Drepper's algorithm), 43 characters.

    MySQL 8's caching_sha2_password stores ``$A$<rounds/1000 hex3>$<salt20><digest>``
    with this algorithm and a 20-byte salt.
    """
    sha = hashlib.sha256
    plen = len(password)
    alt = sha(password + salt + password).digest()
    ctx = sha(password + salt)
    ctx.update((alt * (plen // 32 + 1))[:plen])
    n = plen
    while n:
        ctx.update(alt if n & 1 else password)
        n >>= 1
    a = ctx.digest()
    dp = sha(password * plen).digest()
    p = (dp * (plen // 32 + 1))[:plen]
    ds = sha(salt * (16 + a[0])).digest()
    s = (ds * (len(salt) // 32 + 1))[:len(salt)]
    c = a
    for i in range(rounds):
        ctx = sha()
        ctx.update(p if i & 1 else c)
        if i % 3:
            ctx.update(s)
        if i % 7:
            ctx.update(p)
        ctx.update(c if i & 1 else p)
        c = ctx.digest()
    out = []

    def b64(b2, b1, b0, count):
        value = (b2 << 16) | (b1 << 8) | b0
        for _ in range(count):
            out.append(_CRYPT_ALPHABET[value & 0x3F])
            value >>= 6

    for i, j, k in _SHA256_ORDER:
        b64(c[i], c[j], c[k], 4)
    b64(0, c[31], c[30], 3)
    return "".join(out)


def password_matches(plugin, auth, password, encoding="utf-8"):
    """True/False when the stored hash can be checked, None when it cannot."""
    raw = password.encode(encoding)
    auth = auth or ""
    if plugin in ("mysql_native_password", "") and len(auth) == 41 and auth[0] == "*":
        return hmac.compare_digest(native_password_hash(raw), auth.upper())
    if plugin == "caching_sha2_password" and auth.startswith("$A$") and len(auth) == 70:
        rounds = int(auth[3:6], 16) * 1000
        salt, digest = auth[7:27].encode("latin1"), auth[27:]
        return hmac.compare_digest(sha256_crypt(raw, salt, rounds), digest)
    if plugin in ("mysql_native_password", "caching_sha2_password") and not auth:
        return False  # no password at all: certainly not the wanted one
    return None


def connection_settings(connection):
    """``connection`` (a mapping, or None for none) on the defaults: unknown keys
    refused, numbers as int, no password as ''."""
    connection = connection or {}
    if not isinstance(connection, dict):
        raise CommandExecutionError("'connection' must be a mapping of connection settings")
    unknown = sorted(set(connection) - set(CONNECTION_KEYS))
    if unknown:
        raise CommandExecutionError(f"'connection' has unknown setting(s): {', '.join(unknown)} "
                                    f"(known: {', '.join(CONNECTION_KEYS)})")
    result = dict(DEFAULTS)
    result.update({k: v for k, v in connection.items() if v is not None})
    for key in ("port", "connect_timeout"):
        try:
            result[key] = int(result[key])
        except (TypeError, ValueError):
            raise CommandExecutionError(f"'connection' setting '{key}' must be an integer") from None
    if result["password"] is None:
        result["password"] = ""
    return result


def connection_keys():
    """The settings a connection mapping may hold."""
    return list(CONNECTION_KEYS)
