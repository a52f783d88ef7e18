"""Shared data for the formula tests: grains of the platforms we render for,
a complete pillar with awkward secrets, and a flattener for show_sls output."""
import copy
import json

GRAINS = {
    "rhel7": {"os_family": "RedHat", "os": "RedHat", "osmajorrelease": 7,
              "osfinger": "Red Hat Enterprise Linux Server-7"},
    "rocky9": {"os_family": "RedHat", "os": "Rocky", "osmajorrelease": 9,
               "osfinger": "Rocky Linux-9"},
    "debian12": {"os_family": "Debian", "os": "Debian", "osmajorrelease": 12,
                 "osfinger": "Debian-12"},
    "ubuntu2204": {"os_family": "Debian", "os": "Ubuntu", "osmajorrelease": 22,
                   "osfinger": "Ubuntu-22.04"},
}
ALL_IN_ONE = ["api", "scheduler", "conductor", "compute"]
CONTROLLER = ["api", "scheduler", "conductor"]

# Every character a URL or YAML could choke on.
DB_PASSWORD = "d@b:p/w%#&'\" \\?x"
SECRETS = {
    "database": DB_PASSWORD,
    "messaging": "r@bbit:%#pw &?",  # no "/": see _utils/nova_schema.py NO_SLASH
    "identity": "ks-S3cret!",
    "placement": "pl-S3cret!",
    "neutron": "neu-S3cret!",
    "metadata": "meta-S3cret!",
}


def pillar(release="zed", roles=None, **extra):
    """A valid `nova` pillar (wrapped in {"nova": ...}), merged with ``extra``."""
    data = {
        "release": release,
        "roles": list(ALL_IN_ONE if roles is None else roles),
        "my_ip": "10.1.2.3",
        "database": {"host": "db.example.org", "password": SECRETS["database"]},
        "messaging": {"host": "mq.example.org", "password": SECRETS["messaging"]},
        "identity": {"password": SECRETS["identity"]},
        "placement": {"password": SECRETS["placement"]},
        "network": {"neutron": {"password": SECRETS["neutron"],
                                "metadata_secret": SECRETS["metadata"]}},
    }
    return {"nova": merge(data, extra)}


def sandboxed(folder):
    """``lookup`` keys that send the host files the plan writes beside the
    INI files (Debian's /etc/default/nova-*, policy.yaml) into ``folder``: a
    test that applies the formula never writes the machine's own."""
    folder = str(folder)
    return {"api_server_file": f"{folder}/default-nova-api",
            "metadata_server_file": f"{folder}/default-nova-api-metadata",
            "console_default_file": f"{folder}/default-nova-consoleproxy",
            "policy_file": f"{folder}/policy.yaml"}


def drop_scratch_databases(prefix):
    """Drop the scratch nova databases (<prefix>, _api, _cell0) and user of a test."""
    import pymysql

    conn = pymysql.connect(unix_socket="/run/mysqld/mysqld.sock", user="root")
    try:
        with conn.cursor() as cur:
            for name in (prefix, prefix + "_api", prefix + "_cell0"):
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"DROP USER IF EXISTS '{prefix}'@'localhost'")
    finally:
        conn.close()


def merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flatten(show_sls):
    """{state id: (module.function, {arg: value})} from state.show_sls data."""
    out = {}
    for sid, body in show_sls.items():
        for mod, args in body.items():
            if mod.startswith("__"):
                continue
            fun = next(a for a in args if isinstance(a, str))
            kwargs = {}
            for arg in args:
                if isinstance(arg, dict):
                    kwargs.update(arg)
            out[sid] = (f"{mod}.{fun}", kwargs)
    return out


def render(salt_call, data, sls="nova"):
    """Set ``data`` as pillar and return flatten(state.show_sls sls)."""
    salt_call.set_pillar(data)
    code, parsed, proc = salt_call.run("state.show_sls", sls)
    assert code == 0 and isinstance(parsed, dict), proc.stdout + proc.stderr
    return flatten(parsed)


def dumps(states):
    return json.dumps(states, sort_keys=True)
