"""Read and change Nova's database schema and cells through ``nova-manage``.

Every call runs ``nova-manage`` as the nova user (through runuser, so no
root-owned log file is left behind) with an argument list, never a shell, and
never with a secret: ``create_cell`` and ``update_cell`` read the transport URL
and the database connection from nova.conf. Output that could hold a URL is
masked before it reaches a message. Reads (schema versions, cells, computes)
and the cell0 mapping go straight to the databases nova.conf names, over SQL.

Every function that reads or runs against nova.conf takes its path as
``config`` (the formula's states pass ``nova:lookup:files:nova_conf``, its one
source); another path than the default is passed to nova-manage as
``--config-file``.

Configuration (minion config or pillar, through config.get):
    nova_manage:user        the service user (nova)
    nova_manage:bin         the nova-manage command (nova-manage)
    nova_manage:package_dir the installed nova package (found beside nova-manage)
"""
import glob
import hashlib
import os
import re
import shutil
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from salt.exceptions import CommandExecutionError

try:
    import pymysql
except ImportError:  # pragma: no cover - reported by __virtual__
    pymysql = None

__virtualname__ = "nova_manage"

CELL0_UUID = "00000000-0000-0000-0000-000000000000"
CELL0_TRANSPORT_URL = "none:///"

# Where the installed code keeps its migrations (alembic since Zed, then
# sqlalchemy-migrate before), per database, relative to the nova package.
_MIGRATIONS = {"main": ("db/main/migrations/versions", "db/sqlalchemy/migrate_repo/versions"),
               "api": ("db/api/migrations/versions",
                       "db/sqlalchemy/api_migrations/migrate_repo/versions")}
_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.M)
_LEGACY_SCRIPT = re.compile(r"^(\d+)_.*\.py$")


def __virtual__():
    # Loads without nova-manage too, so a dry run on a bare host can list the
    # DB sync steps; each call that needs the command says it is missing.
    if "openstack_state.mask" not in __utils__:
        return (False, "nova_manage: the formula's _utils are not loaded (run saltutil.sync_all)")
    return __virtualname__


NOVA_CONF = "/etc/nova/nova.conf"  # nova-manage's own default


def _opt(key):
    defaults = {"user": "nova", "bin": "nova-manage", "package_dir": None}
    return __salt__["config.get"](f"nova_manage:{key}", defaults[key])


def _binary():
    """The nova-manage command's path, or a clear error when it is missing."""
    found = shutil.which(_opt("bin"))
    if not found:
        raise CommandExecutionError(f"the {_opt('bin')} command is not installed (it comes with "
                                    "the nova-conductor / nova-common package)")
    return found


def _mask(text):
    """``text`` with any URL password masked (nova-manage may print URLs)."""
    return __utils__["openstack_state.mask"](text or "")


def _command(config, args):
    """The argv: nova-manage as the service user. Salt's runas would first run
    Salt's own interpreter as that user to copy its environment (which fails
    when that user cannot read Salt's install), so use runuser when root."""
    cmd = [_binary()]
    if config != NOVA_CONF:
        cmd.append(f"--config-file={config}")
    cmd += list(args)
    user = _opt("user")
    if os.geteuid() == 0 and user not in ("root", None, ""):
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        cmd = [runuser, "-u", user, "--"] + cmd
    return cmd


def _why(res):
    """The useful lines of a failed run (not eventlet/deprecation warnings)."""
    lines = [ln.strip() for ln in (res.get("stderr") or res.get("stdout") or "").splitlines()
             if ln.strip()]
    errors = [ln for ln in lines if "rror" in ln or "xception" in ln]
    return _mask(" | ".join((errors or lines)[-3:]))


def _run(config, *args):
    """nova-manage ARGS as the nova user; stdout, or CommandExecutionError."""
    res = __salt__["cmd.run_all"](_command(config, args), python_shell=False, cwd="/",
                                  output_loglevel="quiet", ignore_retcode=True)
    if res["retcode"] != 0:
        raise CommandExecutionError(
            f"nova-manage {' '.join(args)} failed (exit {res['retcode']}): {_why(res)}")
    return res["stdout"]


