"""Helpers for the nova formula, called from ``nova/map.jinja`` and the SLS.

- ``validate``: check the merged ``nova`` map (and the raw pillar) and return a
  list of messages, each naming the pillar key at fault. Secret values are
  never quoted in a message.
- ``url`` / ``db_url`` / ``transport_url``: build URLs with the user and
  password percent-encoded here in Python (Jinja string concatenation breaks
  on ``@ : / % #``...).
- ``plan``: what this minion does (roles, whether it creates the databases,
  the Keystone records, runs the DB sync) and the INI sections of every
  managed file, in the option dialect of the release.

Everything is a pure function of its arguments and this minion's id, except
``sysctl_exists`` which looks at /proc/sys.
"""
import importlib.util
import ipaddress
import os
import re
from urllib.parse import quote, urlsplit

__virtualname__ = "nova_formula"

ROLES = ("api", "scheduler", "conductor", "compute")
FILES = {"nova.conf": "nova_conf", "api-paste.ini": "api_paste",
         "nova-compute.conf": "compute_conf"}
MASK = "********"
# Keys masked in INI change reports on top of the engine's own list.
SECRET_KEYS = ("sql_connection", "connection", "transport_url", "password",
               "rabbit_password", "admin_password", "metadata_proxy_shared_secret")
VIF_DRIVERS = {
    "generic": "nova.virt.libvirt.vif.LibvirtGenericVIFDriver",
    "ovs": "nova.virt.libvirt.vif.LibvirtHybridOVSBridgeDriver",
    "linuxbridge": "nova.virt.libvirt.vif.LibvirtGenericVIFDriver",
}

