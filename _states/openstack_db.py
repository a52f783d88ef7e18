"""States for the OpenStack service databases (guide 8.2.2).

.. code-block:: yaml

    nova_db:
      openstack_db.database_present:
        - name: nova
    nova_user_localhost:
      openstack_db.user_present:
        - name: nova
        - host: localhost
        - password: {{ pillar['nova']['database']['password'] }}
    nova_grants_localhost:
      openstack_db.grants_present:
        - name: nova
        - host: localhost
        - database: nova
        - privileges: ALL

Each state reads what the server holds, compares, and writes only the
difference (``CREATE USER IF NOT EXISTS`` + ``GRANT``, ``ALTER USER`` for a
password, never ``GRANT … IDENTIFIED BY``). ``test=True`` reads only.
Reads are cached for the state run (one connection per server), and every
write drops the cached reads it affects.
"""
def __virtual__():
    if "openstack_db.db_get" in __salt__:
        return "openstack_db"
    return False, "openstack_db: the openstack_db execution module did not load (pymysql missing?)"


def _mod(fun):
    return __salt__[f"openstack_db.{fun}"]


def _guard(name, secrets, work):
    """Run ``work(ret)``; any error becomes a failed state with a masked comment."""
    ret = __utils__["openstack_state.new_ret"](name)
    with __utils__["openstack_state.guard_state"](ret, __opts__["test"], globals(), secrets):
        work(ret)
    return ret


def _secrets(connection, *extra):
    found = [s for s in extra if s]
    if isinstance(connection, dict) and connection.get("password"):
        found.append(connection["password"])
    return found


def _change(ret, changes, would, act, done):
    """Report ``changes``; with test=True say what ``would`` happen, else
    ``act()`` and say it is ``done``."""
    if __utils__["openstack_state.change"](ret, changes, __opts__["test"], would, done):
        act()


def _masked():
    return __utils__["openstack_state.mask_text"]()


def _account(name, host):
    return f"'{name}'@'{str(host).lower()}'"


def database_present(name, character_set="utf8mb4", collate=None, connection=None):
    """The database ``name`` exists with this character set (and collation)."""

    def work(ret):
        diff = _mod("db_differences")(name, character_set, collate, connection=connection,
                                      cached=True)
        if diff is None:
            _change(ret, {"database": {"old": None, "new": name}},
                    f"Database {name} would be created",
                    lambda: _mod("db_create")(name, character_set, collate,
                                              connection=connection),
                    f"Database {name} created")
        elif diff:
            _change(ret, {k: {"old": old, "new": new} for k, (old, new) in diff.items()},
                    f"Database {name} would be altered",
                    lambda: _mod("db_alter")(name, character_set, collate,
                                             connection=connection),
                    f"Database {name} altered")
        else:
            ret["comment"] = f"Database {name} is present"

    return _guard(name, _secrets(connection), work)


def database_absent(name, connection=None):
    """The database ``name`` does not exist (its data is dropped)."""

    def work(ret):
        if not _mod("db_exists")(name, connection=connection, cached=True):
            ret["comment"] = f"Database {name} is absent"
            return
        _change(ret, {"database": {"old": name, "new": None}},
                f"Database {name} would be dropped",
                lambda: _mod("db_drop")(name, connection=connection),
                f"Database {name} dropped")

    return _guard(name, _secrets(connection), work)


def user_present(name, host, password, connection=None):
    """The account ``name@host`` exists and ``password`` logs it in.

    A password changed outside Salt (drift) is detected from the stored hash
    and set again with ``ALTER USER``; a matching password is never rewritten.
    """
    account = _account(name, host)

    def work(ret):
        check = _mod("user_check")(name, host, password, connection=connection, cached=True)
        if not check["exists"]:
            _change(ret, {"user": {"old": None, "new": account}},
                    f"User {account} would be created",
                    lambda: _mod("user_create")(name, host, password, connection=connection),
                    f"User {account} created")
        elif check["password"] is False:
            _change(ret, {"password": {"old": _masked(), "new": _masked()}},
                    f"Password of {account} differs and would be set",
                    lambda: _mod("user_set_password")(name, host, password,
                                                      connection=connection),
                    f"Password of {account} differed and was set")
        elif check["password"] is None:
            ret["comment"] = (f"User {account} is present; its authentication plugin "
                              f"'{check['plugin']}' cannot be checked, password left as is")
        else:
            ret["comment"] = f"User {account} is present with the wanted password"

    return _guard(name, _secrets(connection, password), work)


def user_absent(name, host, connection=None):
    """The account ``name@host`` does not exist."""
    account = _account(name, host)

    def work(ret):
        if not _mod("user_exists")(name, host, connection=connection, cached=True):
            ret["comment"] = f"User {account} is absent"
            return
        _change(ret, {"user": {"old": account, "new": None}},
                f"User {account} would be dropped",
                lambda: _mod("user_drop")(name, host, connection=connection),
                f"User {account} dropped")

    return _guard(name, _secrets(connection), work)


def grants_present(name, host, database, privileges="ALL", strict=False, connection=None):
    """``name@host`` holds ``privileges`` on ``database``.*.

    Missing privileges are granted; other databases and other users are never
    touched. With ``strict: True`` extra privileges on this same database are
    revoked. ``_`` and ``%`` in ``database`` are literal (the grant is on
    ``nova\\_api``, which does not match ``novaXapi``).
    """
    account = _account(name, host)

    def work(ret):
        plan = _mod("grants_plan")(name, host, database, privileges, bool(strict),
                                   connection=connection, cached=True)
        on = f"`{database}`.*"
        if plan is None:
            wanted = ", ".join(__utils__["openstack_sql.normalize_privileges"](privileges))
            if __opts__["test"]:
                ret["result"] = None
                ret["changes"] = {"grant": f"{wanted} ON {on}"}
                ret["comment"] = (f"User {account} does not exist yet; {wanted} on {on} "
                                  "would be granted once it does")
                return
            ret["result"] = False
            ret["comment"] = (f"User {account} does not exist: declare "
                              "openstack_db.user_present for it (and require it) first")
            return
        if not plan["description"]:
            ret["comment"] = f"User {account} holds the wanted privileges on {on}"
            return
        changes = {}
        revoked = plan["revoke"] + (["GRANT OPTION"] if plan["revoke_grant_option"] else [])
        granted = plan["grant"] + (["GRANT OPTION"] if plan["grant_option"] else [])
        if revoked:
            changes["revoke"] = f"{', '.join(revoked)} ON {on}"
        if granted:
            changes["grant"] = f"{', '.join(granted)} ON {on}"
        _change(ret, changes, f"Would {plan['description']} on {on} for {account}",
                lambda: _mod("grants_apply")(name, host, database, plan,
                                             connection=connection),
                f"Did {plan['description']} on {on} for {account}")

    return _guard(name, _secrets(connection), work)
