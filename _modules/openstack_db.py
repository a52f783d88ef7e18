"""MySQL / MariaDB databases, users and grants for OpenStack services (guide 8.2.2).

Plain functions on pymysql; the ``openstack_db`` states build on them.

Connection settings come from the ``connection`` argument or, when it is
omitted, from ``openstack_db:connection`` in minion config or pillar::

    openstack_db:
      connection: {host: 127.0.0.1, port: 3306, user: root, password: ...}

Design notes:
- One pymysql connection per server per run, cached in ``__context__`` under a
  key that holds a keyed hash of the password, never the password itself.
- Names are validated and quoted as identifiers; values (user, host, password)
  always travel as query parameters.
- Passwords are checked against the stored hash on the client side, so a
  no-op run never sends a password to the server and issues only reads.
- Error messages pass through ``_mask`` so no secret reaches a comment or log.
"""
import hmac
import logging
import re
import secrets as _secrets
import time

from salt.exceptions import CommandExecutionError

try:
    import pymysql

    HAS_PYMYSQL = True
except ImportError:
    HAS_PYMYSQL = False

log = logging.getLogger(__name__)

__virtualname__ = "openstack_db"

# Access-denied style errors that mean "the admin account may not do this".
_PRIVILEGE_ERRORS = {1044, 1045, 1142, 1227, 1410}
_CONNECT_ERRORS = {2002, 2003, 2005, 2006, 2013}
_IDLE_PING_SECONDS = 5
_HASH_KEY = _secrets.token_bytes(16)  # keys the password hash in cache keys