def _conf_value(config, section, key):
    """``[section] key`` of nova.conf as oslo.config reads it, or None."""
    return __salt__["openstack_ini.get_option"](config, section, key)


def _conf_url(config, section):
    """``[section] connection`` of nova.conf, or None."""
    return _conf_value(config, section, "connection")


def _sql(config, section, query, params=None, write=False):
    """Rows of ``query`` on the database of ``[section] connection``; None
    when the table does not exist (yet). A query costs milliseconds, where a
    nova-manage call costs seconds of Python start-up: these reads run on
    every apply."""
    if pymysql is None:
        raise CommandExecutionError("nova_manage needs the pymysql library to read "
                                    "Nova's databases")
    url = _conf_url(config, section)
    if not url:
        raise CommandExecutionError(f"{config} has no [{section}] connection")
    conn = _connection(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()
    except pymysql.MySQLError as exc:
        if exc.args and exc.args[0] == 1146:  # ER_NO_SUCH_TABLE
            return None
        _drop_connection(url)
        raise CommandExecutionError(f"cannot {'write' if write else 'read'} the "
                                    f"[{section}] database: {_mask(exc)}") from None


def _connection(url):
    """One connection per database URL for the whole run (a no-op's checks
    are a handful of queries over two databases; a connection costs more
    than the query). Autocommit: every statement is its own transaction, so
    a read after a nova-manage run sees what it wrote, and a write is
    committed at once. Kept under a digest of the URL (it holds a password)."""
    key = "nova_manage.conn." + hashlib.sha256(url.encode()).hexdigest()
    conn = __context__.get(key)
    if conn is None or not conn.open:
        conn = __context__[key] = _connect(url)
    return conn


def _drop_connection(url):
    conn = __context__.pop("nova_manage.conn." + hashlib.sha256(url.encode()).hexdigest(),
                           None)
    if conn is not None:
        try:
            conn.close()
        except Exception:  # pylint: disable=broad-except  # already broken
            pass


def _by_sql(config, section):
    """Read straight from the database when nova.conf says where it is and
    it is MySQL/MariaDB; else nova-manage answers."""
    url = _conf_url(config, section)
    return pymysql is not None and bool(url) and url.startswith("mysql")


def version(api=False, config=NOVA_CONF):
    """Schema version of the API (``api=True``) or main database; None when empty.
    Same answer as ``nova-manage (api_)db version``: the alembic revision,
    else the legacy sqlalchemy-migrate version.

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.version api=True
    """
    section = "api_database" if api else "database"
    if _by_sql(config, section):
        for query in ("SELECT version_num FROM alembic_version",
                      "SELECT version FROM migrate_version"):
            rows = _sql(config, section, query)
            if rows:
                return str(rows[0][0])
        return None
    lines = [ln.strip() for ln in _run(config, "api_db" if api else "db", "version").splitlines()
             if ln.strip()]
    value = lines[-1] if lines else "None"
    return None if value == "None" else value


def heads():
    """{"main": [...], "api": [...]}: head revisions of the installed code, read
    from its migration scripts (no interpreter is started; cached for the run).

    CLI Example:

    .. code-block:: bash

        salt '*' nova_manage.heads
    """
    if "nova_manage.heads" not in __context__:
        base = _package_dir()
        __context__["nova_manage.heads"] = {key: _heads(base, *paths)
                                            for key, paths in _MIGRATIONS.items()}
    return __context__["nova_manage.heads"]


def _package_dir():
    """The installed ``nova`` package: nova_manage:package_dir, else found
    beside nova-manage's prefix (/usr/bin -> /usr/lib/python3*/*-packages,
    a virtualenv's bin -> its lib)."""
    if _opt("package_dir"):
        return _opt("package_dir")
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(_binary())))
    for pattern in ("lib/python3/dist-packages/nova", "lib/python3*/site-packages/nova",
                    "lib/python3*/dist-packages/nova", "lib64/python3*/site-packages/nova"):
        for found in sorted(glob.glob(os.path.join(prefix, pattern)), reverse=True):
            if os.path.isdir(os.path.join(found, "db")):
                return found
    raise CommandExecutionError(f"cannot find the nova package of {_binary()} under {prefix} "
                                "(set nova_manage:package_dir)")