# The pillar reference: key -> (check, description). README.md and
# pillar.example are tested against it. "map" keys take free-form sub-keys.
SCHEMA = {
    "release": ("release", "OpenStack release; picks the option dialect (legacy: havana, icehouse, juno; current: zed and later)"),
    "roles": ("roles", "list of api, scheduler, conductor, compute run on this minion; empty: none"),
    "my_ip": ("ip?", "[DEFAULT] my_ip; null: the first non-loopback IPv4 of the minion"),
    "secret_keys": ("strlist", "extra INI key names to mask in state output"),
    "database:host": ("host", "database server address written in the connection URL (8.2.3)"),
    "database:port": ("port", "database server port"),
    "database:user": ("dbuser", "database user of Nova (8.2.2; letters, digits, _ . $ -, at most 32 characters)"),
    "database:password": ("secret", "database password of that user (required on api/conductor and on the database minion; ASCII only)"),
    "database:driver": ("str", "SQLAlchemy URL scheme: mysql (legacy) or mysql+pymysql"),
    "database:name": ("dbname", "main (cell1) database; cell0 is <name>_cell0 (so at most 58 characters on current releases)"),
    "database:api_name": ("dbname", "API database (current releases)"),
    "database:query": ("map", "extra URL query parameters, e.g. {charset: utf8}"),
    "database:grant_hosts": ("granthosts", "host patterns the user is created and granted for (8.2.2; at least one)"),
    "database:admin": ("dbadmin", "openstack_db connection dict used to create databases and grants (default: openstack_db:connection)"),
    "messaging:host": ("host", "RabbitMQ host (8.2.8 rabbit_host)"),
    "messaging:port": ("port", "RabbitMQ port (rabbit_port, 5672)"),
    "messaging:user": ("str", "RabbitMQ user (rabbit_userid, nova)"),
    "messaging:password": ("secret", "RabbitMQ password (required on every Nova node; no '/')"),
    "messaging:virtual_host": ("str", "RabbitMQ virtual host (rabbit_virtual_host, /)"),
    "messaging:ssl:enabled": ("bool", "broker SSL (8.2.9 rabbit_use_ssl / [oslo_messaging_rabbit] ssl)"),
    "messaging:ssl:cert_file": ("path?", "client certificate (kombu_ssl_certfile / ssl_cert_file)"),
    "messaging:ssl:key_file": ("path?", "client key (kombu_ssl_keyfile / ssl_key_file)"),
    "messaging:ssl:ca_file": ("path?", "third-party CA (kombu_ssl_ca_certs / ssl_ca_file)"),
    "identity:auth_url": ("url", "Keystone URL services authenticate against"),
    "identity:www_authenticate_uri": ("url", "public Keystone URL announced to clients ([keystone_authtoken])"),
    "identity:auth_host": ("host", "legacy api-paste.ini [filter:authtoken] auth_host (8.2.5)"),
    "identity:region": ("str", "region of the endpoints and of [keystone_authtoken]/[placement]"),
    "identity:project": ("str", "service project (legacy tenant services; current service)"),
    "identity:project_domain": ("str", "domain of that project"),
    "identity:user_domain": ("str", "domain of the service user"),
    "identity:user": ("str", "Keystone user of Nova (guide: compute)"),
    "identity:password": ("secret", "its password (required on every Nova node and on the identity minion)"),
    "identity:role": ("str", "role granted to the user in the project (admin)"),
    "identity:service_role": ("str?", "role also granted so other services accept Nova's service tokens (keystonemiddleware service_token_roles: service); null: none"),
    "identity:memcached_servers": ("str?", "[keystone_authtoken] memcached_servers"),
    "identity:admin": ("ksadmin", "openstack_keystone auth dict with admin credentials (default: openstack_keystone:auth)"),
    "identity:cloud": ("str?", "or a clouds.yaml cloud name for those credentials"),
    "identity:service:name": ("str", "service name in the catalog (guide: compute)"),
    "identity:service:type": ("str", "service type (compute)"),
    "identity:service:description": ("str", "service description"),
    "identity:endpoints:public": ("url", "public endpoint URL (8774)"),
    "identity:endpoints:internal": ("url", "internal endpoint URL"),
    "identity:endpoints:admin": ("url", "admin endpoint URL"),
    "api:port": ("port", "Compute API port (firewall, 8774)"),
    "api:tcp_keepidle": ("posint", "tcp_keepidle of the API server (8.2.7, 600)"),
    "api:ssl:enabled": ("bool", "serve the API over SSL (8.2.7)"),
    "api:ssl:ca_file": ("path?", "ssl_ca_file"),
    "api:ssl:cert_file": ("path?", "ssl_cert_file (required when enabled)"),
    "api:ssl:key_file": ("path?", "ssl_key_file (required when enabled)"),
    "compute:driver": ("str?", "compute_driver in nova.conf and nova-compute.conf (e.g. fake.FakeDriver)"),
    "compute:cpu_allocation_ratio": ("ratio", "CPU overcommit (8.2.10, 16.0)"),
    "compute:ram_allocation_ratio": ("ratio", "RAM overcommit (8.2.10, 1.5)"),
    "compute:reserved_host_memory_mb": ("count", "memory kept for the host (8.2.11, 512)"),
    "compute:reserved_host_disk_mb": ("count", "disk kept for the host (8.2.11, 0)"),
    "compute:block_storage": ("bool", "install the Block Storage client on computes (8.2.1)"),
    "network:type": ("choice:neutron,nova-network", "neutron (OpenStack Networking) or legacy nova-network"),
    "network:plugin": ("choice:generic,ovs,linuxbridge", "network plugin; picks the vif driver and qemu.conf (8.2.12.4)"),
    "network:neutron:url": ("url", "legacy [neutron] url (9696)"),
    "network:neutron:auth_url": ("url", "[neutron] auth_url / admin_auth_url"),
    "network:neutron:region": ("str", "[neutron] region_name"),
    "network:neutron:project": ("str", "[neutron] project_name / admin_tenant_name"),
    "network:neutron:project_domain": ("str", "[neutron] project_domain_name"),
    "network:neutron:user_domain": ("str", "[neutron] user_domain_name"),
    "network:neutron:user": ("str", "[neutron] username / admin_username"),
    "network:neutron:password": ("secret", "[neutron] password (required with neutron)"),
    "network:neutron:metadata_proxy": ("bool", "service_metadata_proxy (API nodes)"),
    "network:neutron:metadata_secret": ("secret", "metadata_proxy_shared_secret (required on API nodes when metadata_proxy)"),
    "placement:auth_url": ("url", "[placement] auth_url (current releases)"),
    "placement:region": ("str", "[placement] region_name"),
    "placement:project": ("str", "[placement] project_name"),
    "placement:project_domain": ("str", "[placement] project_domain_name"),
    "placement:user_domain": ("str", "[placement] user_domain_name"),
    "placement:user": ("str", "[placement] username"),
    "placement:password": ("secret", "[placement] password (required on current releases)"),
    "glance:api_servers": ("urllist", "[glance] api_servers (empty: from the catalog)"),
    "firewall:vnc_ports": ("portrange", "VNC console ports opened on computes (8.2.6, 5900:5999)"),
    "firewall:api_port": ("port", "port opened on API nodes (8.2.6, 8774)"),
    "sysctl": ("map", "kernel parameters set on computes with neutron (8.2.12.2)"),
    "libvirt:linuxbridge_qemu_conf": ("map", "qemu.conf lines written with the Linux Bridge plugin (8.2.12.4)"),
    "config": ("config", "raw overrides: <file>: <section>: <key>: value (null removes the key)"),
    "fleet:controllers": ("minions", "minion ids of the controllers (orchestrate)"),
    "fleet:computes": ("minions", "minion ids of the computes (orchestrate)"),
    "fleet:conductors": ("minions", "conductor minion ids (default: controllers)"),
    "fleet:sync_conductor": ("minion?", "the one conductor that runs the DB sync (default: first conductor by id)"),
    "fleet:database": ("minion?", "minion that creates databases and grants (default: the sync conductor)"),
    "fleet:identity": ("minion?", "minion that creates Keystone records (default: the sync conductor)"),
    "fleet:batch": ("posint", "computes applied at once by orchestrate"),
    "fleet:discover:attempts": ("posint", "host discovery tries while computes register"),
    "fleet:discover:interval": ("posint", "seconds between those tries"),
    "fleet:discover:expect": ("expect", "compute hosts that must be registered: a count, or their host names so a missing one is named (orchestrate passes fleet:computes)"),
    "manage:packages": ("bool", "install packages"),
    "manage:database": ("bool", "create databases, users, grants"),
    "manage:identity": ("bool", "create Keystone records"),
    "manage:firewall": ("bool", "insert iptables rules"),
    "manage:sysctl": ("bool", "set kernel parameters"),
    "manage:libvirt": ("bool", "edit qemu.conf"),
    "manage:nova_network": ("bool", "remove nova-network when Networking is used"),
    "manage:db_sync": ("bool", "run nova-manage DB sync and cell setup"),
    "manage:services": ("bool", "start, enable and restart services"),
    "manage:discover": ("bool", "map new compute hosts to cells"),
    "lookup": ("map", "OS/release facts (package, service, file names): override only to port the formula"),
}

