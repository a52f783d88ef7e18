#!/usr/bin/python3
"""Helpers for services.sh that must not put secrets on a command line.

Runs with Debian's /usr/bin/python3 (pymysql, openstacksdk and yaml come from the
packages install-packages.sh installs). Secrets are read from, or generated into,
root-only files under STATE_DIR; nothing secret is printed.

Subcommands:
  secret NAME                 create STATE_DIR/NAME.password if absent (0600)
  db SERVICE                  ensure database ftest_SERVICE and its user (password
                              from db-SERVICE.password)
  dropdbs SERVICE...          drop ftest_SERVICE databases and users
  clouds-yaml                 write the nova-formula-admin cloud to CLOUDS_YAML
  keystone-base               ensure project 'service' exists (checks a token too)
  keystone-service SERVICE TYPE URL
                              ensure user SERVICE (admin in project service),
                              service SERVICE of TYPE, and its 3 endpoints at URL
  image NAME                  ensure a public 1 MiB raw image of zeros named NAME
  network-warmup              list networks and ports until both answer 200
  wait URL SECONDS SERVICE LOG
                              wait until URL answers HTTP < 500
"""
import os
import sys
import time
import urllib.error
import urllib.request

STATE_DIR = os.environ.get("FTEST_STATE_DIR", "/var/lib/nova-formula-tests")
CLOUDS_YAML = os.environ.get("FTEST_CLOUDS_YAML", "/etc/openstack/clouds.yaml")
CLOUD = "nova-formula-admin"
REGION = "RegionOne"
# services.sh exports FTEST_ADVERTISE (the fleet's controller: its own address)
KEYSTONE_URL = f"http://{os.environ.get('FTEST_ADVERTISE') or '127.0.0.1'}:5000/v3"
MYSQL_SOCKET = "/run/mysqld/mysqld.sock"


def die(msg):
    print(f"ftest_helper: {msg}", file=sys.stderr)
    sys.exit(1)


def secret_path(name):
    return os.path.join(STATE_DIR, f"{name}.password")


def secret(name):
    """Return the secret NAME, creating it (0600, in a 0700 dir) if absent."""
    import secrets

    os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)
    os.chmod(STATE_DIR, 0o700)
    path = secret_path(name)
    try:
        with open(path) as fh:
            value = fh.read().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    value = secrets.token_hex(16)  # hex: safe in URLs and ini files unquoted
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.replace(path + ".tmp", path)
    return value


def root_db():
    import pymysql

    try:
        return pymysql.connect(unix_socket=MYSQL_SOCKET, user="root", autocommit=True)
    except pymysql.err.MySQLError as exc:
        die(f"cannot connect to MariaDB as root on {MYSQL_SOCKET}: {exc.args[-1]}")


DB_HOSTS = ("localhost", "127.0.0.1")


def cmd_db(service):
    name = f"ftest_{service}"
    password = secret(f"db-{service}")
    conn = root_db()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        for host in DB_HOSTS:
            cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (name, host, password))
            cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (name, host, password))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@%s", (name, host))
    conn.close()


def cmd_dropdbs(*services):
    conn = root_db()
    with conn.cursor() as cur:
        for service in services:
            name = f"ftest_{service}"
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            for host in DB_HOSTS:
                cur.execute("DROP USER IF EXISTS %s@%s", (name, host))
    conn.close()