def _heads(base, alembic, legacy):
    """Alembic heads (revisions no script names as its down_revision), else
    the highest sqlalchemy-migrate script number, else none."""
    path = os.path.join(base, alembic)
    if os.path.isdir(path):
        revisions, downs = set(), set()
        for name in os.listdir(path):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(path, name), encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            found = _REVISION.search(text)
            if found:
                revisions.add(found.group(1))
                down = _DOWN_REVISION.search(text)
                if down:
                    downs.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
        return sorted(revisions - downs)
    path = os.path.join(base, legacy)
    if os.path.isdir(path):
        numbers = [int(m.group(1)) for m in map(_LEGACY_SCRIPT.match, os.listdir(path)) if m]
        return [str(max(numbers))] if numbers else []
    return []


def synced(api=False, config=NOVA_CONF):
    """True when the database is at the installed code's head revision.

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.synced
    """
    return version(api, config) in heads()["api" if api else "main"]


def sync(api=False, config=NOVA_CONF):
    """``nova-manage api_db sync`` / ``db sync``, as the nova user; the new version.

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.sync api=True
    """
    _run(config, "api_db" if api else "db", "sync")
    return version(api, config)


def cell_state(name, config=NOVA_CONF):
    """How cell ``name`` is mapped: None when it is not, else ``{"uuid",
    "stale": [...]}`` naming which of its URLs (``transport_url``,
    ``database_connection``) differ from what nova.conf implies. The URLs
    themselves hold passwords: they never leave this module.

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.cell_state cell1
    """
    stored = _cell_urls(config, name)
    if stored is None:
        return None
    wanted = _wanted_cell_urls(config, name)
    return {"uuid": stored["uuid"], "stale": [k for k in wanted if stored[k] != wanted[k]]}


def _cell_urls(config, name):
    """``{"uuid", "transport_url", "database_connection"}`` of the cell mapped as
    ``name`` (read over SQL, never through nova-manage's output), or None."""
    rows = _sql(config, "api_database", "SELECT uuid, transport_url, database_connection "
                "FROM cell_mappings WHERE name = %s ORDER BY id", (name,))
    if not rows:
        return None
    return dict(zip(("uuid", "transport_url", "database_connection"), rows[0]))


def _wanted_cell_urls(config, name):
    """The URLs nova.conf implies for cell ``name``: cell0 has no broker and the
    main database's URL with ``_cell0`` appended to the database name (Nova's
    rule); any other cell has nova.conf's transport URL and main database."""
    connection = _conf_url(config, "database")
    if not connection:
        raise CommandExecutionError(f"{config} has no [database] connection")
    if name == "cell0":
        parts = urlsplit(connection)
        return {"transport_url": CELL0_TRANSPORT_URL,
                "database_connection": urlunsplit(
                    parts._replace(path=__utils__["nova_dialects.cell0_name"](
                        parts.path.rstrip("/"))))}
    return {"transport_url": _conf_value(config, "DEFAULT", "transport_url"),
            "database_connection": connection}