# Keystone's column limits (identity users/roles/services 255, projects and
# domains 64): refused here, before any record is created.
LENGTHS = {"identity:user": 255, "identity:project": 64, "identity:project_domain": 64,
           "identity:user_domain": 64, "identity:role": 255, "identity:service_role": 255,
           "identity:service:name": 255, "identity:service:type": 255}
# Auth URLs that must speak Identity v3 on current releases (v2.0 was removed).
V3_URLS = ("identity:auth_url", "placement:auth_url", "network:neutron:auth_url")
# oslo.messaging's rabbit driver decodes the transport URL, then rebuilds
# kombu's URL with urllib's quote(), which leaves "/" raw: kombu then reads
# the rest of the password as a port and the services die quoting it. No
# encoding avoids that, so these values must not hold a "/".
NO_SLASH = ("messaging:user", "messaging:password")
# PyMySQL before 1.1 (Debian 12's 1.0.2, with Zed) sends the password as
# latin-1, while the server hashed the UTF-8 bytes: a non-ASCII database
# password then never logs in.
ASCII_ONLY = ("database:password",)
CELL0_SUFFIX = "_cell0"
DB_NAME_MAX = 64  # MySQL identifier limit


def __virtual__():
    return __virtualname__


# The rules of the engines the states use, taken from the sibling modules
# themselves (same folder, in the repo and in Salt's extmods), so the
# validator refuses exactly what they would refuse later.
_SIBLINGS = {}