def cmd_clouds_yaml():
    import yaml

    password = secret("keystone-admin")
    data = {}
    if os.path.exists(CLOUDS_YAML):
        with open(CLOUDS_YAML) as fh:
            data = yaml.safe_load(fh) or {}
    data.setdefault("clouds", {})[CLOUD] = {
        "auth": {
            "auth_url": KEYSTONE_URL,
            "username": "admin",
            "password": password,
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": REGION,
        "identity_api_version": 3,
        "interface": "public",
    }
    os.makedirs(os.path.dirname(CLOUDS_YAML), exist_ok=True)
    fd = os.open(CLOUDS_YAML + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(data, fh, default_flow_style=False)
    os.chmod(CLOUDS_YAML + ".tmp", 0o600)
    os.replace(CLOUDS_YAML + ".tmp", CLOUDS_YAML)


def connect():
    import openstack

    os.environ.setdefault("OS_CLIENT_CONFIG_FILE", CLOUDS_YAML)
    return openstack.connect(cloud=CLOUD)


def cmd_keystone_base():
    conn = connect()
    conn.authorize()  # a token can be issued
    if not conn.identity.find_project("service", domain_id="default"):
        conn.identity.create_project(name="service", domain_id="default",
                                     description="Service project (nova-formula tests)")


def cmd_keystone_service(service, stype, url):
    conn = connect()
    password = secret(f"keystone-{service}")
    project = conn.identity.find_project("service", domain_id="default", ignore_missing=False)
    user = conn.identity.find_user(service, domain_id="default")
    if user is None:
        user = conn.identity.create_user(name=service, password=password, domain_id="default",
                                         default_project_id=project.id)
    else:
        # The password file may be newer than the user (state dir wiped): re-sync.
        conn.identity.update_user(user, password=password)
    conn.grant_role("admin", user=user.id, project=project.id, domain="default")
    svc = conn.identity.find_service(service)
    if svc is None:
        svc = conn.identity.create_service(name=service, type=stype,
                                           description=f"{stype} (nova-formula tests)")
    existing = {ep.interface: ep for ep in conn.identity.endpoints(service_id=svc.id)}
    for interface in ("public", "internal", "admin"):
        ep = existing.get(interface)
        if ep is None:
            conn.identity.create_endpoint(service_id=svc.id, interface=interface, url=url,
                                          region_id=REGION)
        elif ep.url != url or ep.region_id != REGION:
            conn.identity.update_endpoint(ep, url=url, region_id=REGION)


def cmd_image(name):
    conn = connect()
    if conn.image.find_image(name):
        return
    conn.image.create_image(name=name, data=b"\0" * (1024 * 1024), disk_format="raw",
                            container_format="bare", visibility="public")


def http_status(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def cmd_wait(url, seconds, service, log):
    deadline = time.monotonic() + float(seconds)
    status = None
    while time.monotonic() < deadline:
        status = http_status(url)
        if status is not None and status < 500:
            return
        time.sleep(0.5)
    tail = ""
    try:
        with open(log, errors="replace") as fh:
            tail = "".join(fh.readlines()[-15:])
    except OSError as exc:
        tail = f"(cannot read log: {exc.strerror})"
    die(f"{service} did not answer on {url} within {seconds}s (last status: {status}); "
        f"see {log}. Last lines:\n{tail}")


def cmd_network_warmup(seconds="60"):
    conn = connect()
    deadline = time.monotonic() + float(seconds)
    last = None
    while time.monotonic() < deadline:
        try:
            list(conn.network.networks())
            list(conn.network.ports())
            return
        except Exception as exc:  # noqa: BLE001 - first queries may 500 while warming up
            last = exc
            time.sleep(1)
    die(f"neutron did not answer network/port list within {seconds}s: {type(last).__name__}")


def main(argv):
    if not argv:
        die("usage: ftest_helper.py SUBCOMMAND ARGS (see the module docstring)")
    cmd, args = argv[0], argv[1:]
    table = {
        "secret": lambda name: secret(name) and None,
        "db": cmd_db,
        "dropdbs": cmd_dropdbs,
        "clouds-yaml": cmd_clouds_yaml,
        "keystone-base": cmd_keystone_base,
        "keystone-service": cmd_keystone_service,
        "image": cmd_image,
        "network-warmup": cmd_network_warmup,
        "wait": cmd_wait,
    }
    if cmd not in table:
        die(f"unknown subcommand {cmd!r}")
    try:
        table[cmd](*args)
    except TypeError as exc:
        die(f"{cmd}: bad arguments ({exc})")


if __name__ == "__main__":
    main(sys.argv[1:])
