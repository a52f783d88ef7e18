"""Log in with a transport URL and a database URL the way Nova's own libraries do.

Run by the system's Python (/usr/bin/python3), where Debian's OpenStack
packages put oslo.messaging, kombu, SQLAlchemy and PyMySQL. Reads JSON from
stdin (URLs hold passwords: never on argv):

    {"transport_url": "rabbit://...", "database_connection": "mysql+pymysql://..."}

and prints one JSON object: for each URL given, ``{"ok": true}`` or
``{"ok": false, "error": "<exception type>"}``. The error text is left out on
purpose: kombu's URL errors quote part of the password.

- transport_url: oslo.messaging's TransportURL.parse, then the rabbit
  driver's own rebuild of kombu's URL (Connection._transform_transport_url),
  then a real AMQP login through kombu with that URL.
- database_connection: SQLAlchemy's make_url (what oslo.db hands the engine),
  then a real login through SQLAlchemy, and ``SELECT 1``.
"""
import json
import sys
import types


def check_transport(url):
    from kombu import Connection as KombuConnection
    from oslo_config import cfg
    from oslo_messaging import TransportURL
    from oslo_messaging._drivers import impl_rabbit

    parsed = TransportURL.parse(cfg.ConfigOpts(), url)
    driver = impl_rabbit.Connection
    shim = types.SimpleNamespace(
        _parse_url_hostname=lambda host: driver._parse_url_hostname(None, host))
    kombu_url = driver._transform_transport_url(shim, parsed, parsed.hosts[0])
    conn = KombuConnection(kombu_url, connect_timeout=10)
    try:
        conn.connect()
        return conn.connected
    finally:
        conn.release()


def check_database(url):
    import sqlalchemy

    engine = sqlalchemy.create_engine(sqlalchemy.engine.url.make_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def main():
    request = json.load(sys.stdin)
    out = {}
    for key, check in (("transport_url", check_transport),
                       ("database_connection", check_database)):
        if key not in request:
            continue
        try:
            out[key] = {"ok": bool(check(request[key]))}
        except Exception as exc:  # noqa: BLE001 - reported by type only
            out[key] = {"ok": False, "error": type(exc).__name__}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