def map_cell0(config=NOVA_CONF):
    """Map cell0 to nova.conf's main database URL + ``_cell0``, or update its URL.

    Written over SQL, not by ``cell_v2 map_cell0``: Nova derives the URL with
    ``unquote(str(url))``, which decodes a percent-encoded password and so
    breaks one holding ``@ : / % #`` (and ``--database_connection`` would put
    the URL on argv). The row is the one map_cell0 writes (its fixed uuid,
    ``none:///``).

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.map_cell0
    """
    url = _wanted_cell_urls(config, "cell0")["database_connection"]
    _sql(config, "api_database",
         "INSERT INTO cell_mappings (created_at, uuid, name, transport_url, "
         "database_connection, disabled) VALUES (UTC_TIMESTAMP(), %s, 'cell0', %s, %s, 0) "
         "ON DUPLICATE KEY UPDATE updated_at = UTC_TIMESTAMP(), "
         "transport_url = VALUES(transport_url), "
         "database_connection = VALUES(database_connection)",
         (CELL0_UUID, CELL0_TRANSPORT_URL, url), write=True)


def create_cell(name, config=NOVA_CONF):
    """``cell_v2 create_cell --name NAME`` with URLs read from nova.conf.

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.create_cell cell1
    """
    return _run(config, "cell_v2", "create_cell", f"--name={name}", "--verbose")


def update_cell(uuid, config=NOVA_CONF):
    """``cell_v2 update_cell --cell_uuid UUID``: the cell takes nova.conf's
    transport URL and database connection (none given on argv).

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.update_cell 9f4e7c1a-0d0b-4f76-9c54-2a4b7e0f4a11
    """
    return _run(config, "cell_v2", "update_cell", f"--cell_uuid={uuid}")


def discover_hosts(config=NOVA_CONF):
    """``cell_v2 discover_hosts --verbose``: map registered computes to cells.

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.discover_hosts
    """
    return _run(config, "cell_v2", "discover_hosts", "--verbose")


def _connect(url):
    parts = urlsplit(url)
    if not parts.scheme.startswith("mysql"):
        raise CommandExecutionError(f"only MySQL/MariaDB URLs are supported, got "
                                    f"{parts.scheme}://")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    args = {"user": unquote(parts.username or ""), "password": unquote(parts.password or ""),
            "database": parts.path.lstrip("/"), "connect_timeout": 10, "autocommit": True}
    if query.get("unix_socket"):
        args["unix_socket"] = query["unix_socket"]
    else:
        args["host"] = parts.hostname or "localhost"
        args["port"] = parts.port or 3306
    try:
        return pymysql.connect(**args)
    except pymysql.MySQLError as exc:
        # The error text names user/host, never the password; mask anyway.
        raise CommandExecutionError(f"cannot connect to database "
                                    f"{args['database']}: {_mask(exc)}") from None


def computes(config=NOVA_CONF):
    """{"registered": [...], "mapped": [...]}: compute hosts known to the cell
    database (compute_nodes) and hosts with a mapping in the API database.

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.computes
    """
    out = {}
    for key, section, query in (
            ("registered", "database",
             "SELECT DISTINCT host FROM compute_nodes WHERE deleted = 0"),
            ("mapped", "api_database", "SELECT DISTINCT host FROM host_mappings")):
        out[key] = sorted(row[0] for row in _sql(config, section, query) or [] if row[0])
    return out


# ---------------------------------------------------------------- upgrades
_SERVICE_VERSION = re.compile(r"^SERVICE_VERSION\s*=\s*(\d+)", re.M)
_MIGRATION_ROW = re.compile(r"^\|\s*(\w+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*$", re.M)


def code_service_version():
    """The service version of the installed Nova code (``SERVICE_VERSION`` of
    nova/objects/service.py, read from the file: no interpreter started).

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.code_service_version
    """
    path = os.path.join(_package_dir(), "objects", "service.py")
    with open(path, encoding="utf-8") as fh:
        found = _SERVICE_VERSION.search(fh.read())
    if not found:
        raise CommandExecutionError(f"no SERVICE_VERSION in {path}")
    return int(found.group(1))