def _sibling(name):
    if name not in _SIBLINGS:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
        spec = importlib.util.spec_from_file_location(f"nova_formula_rules_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _SIBLINGS[name] = mod
    return _SIBLINGS[name]


def _refused(func, *args):
    """The error text of an engine check, or None when it passes."""
    try:
        func(*args)
    except Exception as exc:  # noqa: BLE001 - the engines raise their own error types
        return str(exc)
    return None


def _ini_value_error(value):
    """Why openstack_ini would refuse to write ``value`` (never quotes it)."""
    if _refused(_sibling("openstack_ini")._wanted_values, "", "", "", value):
        return "must not contain a newline (it is written to an INI file)"
    return None


def _strings(value):
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


# ---------------------------------------------------------------- URLs

def url(scheme, host, port=None, user=None, password=None, path="", query=None):
    """``scheme://user:password@host:port/path?query`` with user, password and
    path percent-encoded (so any character may appear in a password)."""
    netloc = ""
    if user is not None:
        netloc = quote(str(user), safe="")
        if password is not None:
            netloc += ":" + quote(str(password), safe="")
        netloc += "@"
    host = str(host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    netloc += host
    if port not in (None, ""):
        netloc += f":{int(port)}"
    out = f"{scheme}://{netloc}/{quote(str(path or ''), safe='')}"
    if query:
        out += "?" + "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe='')}"
                              for k, v in sorted(query.items()))
    return out


def db_url(nova, which="main"):
    """SQLAlchemy URL of the main (``which='main'``) or API database."""
    db = nova["database"]
    name = db["name"] if which == "main" else db["api_name"]
    return url(db["driver"], db["host"], db.get("port"), db["user"], db["password"],
               name, db.get("query"))


def transport_url(nova):
    """oslo.messaging ``rabbit://`` URL; the path is the virtual host ('' for /)."""
    mq = nova["messaging"]
    vhost = str(mq.get("virtual_host") or "/")
    return url("rabbit", mq["host"], mq.get("port"), mq["user"], mq["password"],
               "" if vhost == "/" else vhost)


def mask(text, secrets=()):
    """``text`` with each secret (and any URL password) replaced by ********."""
    text = str(text)
    for secret in secrets:
        if secret:
            for form in {str(secret), quote(str(secret), safe="")}:
                text = text.replace(form, MASK)
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", rf"\g<1>{MASK}@", text)


# ---------------------------------------------------------------- validation

def _get(data, path):
    for part in path.split(":"):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool) or (
        isinstance(value, str) and value.strip().isdigit())


def _check_url(value):
    if not isinstance(value, str):
        return "must be a URL string"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"malformed URL {value!r} (want http(s)://host[:port]/path)"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"malformed URL {value!r} (bad port)"
    if any(c.isspace() for c in value):
        return f"malformed URL {value!r} (contains whitespace)"
    return None


def _check_port(value):
    if not _is_int(value) or not 1 <= int(value) <= 65535:
        return f"port must be an integer 1-65535, got {value!r}"
    return None