class DbError(CommandExecutionError):
    """An error whose message is safe to show (secrets already masked)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def __virtual__():
    if not HAS_PYMYSQL:
        return False, "openstack_db: the pymysql Python library is not installed"
    if "openstack_sql.validate_user" not in __utils__:
        return False, "openstack_db: the formula's _utils are not loaded (run saltutil.sync_all)"
    return __virtualname__


# --------------------------------------------------------------------- helpers
def _sql(fun, *args, **kwargs):
    """A function of the pure SQL side (names, grants, hashes): _utils/openstack_sql.py."""
    return __utils__[f"openstack_sql.{fun}"](*args, **kwargs)


def _mask(text, secrets=()):
    """``text`` with every form of every secret replaced by ********."""
    return __utils__["openstack_state.mask"](text, secrets)


# ------------------------------------------------------------------ connection
def settings(connection=None):
    """Connection settings: ``connection`` or ``openstack_db:connection``, on defaults.

    CLI Example:

    .. code-block:: bash

        salt '*' openstack_db.settings
    """
    if connection is None:
        connection = __salt__["config.get"]("openstack_db:connection", {}) or {}
    if not isinstance(connection, dict):
        raise DbError("'connection' must be a mapping of connection settings")
    try:
        return _sql("connection_settings", connection)
    except CommandExecutionError as exc:
        raise DbError(str(exc)) from None


def _where(conf):
    if conf.get("unix_socket"):
        return f"unix socket {conf['unix_socket']}"
    return f"{conf['host']}:{conf['port']}"


def _cache_key(conf):
    password = str(conf["password"]).encode("utf-8")
    digest = hmac.new(_HASH_KEY, password, "sha256").hexdigest()[:16]
    return tuple(str(conf[k]) for k in sorted(conf) if k != "password") + (digest,)


class _Server:
    """One cached connection to one server, with its query counters."""

    def __init__(self, conf, stats):
        self.conf = conf
        self.where = _where(conf)
        self.stats = stats
        self.conn = None
        self.last_used = 0.0
        self.lower_case_names = None
        self.connect()

    def connect(self):
        conf = self.conf
        password = conf["password"]
        # pymysql sends str passwords as latin-1; the server hashed UTF-8 bytes.
        if not isinstance(password, bytes):
            password = str(password).encode("utf-8")
        kwargs = {"user": conf["user"], "password": password, "charset": conf["charset"],
                  "connect_timeout": conf["connect_timeout"], "autocommit": True}
        if conf.get("unix_socket"):
            kwargs["unix_socket"] = conf["unix_socket"]
        else:
            kwargs["host"], kwargs["port"] = conf["host"], conf["port"]
        ssl = {k[4:]: conf[k] for k in ("ssl_ca", "ssl_cert", "ssl_key") if conf.get(k)}
        if ssl:
            kwargs["ssl"] = ssl
        self.stats["connections"] = self.stats.get("connections", 0) + 1
        log.debug("openstack_db: connection %d to %s as %s", self.stats["connections"],
                  self.where, conf["user"])
        try:
            self.conn = pymysql.connect(**kwargs)
        except pymysql.MySQLError as exc:
            raise DbError(self._connect_error(exc)) from None
        except Exception as exc:  # ssl, socket, encoding errors: no traceback
            raise DbError(_mask(f"cannot connect to MySQL at {self.where}: "
                                f"{type(exc).__name__}: {exc}", [conf["password"]])) from None
        self.last_used = time.monotonic()

    def _connect_error(self, exc):
        code = exc.args[0] if exc.args else None
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        secrets = [self.conf["password"]]
        if code in (1045, 1698):
            text = (f"cannot log in to MySQL at {self.where} as '{self.conf['user']}': "
                    "access denied (check the admin user and password in "
                    "openstack_db:connection)")
        elif code in _CONNECT_ERRORS:
            reason = re.search(r"\((.*)\)\s*$", message)
            reason = reason.group(1) if reason else message
            text = f"MySQL server at {self.where} is unreachable: {reason}"
        else:
            text = f"cannot connect to MySQL at {self.where}: error {code}: {message}"
        return _mask(text, secrets)

    def ensure(self):
        """Reconnect when a connection idle for a while has dropped."""
        if time.monotonic() - self.last_used > _IDLE_PING_SECONDS:
            try:
                self.conn.ping(reconnect=False)
            except Exception:  # noqa: BLE001 - any failure means: connect again
                self.connect()

    def query(self, sql, args=None, secrets=(), retry=True):
        """Run one statement; ``sql`` holds no secret (values go in ``args``)."""
        if not self.conn.open:
            # Lost earlier in this run (server stopped or restarted): pymysql
            # would only say InterfaceError(0, ''); connect again, or say why not.
            self.connect()
        self.ensure()
        self.stats["queries"] = self.stats.get("queries", 0) + 1
        log.debug("openstack_db: query %d on %s: %s", self.stats["queries"], self.where, sql)
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                rows = cur.fetchall()
        except pymysql.err.OperationalError as exc:
            code = exc.args[0] if exc.args else None
            read_only = sql.lstrip().upper().startswith(("SELECT", "SHOW"))
            if retry and read_only and code in _CONNECT_ERRORS:
                self.connect()
                return self.query(sql, args, secrets, retry=False)
            raise self._error(exc, secrets) from None
        except pymysql.MySQLError as exc:
            raise self._error(exc, secrets) from None
        except Exception as exc:  # encoding errors and the like
            raise DbError(_mask(f"query on {self.where} failed: {type(exc).__name__}: {exc}",
                                list(secrets) + [self.conf["password"]])) from None
        finally:
            self.last_used = time.monotonic()
        return rows

    def _error(self, exc, secrets):
        code = exc.args[0] if exc.args else None
        message = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        secrets = list(secrets) + [self.conf["password"]]
        if code in _PRIVILEGE_ERRORS:
            text = (f"the admin account '{self.conf['user']}' at {self.where} lacks the "
                    f"privilege for this (error {code}: {message})")
        elif code in _CONNECT_ERRORS or isinstance(exc, pymysql.err.InterfaceError):
            text = f"lost the connection to MySQL at {self.where}: {message or type(exc).__name__}"
        else:
            text = f"MySQL at {self.where} refused the statement (error {code}: {message})"
        return DbError(_mask(text, secrets), code)

    @property
    def encoding(self):
        return self.conn.encoding


def _server(connection=None):
    conf = settings(connection)
    pool = __context__.setdefault("openstack_db.connections", {})
    stats = __context__.setdefault("openstack_db.stats", {"queries": 0, "connections": 0})
    key = _cache_key(conf)
    server = pool.get(key)
    if server is None:
        server = pool[key] = _Server(conf, stats)
        server.key = key
    return server


def _reads(server):
    """Reads cached for this state run only.

    The states pass ``cached=True``; their ``__context__`` is a fresh copy per
    run, so this top-level key never outlives the run (plain module calls
    never create it).
    """
    return __context__.setdefault("openstack_db.reads", {}).setdefault(server.key, {})


def _cached(server, use_cache, key, read):
    if not use_cache:
        return read()
    reads = _reads(server)
    if key not in reads:
        reads[key] = read()
    return reads[key]


def _forget(server, key):
    """Drop a cached read that a write just made stale."""
    __context__.get("openstack_db.reads", {}).get(server.key, {}).pop(key, None)


def stats():
    """Queries and connections made so far in this process/run.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.stats
    """
    return dict(__context__.get("openstack_db.stats", {"queries": 0, "connections": 0}))


# ------------------------------------------------------------------- databases
def _schemata(server, cached):
    def read():
        rows = server.query(
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME, "
            "@@lower_case_table_names FROM information_schema.SCHEMATA")
        if rows:
            server.lower_case_names = int(rows[0][3] or 0)
        return {row[0]: {"name": row[0], "character_set": row[1], "collate": row[2]}
                for row in rows}
    return _cached(server, cached, "schemata", read)


def _fold(server, name):
    """Database names as the server stores them (lower_case_table_names)."""
    if server.lower_case_names is None:
        rows = server.query("SELECT @@lower_case_table_names")
        server.lower_case_names = int(rows[0][0] or 0)
    return name.lower() if server.lower_case_names else name


def db_get(name, connection=None, cached=False):
    """``{name, character_set, collate}`` of database ``name``, or None.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.db_get nova
    """
    _sql("validate_database", name)
    server = _server(connection)
    schemata = _schemata(server, cached)
    return schemata.get(_fold(server, name))


def db_exists(name, connection=None, cached=False):
    """True when database ``name`` exists.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.db_exists nova_api
    """
    return db_get(name, connection, cached) is not None


def _charset_clause(character_set, collate):
    clause = ""
    if character_set:
        clause += f" CHARACTER SET {character_set}"
    if collate:
        clause += f" COLLATE {collate}"
    return clause


def _db_define(statement, name, character_set, collate, connection):
    """``statement`` (CREATE DATABASE IF NOT EXISTS / ALTER DATABASE) for
    ``name`` with its character set clause."""
    _sql("validate_database", name)
    character_set = _sql("validate_charset", character_set, "character_set")
    collate = _sql("validate_charset", collate, "collate")
    server = _server(connection)
    server.query(f"{statement} {_sql('quote_identifier', name)}"
                 + _charset_clause(character_set, collate))
    _forget(server, "schemata")
    return True


def db_create(name, character_set="utf8mb4", collate=None, connection=None):
    """Create database ``name`` (if missing) with this character set.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.db_create nova_cell0 character_set=utf8
    """
    return _db_define("CREATE DATABASE IF NOT EXISTS", name, character_set, collate,
                      connection)


def db_alter(name, character_set="utf8mb4", collate=None, connection=None):
    """Set the character set (and collation) of database ``name``.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.db_alter nova character_set=utf8
    """
    return _db_define("ALTER DATABASE", name, character_set, collate, connection)


def db_drop(name, connection=None):
    """Drop database ``name`` and its data (if it exists).

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.db_drop nova_cell0
    """
    _sql("validate_database", name)
    server = _server(connection)
    server.query(f"DROP DATABASE IF EXISTS {_sql('quote_identifier', name)}")
    _forget(server, "schemata")
    return True


def _same_charset(wanted, actual):
    """'utf8' is an alias of 'utf8mb3' (also inside collation names)."""
    def canon(value):
        value = (value or "").lower()
        return re.sub(r"^utf8(?!mb)", "utf8mb3", value)
    return canon(wanted) == canon(actual)


def db_differences(name, character_set="utf8mb4", collate=None, connection=None,
                   cached=False):
    """None when the database is absent, else ``{setting: (old, new)}`` to change.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.db_differences nova character_set=utf8
    """
    character_set = _sql("validate_charset", character_set, "character_set")
    collate = _sql("validate_charset", collate, "collate")
    current = db_get(name, connection, cached)
    if current is None:
        return None
    diff = {}
    if character_set and not _same_charset(character_set, current["character_set"]):
        diff["character_set"] = (current["character_set"], character_set)
    if collate and not _same_charset(collate, current["collate"]):
        diff["collate"] = (current["collate"], collate)
    return diff


# ----------------------------------------------------------------------- users
def _account(name, host, password, connection):
    """The checked host pattern and password, and the server, of ``name@host``."""
    _sql("validate_user", name)
    return (_sql("validate_host", host), _sql("validate_password", password),
            _server(connection))


def _user_rows(server, name, cached):
    def read():
        rows = server.query(
            "SELECT Host, plugin, authentication_string FROM mysql.user WHERE User = %s",
            (name,))
        return {str(row[0]).lower(): (row[1] or "", row[2] or "") for row in rows}
    return _cached(server, cached, ("user", name), read)


def user_exists(name, host, connection=None, cached=False):
    """True when the account ``name@host`` exists.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.user_exists nova '%'
    """
    _sql("validate_user", name)
    host = _sql("validate_host", host)
    return host in _user_rows(_server(connection), name, cached)


def user_check(name, host, password, connection=None, cached=False):
    """``{"exists": bool, "password": True|False|None, "plugin": str}``.

    ``password`` is True when the stored hash matches, False when it does not,
    None when the account's plugin cannot be checked. The hash never leaves.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.user_check nova localhost password=... # lands in the job cache: prefer the state with pillar
    """
    host, password, server = _account(name, host, password, connection)
    row = _user_rows(server, name, cached).get(host)
    if row is None:
        return {"exists": False, "password": None, "plugin": None}
    plugin, auth = row
    return {"exists": True, "plugin": plugin,
            "password": _sql("password_matches", plugin, auth, password, server.encoding)}


def user_create(name, host, password, connection=None):
    """Create ``name@host`` with ``password`` (if missing).

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.user_create nova localhost password=... # lands in the job cache: prefer the state with pillar
    """
    host, password, server = _account(name, host, password, connection)
    server.query("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
                 (name, host, password), secrets=[password])
    _forget(server, ("user", name))
    _forget(server, ("grants", name, host))
    return True


def user_set_password(name, host, password, connection=None):
    """Set the password of ``name@host`` (ALTER USER).

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.user_set_password nova localhost password=... # lands in the job cache: prefer the state
    """
    host, password, server = _account(name, host, password, connection)
    server.query("ALTER USER %s@%s IDENTIFIED BY %s", (name, host, password),
                 secrets=[password])
    _forget(server, ("user", name))
    _forget(server, ("grants", name, host))
    return True


def user_drop(name, host, connection=None):
    """Drop the account ``name@host`` (if it exists).

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.user_drop nova '%'
    """
    _sql("validate_user", name)
    host = _sql("validate_host", host)
    server = _server(connection)
    server.query("DROP USER IF EXISTS %s@%s", (name, host))
    _forget(server, ("user", name))
    _forget(server, ("grants", name, host))
    return True


# ---------------------------------------------------------------------- grants
def grants_get(name, host, connection=None, cached=False):
    """Parsed ``SHOW GRANTS`` of ``name@host`` (no password hash), None if no user.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.grants_get nova localhost
    """
    _sql("validate_user", name)
    host = _sql("validate_host", host)
    server = _server(connection)

    def read():
        try:
            rows = server.query("SHOW GRANTS FOR %s@%s", (name, host))
        except DbError as exc:
            if exc.code == 1141:  # no such grant: the account does not exist
                return None
            raise
        return [g for g in (_sql("parse_grant", row[0]) for row in rows) if g]
    return _cached(server, cached, ("grants", name, host), read)


def grants_held(name, host, database, connection=None, cached=False):
    """Privileges on ``database``.* exactly (escaped pattern), None if no user.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.grants_held nova localhost nova_api
    """
    _sql("validate_database", database, "database")
    grants = grants_get(name, host, connection, cached)
    if grants is None:
        return None
    server = _server(connection)
    pattern = _fold(server, _sql("grant_pattern", database))
    held = {"privileges": set(), "grant_option": False}
    for grant in grants:
        if (grant["kind"] is None and grant["table"] == "*"
                and _fold(server, grant["database"]) == pattern):
            held["privileges"].update(grant["privileges"])
            held["grant_option"] = held["grant_option"] or grant["grant_option"]
    held["privileges"] = sorted(held["privileges"])
    return held


def grants_plan(name, host, database, privileges="ALL", strict=False, connection=None,
                cached=False):
    """The change plan (see :func:`compare_grants`), None when the user is absent.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.grants_plan nova localhost nova_api privileges=ALL
    """
    wanted = _sql("normalize_privileges", privileges)
    held = grants_held(name, host, database, connection, cached)
    if held is None:
        return None
    plan = _sql("compare_grants", wanted, held, strict)
    plan["description"] = _sql("describe_plan", plan)
    return plan


def grants_apply(name, host, database, plan, connection=None):
    """Carry out a plan from :func:`grants_plan`.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.grants_apply nova localhost nova_api '{grant: [ALL PRIVILEGES], grant_option: false, revoke: [], revoke_grant_option: false}'
    """
    _sql("validate_user", name)
    host = _sql("validate_host", host)
    _sql("validate_database", database, "database")
    for priv in plan.get("grant", []) + plan.get("revoke", []):
        _sql("normalize_privileges", [priv])
    server = _server(connection)
    target = f"{_sql('quote_identifier', _sql('grant_pattern', database))}.*"
    _forget(server, ("grants", name, host))

    def grant(privs, with_option):
        privs = ", ".join(privs) or "USAGE"
        server.query(f"GRANT {privs} ON {target} TO %s@%s"
                     + (" WITH GRANT OPTION" if with_option else ""), (name, host))

    revoke_all = plan.get("revoke") == ["ALL PRIVILEGES"]
    if revoke_all:
        server.query(f"REVOKE ALL PRIVILEGES ON {target} FROM %s@%s", (name, host))
        try:
            if plan.get("grant") or plan.get("grant_option"):
                grant(plan["grant"], plan.get("grant_option"))
        except DbError:
            grant(["ALL PRIVILEGES"], False)  # put back what was there
            raise
    elif plan.get("grant") or plan.get("grant_option"):
        grant(plan.get("grant", []), plan.get("grant_option"))
    if plan.get("revoke") and not revoke_all:
        server.query(f"REVOKE {', '.join(plan['revoke'])} ON {target} FROM %s@%s",
                     (name, host))
    if plan.get("revoke_grant_option"):
        server.query(f"REVOKE GRANT OPTION ON {target} FROM %s@%s", (name, host))
    return True


def grant_add(name, host, database, privileges="ALL", connection=None):
    """Grant ``privileges`` on ``database``.* to ``name@host`` (nothing revoked).

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.grant_add nova localhost nova_api privileges=ALL
    """
    wanted = _sql("normalize_privileges", privileges)
    plan = {"grant": [p for p in wanted if p not in ("GRANT OPTION", "USAGE")],
            "grant_option": "GRANT OPTION" in wanted, "revoke": [],
            "revoke_grant_option": False}
    return grants_apply(name, host, database, plan, connection)


def grant_revoke(name, host, database, privileges="ALL", connection=None):
    """Revoke ``privileges`` on ``database``.* from ``name@host``.

    CLI Example:

    .. code-block:: bash

        salt db1 openstack_db.grant_revoke nova localhost nova_api privileges=ALL
    """
    wanted = _sql("normalize_privileges", privileges)
    plan = {"grant": [], "grant_option": False,
            "revoke": [p for p in wanted if p not in ("GRANT OPTION", "USAGE")],
            "revoke_grant_option": "GRANT OPTION" in wanted}
    if plan["revoke"] == ["ALL PRIVILEGES"]:
        _sql("validate_user", name)
        host = _sql("validate_host", host)
        _sql("validate_database", database, "database")
        server = _server(connection)
        _forget(server, ("grants", name, host))
        server.query(f"REVOKE ALL PRIVILEGES ON {_sql('quote_identifier', _sql('grant_pattern', database))}.* "
                     "FROM %s@%s", (name, host))
        plan["revoke"] = []
    return grants_apply(name, host, database, plan, connection)