def service_versions(config=NOVA_CONF):
    """Every Nova service record of every cell (not cell0), with the service
    version it reports, and whether they all report the installed code's
    (``current``): {"newest", "current", "behind": ["binary@host (v)"],
    "services": [{"cell", "binary", "host", "version"}]}. Read over SQL from
    the cell databases the API database maps (what Nova's own minimum-version
    checks read), never a sleep.

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.service_versions
    """
    cells = _sql(config, "api_database", "SELECT name, database_connection FROM cell_mappings "
                 "WHERE uuid != %s ORDER BY id", (CELL0_UUID,)) or []
    services = []
    for cell, url in cells:
        if not url or "{" in url:  # a template: the [database] of nova.conf
            url = _conf_url(config, "database")
        conn = _connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT `binary`, host, version FROM services WHERE deleted = 0 "
                            "ORDER BY `binary`, host")
                rows = cur.fetchall()
        except pymysql.MySQLError as exc:
            raise CommandExecutionError(f"cannot read the services of cell {cell}: "
                                        f"{_mask(exc)}") from None
        finally:
            conn.close()
        services += [{"cell": cell, "binary": b, "host": h, "version": int(v or 0)}
                     for b, h, v in rows]
    newest = code_service_version()
    behind = [f"{s['binary']}@{s['host']} ({s['version']})" for s in services
              if s["version"] < newest]
    return {"newest": newest, "current": bool(services) and not behind, "behind": behind,
            "services": services}


def _status_binary():
    found = shutil.which(os.path.join(os.path.dirname(_binary()), "nova-status")) or \
        shutil.which("nova-status")
    if not found:
        raise CommandExecutionError("the nova-status command is not installed (it comes "
                                    "with the nova-common package)")
    return found


def upgrade_check(config=NOVA_CONF):
    """``nova-status upgrade check`` as the nova user, with the installed
    code: {"retcode" (0 success, 1 warning, 2 failure, 255 error), "ok"
    (retcode 0 or 1), "failures": [the check's failed items], "output"}.

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.upgrade_check
    """
    cmd = _command(config, ["upgrade", "check"])
    cmd[cmd.index(_binary())] = _status_binary()
    res = __salt__["cmd.run_all"](cmd, python_shell=False, cwd="/", output_loglevel="quiet",
                                  ignore_retcode=True)
    output = _mask(res["stdout"] or res["stderr"])
    failures, name = [], None
    for line in output.splitlines():
        text = line.strip("| ").strip()
        if text.startswith("Check:"):
            name = text[len("Check:"):].strip()
        elif text.startswith("Result: Failure"):
            failures.append(name)
        elif text.startswith("Details:") and failures and failures[-1] == name:
            failures[-1] = f"{name}: {text[len('Details:'):].strip()}"
    return {"retcode": res["retcode"], "ok": res["retcode"] in (0, 1), "failures": failures,
            "output": output if res["retcode"] not in (0, 1) else ""}


def online_data_migrations(config=NOVA_CONF, max_count=None):
    """One ``nova-manage db online_data_migrations`` run: {"retcode" (0 done,
    1 more to do, 2 some could not complete), "migrated": {migration: rows
    done this run}}.

    CLI Example:

    .. code-block:: bash

        salt ctl1 nova_manage.online_data_migrations
    """
    args = ["db", "online_data_migrations"]
    if max_count:
        args.append(f"--max-count={int(max_count)}")
    res = __salt__["cmd.run_all"](_command(config, args), python_shell=False, cwd="/",
                                  output_loglevel="quiet", ignore_retcode=True)
    if res["retcode"] not in (0, 1, 2):
        raise CommandExecutionError(f"nova-manage db online_data_migrations failed "
                                    f"(exit {res['retcode']}): {_why(res)}")
    migrated = {m: int(done) for m, _, done in _MIGRATION_ROW.findall(res["stdout"] or "")
                if int(done)}
    return {"retcode": res["retcode"], "migrated": migrated,
            "why": _why(res) if res["retcode"] == 2 else ""}