def _check(kind, value, releases):
    """Return an error message for ``value`` of ``kind``, or None."""
    if kind.endswith("?"):
        if value is None:
            return None
        kind = kind[:-1]
    if kind == "release":
        if str(value) not in releases:
            return f"unknown release {value!r} (known: {', '.join(releases)})"
    elif kind == "roles":
        if not isinstance(value, list):
            return "must be a list of roles"
        bad = [r for r in value if r not in ROLES]
        if bad:
            return f"unknown role(s) {', '.join(map(repr, bad))} (known: {', '.join(ROLES)})"
    elif kind in ("str", "dbname"):
        if not isinstance(value, str) or not value:
            return f"must be a non-empty string, got {value!r}"
        if kind == "dbname" and not re.fullmatch(r"[A-Za-z0-9_]{1,64}", value):
            return f"database names use letters, digits and _, got {value!r}"
    elif kind == "host":
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9._:\-\[\]%]+", value):
            return f"must be a host name or IP address, got {value!r}"
    elif kind == "ip":
        try:
            ipaddress.ip_address(value if isinstance(value, str) else "")
        except ValueError:
            return f"must be an IP address (an oslo IPOpt), got {value!r}"
    elif kind == "dbuser":
        if _refused(_sibling("openstack_db").validate_user, value):
            return (f"must be 1-32 letters, digits, '_', '.', '$', '-' (openstack_db's rule), "
                    f"got {value!r}")
    elif kind == "granthosts":
        if not isinstance(value, list) or not value:
            return "must be a non-empty list of host patterns (the DB user is created for each)"
        for host in value:
            if _refused(_sibling("openstack_db").validate_host, host):
                return (f"invalid host pattern {host!r} (allowed: letters, digits, "
                        "'.', '%', '_', ':', '/', '-')")
    elif kind in ("dbadmin", "ksadmin"):
        if not isinstance(value, dict):
            return "must be a mapping"
        known = (_sibling("openstack_db").CONNECTION_KEYS if kind == "dbadmin"
                 else _sibling("openstack_keystone").AUTH_KEYS)
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            return f"unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})"
    elif kind == "expect":
        if isinstance(value, list):
            if not all(isinstance(v, str) and v for v in value):
                return "must be a count or a list of compute host names"
        elif not _is_int(value) or int(value) < 0:
            return f"must be a count (>= 0) or a list of compute host names, got {value!r}"
    elif kind == "secret":
        if value is not None and (not isinstance(value, str) or not value):
            return "must be a non-empty string (quote it in YAML)"
    elif kind == "path":
        if not isinstance(value, str) or not value.startswith("/"):
            return f"must be an absolute path, got {value!r}"
    elif kind == "bool":
        if not isinstance(value, bool):
            return f"must be true or false, got {value!r}"
    elif kind in ("strlist", "minions"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return "must be a list of strings"
    elif kind == "minion":
        if not isinstance(value, str) or not value:
            return "must be a minion id"
    elif kind == "url":
        return _check_url(value)
    elif kind == "urllist":
        if not isinstance(value, list):
            return "must be a list of URLs"
        for item in value:
            err = _check_url(item)
            if err:
                return err
    elif kind == "port":
        return _check_port(value)
    elif kind == "portrange":
        parts = str(value).split(":")
        if len(parts) > 2 or any(_check_port(p) for p in parts):
            return f"must be a port or FIRST:LAST with ports 1-65535, got {value!r}"
        if len(parts) == 2 and int(parts[0]) > int(parts[1]):
            return f"first port is above the last, got {value!r}"
    elif kind == "ratio":
        try:
            if isinstance(value, bool) or float(value) <= 0:
                raise ValueError
        except (TypeError, ValueError):
            return f"must be a number above 0, got {value!r}"
    elif kind in ("count", "posint"):
        if not _is_int(value) or int(value) < (1 if kind == "posint" else 0):
            return f"must be an integer {'>= 1' if kind == 'posint' else '>= 0'}, got {value!r}"
    elif kind.startswith("choice:"):
        choices = kind[len("choice:"):].split(",")
        if value not in choices:
            return f"must be one of {', '.join(choices)}, got {value!r}"
    elif kind == "map":
        if not isinstance(value, dict):
            return "must be a mapping"
    elif kind == "config":
        return _check_config(value)
    return None


def _check_config(value):
    if not isinstance(value, dict):
        return "must be a mapping of file -> section -> key -> value"
    for fname, sections in value.items():
        if fname not in FILES:
            return f"unknown file {fname!r} (known: {', '.join(FILES)})"
        if not isinstance(sections, dict) or not all(
                isinstance(keys, dict) for keys in sections.values()):
            return f"{fname} must map section -> key -> value"
        ini = _sibling("openstack_ini")
        for section, keys in sections.items():
            # openstack_ini's own name and value rules; its messages never
            # quote a value (a raw override may hold a secret).
            for key, val in keys.items():
                err = (_refused(ini._check_name, fname, section, key)
                       or _refused(ini._wanted_values, fname, section, key, val))
                if err:
                    return err
            if not keys:
                err = _refused(ini._check_name, fname, section)
                if err:
                    return err
    return None


def _unknown_keys(raw, prefix=""):
    """Pillar keys that are not in SCHEMA (typos), as 'a:b' paths."""
    out = []
    for key, value in raw.items():
        path = f"{prefix}{key}"
        kind = SCHEMA.get(path, (None,))[0]
        if kind in ("map", "config"):
            continue
        if kind is None:
            if isinstance(value, dict) and any(k.startswith(path + ":") for k in SCHEMA):
                out.extend(_unknown_keys(value, path + ":"))
            else:
                out.append(path)
    return out


def validate(nova, raw=None, releases=None):
    """Check the merged map ``nova`` (and the raw ``nova`` pillar ``raw`` for
    typos); return a list of "nova:<key>: <problem>" messages (empty: valid)."""
    releases = [str(r) for r in (releases or [])]
    if raw is not None and not isinstance(raw, dict):
        return ["nova: the pillar must be a mapping"]
    errors = [f"nova:{k}: unknown key (see pillar.example)" for k in _unknown_keys(raw or {})]
    for key, (kind, _) in SCHEMA.items():
        value = _get(nova, key)
        err = _check(kind, value, releases)
        if not err and kind not in ("config", "map", "dbadmin", "ksadmin"):
            # every string may reach an INI file (secrets too): no newline
            err = next(filter(None, map(_ini_value_error, _strings(value))), None)
        if not err and key in LENGTHS and isinstance(value, str) and len(value) > LENGTHS[key]:
            err = f"at most {LENGTHS[key]} characters (Keystone's limit), got {len(value)}"
        if not err and key in ASCII_ONLY and isinstance(value, str) and not value.isascii():
            err = ("must be ASCII: PyMySQL before 1.1, which Nova uses on Zed, sends "
                   "the password as latin-1, so a non-ASCII one never logs in")
        if not err and key in NO_SLASH and isinstance(value, str) and "/" in value:
            err = ("may not contain '/': oslo.messaging's rabbit driver re-quotes it raw "
                   "into kombu's URL, which then cannot be parsed (every other character "
                   "works)")
        if err:
            errors.append(f"nova:{key}: {err}")
    if errors:
        return errors
    if nova["dialect"] == "current":
        name = nova["database"]["name"]
        if len(name + CELL0_SUFFIX) > DB_NAME_MAX:
            errors.append(f"nova:database:name: at most {DB_NAME_MAX - len(CELL0_SUFFIX)} "
                          f"characters, so that <name>{CELL0_SUFFIX} fits MySQL's {DB_NAME_MAX}, "
                          f"got {len(name)}")
        for key in V3_URLS:
            path = urlsplit(_get(nova, key)).path.rstrip("/")
            if path.endswith("/v2.0"):
                errors.append(f"nova:{key}: Identity v2.0 was removed from Keystone; release "
                              f"{nova['release']} needs the v3 (or unversioned) URL")
        if errors:
            return errors
    # Which secrets this minion needs depends on what it runs.
    roles = set(nova["roles"])
    where = _placement(nova)
    needs = []
    if roles & set(nova["lookup"]["db_roles"]) or where["database"]:
        needs.append(("database:password", "the database connection or the database minion"))
    if roles:
        needs.append(("messaging:password", "every Nova service (RabbitMQ)"))
    if roles or where["identity"]:
        needs.append(("identity:password", "the Keystone service user"))
    if roles and nova["dialect"] == "current":
        needs.append(("placement:password", "[placement] on current releases"))
    if roles and nova["network"]["type"] == "neutron":
        needs.append(("network:neutron:password", "[neutron] with OpenStack Networking"))
        if "api" in roles and nova["network"]["neutron"]["metadata_proxy"]:
            needs.append(("network:neutron:metadata_secret", "the metadata proxy on API nodes"))
    for key, why in needs:
        if _get(nova, key) is None:
            errors.append(f"nova:{key}: required for {why} on this minion "
                          f"(roles: {', '.join(sorted(roles)) or 'none'}) but not set")
    if "api" in roles and nova["api"]["ssl"]["enabled"]:
        for key in ("cert_file", "key_file"):
            if not nova["api"]["ssl"][key]:
                errors.append(f"nova:api:ssl:{key}: required when nova:api:ssl:enabled is true")
    if nova["dialect"] == "current" and nova["network"]["type"] == "nova-network":
        errors.append(f"nova:network:type: nova-network was removed from Nova; "
                      f"release {nova['release']} needs neutron")
    sync = where["sync_conductor"]
    if sync == _minion_id() and "conductor" not in roles:
        errors.append(f"nova:fleet:sync_conductor: names this minion ({sync}) "
                      "but nova:roles has no conductor")
    return errors


# ---------------------------------------------------------------- the plan

def _minion_id():
    return __opts__.get("id") or __grains__.get("id")


def sync_conductor(fleet):
    """The one conductor that runs the DB sync: named, else first by id."""
    if fleet.get("sync_conductor"):
        return fleet["sync_conductor"]
    conductors = fleet.get("conductors") or fleet.get("controllers") or []
    return sorted(conductors)[0] if conductors else None


def _placement(nova):
    """Which of the one-off jobs (DB sync, databases, Keystone) run here."""
    fleet = nova["fleet"]
    me = _minion_id()
    sync = sync_conductor(fleet)
    # No fleet data: a lone conductor is the sync conductor.
    sync_here = "conductor" in nova["roles"] and sync in (None, me)
    owner = me if sync_here else sync
    return {
        "sync_conductor": sync,
        "db_sync": sync_here,
        "database": (fleet.get("database") or owner) == me,
        "identity": (fleet.get("identity") or owner) == me,
    }


def _my_ip(nova):
    if nova.get("my_ip"):
        return nova["my_ip"]
    for addr in __grains__.get("ipv4", []):
        if not ipaddress.ip_address(addr).is_loopback:
            return addr
    return "127.0.0.1"


def _put(sections, section, **keys):
    sections.setdefault(section, {}).update(
        {k: v for k, v in keys.items() if v is not None})


def _absent(sections, section, *keys):
    sections.setdefault(section, {}).update({k: None for k in keys})


def _legacy(nova, roles, conf, paste):
    """The install guide's own option names (Icehouse era)."""
    mq, ks, net = nova["messaging"], nova["identity"], nova["network"]
    _put(conf, "DEFAULT", rpc_backend="rabbit", rabbit_host=mq["host"],
         rabbit_port=mq["port"], rabbit_userid=mq["user"],
         rabbit_password=mq["password"], rabbit_virtual_host=mq["virtual_host"])
    if mq["ssl"]["enabled"]:
        _put(conf, "DEFAULT", rabbit_use_ssl=True, kombu_ssl_certfile=mq["ssl"]["cert_file"],
             kombu_ssl_keyfile=mq["ssl"]["key_file"], kombu_ssl_ca_certs=mq["ssl"]["ca_file"])
    if roles & set(nova["lookup"]["db_roles"]):
        _put(conf, "DEFAULT", sql_connection=db_url(nova))
    _put(conf, "DEFAULT", auth_strategy="keystone")
    _put(paste, "filter:authtoken", auth_host=ks["auth_host"], admin_tenant_name=ks["project"],
         admin_user=ks["user"], admin_password=ks["password"])
    if "api" in roles:
        _put(conf, "DEFAULT", tcp_keepidle=nova["api"]["tcp_keepidle"])
        ssl = nova["api"]["ssl"]
        if ssl["enabled"]:
            _put(conf, "DEFAULT", enabled_ssl_apis="osapi_compute", ssl_ca_file=ssl["ca_file"],
                 ssl_cert_file=ssl["cert_file"], ssl_key_file=ssl["key_file"])
    if net["type"] == "neutron":
        nt = net["neutron"]
        _put(conf, "DEFAULT", network_api_class="nova.network.neutronv2.api.API",
             security_group_api="neutron",
             firewall_driver="nova.virt.firewall.NoopFirewallDriver")
        _put(conf, "neutron", url=nt["url"], admin_tenant_name=nt["project"],
             admin_username=nt["user"], admin_password=nt["password"],
             admin_auth_url=nt["auth_url"])
        if "api" in roles:
            _put(conf, "neutron", service_metadata_proxy=nt["metadata_proxy"],
                 metadata_proxy_shared_secret=nt["metadata_secret"])
        if "compute" in roles:
            _put(conf, "libvirt", vif_driver=VIF_DRIVERS[net["plugin"]])


def _keystone_client(opts, conf_section, conf):
    _put(conf, conf_section, auth_type="password", auth_url=opts["auth_url"],
         project_name=opts["project"], project_domain_name=opts["project_domain"],
         user_domain_name=opts["user_domain"], username=opts["user"],
         password=opts["password"], region_name=opts.get("region"))


def _current(nova, roles, conf):
    """Zed and later: transport_url, [database], [keystone_authtoken]..."""
    mq, ks, net = nova["messaging"], nova["identity"], nova["network"]
    _put(conf, "DEFAULT", transport_url=transport_url(nova))
    if mq["ssl"]["enabled"]:
        _put(conf, "oslo_messaging_rabbit", ssl=True, ssl_cert_file=mq["ssl"]["cert_file"],
             ssl_key_file=mq["ssl"]["key_file"], ssl_ca_file=mq["ssl"]["ca_file"])
    if roles & set(nova["lookup"]["db_roles"]):
        _put(conf, "database", connection=db_url(nova))
        _put(conf, "api_database", connection=db_url(nova, "api"))
    _put(conf, "api", auth_strategy="keystone")
    _keystone_client(ks, "keystone_authtoken", conf)
    _put(conf, "keystone_authtoken", www_authenticate_uri=ks["www_authenticate_uri"],
         memcached_servers=ks["memcached_servers"])
    if "api" in roles:
        ssl = nova["api"]["ssl"]
        _put(conf, "wsgi", tcp_keepidle=nova["api"]["tcp_keepidle"])
        if ssl["enabled"]:
            _put(conf, "wsgi", ssl_ca_file=ssl["ca_file"], ssl_cert_file=ssl["cert_file"],
                 ssl_key_file=ssl["key_file"])
    _keystone_client(nova["placement"], "placement", conf)
    if net["type"] == "neutron":
        _keystone_client(net["neutron"], "neutron", conf)
        if "api" in roles:
            _put(conf, "neutron", service_metadata_proxy=net["neutron"]["metadata_proxy"],
                 metadata_proxy_shared_secret=net["neutron"]["metadata_secret"])
    if nova["glance"]["api_servers"]:
        _put(conf, "glance", api_servers=",".join(nova["glance"]["api_servers"]))


def config_files(nova, roles=None):
    """{file id: {path, sections}} of the managed files this minion writes."""
    roles = set(nova["roles"] if roles is None else roles)
    conf, paste, compute = {}, {}, {}
    _put(conf, "DEFAULT", my_ip=_my_ip(nova))
    if nova["dialect"] == "legacy":
        _legacy(nova, roles, conf, paste)
    else:
        _current(nova, roles, conf)
    if not roles & set(nova["lookup"]["db_roles"]):
        # Computes reach the database through the conductor: no URL, and a
        # leftover one (e.g. a packaged default) is removed.
        _absent(conf, "DEFAULT", "sql_connection")
        _absent(conf, "database", "connection")
        _absent(conf, "api_database", "connection")
    if roles & {"compute", "scheduler"}:
        cpt = nova["compute"]
        _put(conf, "DEFAULT", cpu_allocation_ratio=float(cpt["cpu_allocation_ratio"]),
             ram_allocation_ratio=float(cpt["ram_allocation_ratio"]))
    if "compute" in roles:
        cpt = nova["compute"]
        _put(conf, "DEFAULT", reserved_host_memory_mb=int(cpt["reserved_host_memory_mb"]),
             reserved_host_disk_mb=int(cpt["reserved_host_disk_mb"]),
             compute_driver=cpt["driver"])
        if cpt["driver"]:
            # nova-compute reads nova-compute.conf after nova.conf.
            _put(compute, "DEFAULT", compute_driver=cpt["driver"])
    out = {"nova_conf": conf, "api_paste": paste, "compute_conf": compute}
    for fname, sections in (nova.get("config") or {}).items():
        target = out[FILES[fname]]
        for section, keys in sections.items():
            target.setdefault(section, {}).update(keys)
    files = {}
    for fid, sections in out.items():
        path = nova["lookup"]["files"].get(fid)
        sections = {s: keys for s, keys in sections.items() if keys}
        if path and sections and roles:
            files[fid] = {"path": path, "sections": sections}
    return files


def plan(nova, raw=None, releases=None):
    """Validate, then say what this minion does. On invalid pillar the plan
    is empty, so no SLS renders anything but the validation failure."""
    errors = validate(nova, raw, releases)
    if errors:
        return {"errors": errors, "roles": [], "files": {}, "db_sync": False, "libvirt": False,
                "database": False, "identity": False, "sync_conductor": None,
                "databases": [], "secret_keys": list(SECRET_KEYS)}
    where = _placement(nova)
    db = nova["database"]
    driver = nova["compute"]["driver"]
    where.update(
        errors=[],
        roles=[r for r in ROLES if r in nova["roles"]],
        # libvirtd (and qemu.conf) matter only to the libvirt driver
        libvirt="compute" in nova["roles"] and (not driver or driver.startswith("libvirt")),
        files=config_files(nova),
        databases=[db["name"]] if nova["dialect"] == "legacy"
        else [db["name"], db["api_name"], db["name"] + "_cell0"],
        secret_keys=list(SECRET_KEYS) + list(nova.get("secret_keys") or []),
    )
    return where


def sysctl_exists(key):
    """True when the running kernel has sysctl ``key`` (e.g. the bridge-nf
    keys only exist once br_netfilter is loaded)."""
    return os.path.exists(os.path.join("/proc/sys", *str(key).split(".")))


def schema():
    """The pillar reference: {"nova:<key>": description}."""
    return {f"nova:{k}": doc for k, (_, doc) in SCHEMA.items()}
