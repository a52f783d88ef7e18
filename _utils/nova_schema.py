"""The ``nova`` pillar's schema, as data: every key with its type and meaning
(``SCHEMA``), one small checker per type (``CHECKS``), and the few rules that
tie a key to a limit of a library Nova uses. ``docs/pillar.md`` is generated
from ``SCHEMA`` (``python3 tools/pillar_doc.py``); ``pillar.example``
and ``parameters/defaults.yaml`` are tested against it.

The checks that depend on what an engine accepts (database user and host
names, INI names and values, connection and credential keys) call the
engines' own rules, handed in as ``rules`` by ``nova_formula`` (a utility
module cannot reach another one), so the validator refuses exactly what an
engine would refuse later, before anything changes.

Messages name the key (``nova:database:port: ...``) and never quote a secret.
"""
import ipaddress
import re
from urllib.parse import urlsplit

ROLES = ("api", "scheduler", "conductor", "compute")
# pillar nova:config file name -> the plan's file id
FILES = {"nova.conf": "nova_conf", "api-paste.ini": "api_paste",
         "nova-compute.conf": "compute_conf"}

# key -> (type, description). A type ending in "?" also takes null; "map"
# and "config" keys take free-form sub-keys.
SCHEMA = {
    "release": ("release", "OpenStack release; picks the option dialect (legacy: havana, icehouse, juno; current: zed and later)"),
    "roles": ("roles", "list of api, scheduler, conductor, compute run on this minion; empty: none"),
    "my_ip": ("ip?", "[DEFAULT] my_ip; null: the first non-loopback IPv4 of the minion"),
    "secret_keys": ("strlist", "extra INI key names to mask in state output"),
    "version": ("version?", "version of every Nova package on this minion (e.g. Debian 2:26.2.2-1~deb12u5), installed exactly and held (Debian: apt-mark hold; RedHat: versionlock); latest: upgraded to the newest at each run, not held; null: the package manager's candidate once, not held"),
    "upgrade_levels:compute": ("str?", "[upgrade_levels] compute in nova.conf (the RPC pin: auto, or a release name); null: none. nova.orch.upgrade sets auto for the roll and lifts it after"),
    "upgrade:restart": ("strlist", "set by nova.orch.upgrade: the services nova.upgrade.restart restarts on this minion when they run older code or config than installed (conductor, scheduler, api, metadata, novncproxy, compute)"),
    "upgrade:disable": ("strlist", "set by nova.orch.upgrade: compute hosts nova.upgrade.computes disables (on the identity minion)"),
    "upgrade:enable": ("strlist", "set by nova.orch.upgrade: compute hosts nova.upgrade.computes enables (on the identity minion)"),
    "upgrade:timeout": ("posint", "seconds nova.orch.upgrade waits for every Nova service to report the newest service version, and for online data migrations"),
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
    "api:bind_host": ("ip", "address the Compute API listens on (0.0.0.0: every address)"),
    "api:port": ("port", "Compute API port it listens on, opened by the firewall (8774)"),
    "api:workers": ("posint?", "API worker processes; null: half the CPUs, at least 2 and at most 8 (puppet-nova's rule)"),
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
    "console:enabled": ("bool", "noVNC consoles: the proxy (nova-novncproxy) on API nodes, [vnc] on computes"),
    "console:proxy_host": ("ip", "address the noVNC proxy listens on (novncproxy_host)"),
    "console:proxy_port": ("port", "its port (novncproxy_port, 6080), opened by the firewall on API nodes"),
    "console:base_url": ("url", "novncproxy_base_url given to clients (computes): the proxy's public URL"),
    "console:server_listen": ("ip", "[vnc] server_listen on computes: where their VNC servers listen"),
    "metadata:enabled": ("bool", "the metadata API on API nodes (Debian: nova-api-metadata; RedHat: inside openstack-nova-api)"),
    "metadata:bind_host": ("ip", "address the metadata API listens on"),
    "metadata:port": ("port", "its port (8775), opened by the firewall on API nodes"),
    "metadata:workers": ("posint?", "its worker processes; null: as nova:api:workers"),
    "policy": ("policy", "API policy overrides written to policy.yaml on API nodes: <rule>: <check string>; a rule the installed Nova does not know is refused"),
    "aggregates": ("aggregates", "host aggregates on the identity minion: <name>: {availability_zone, hosts, metadata} (hosts not listed are removed from it), or null to remove the aggregate"),
    "maintenance:hosts": ("strlist", "computes (minion id = Nova host name) nova.orch.maintenance and nova.orch.remove_compute work on; give it on the command line (pillar=...)"),
    "maintenance:action": ("choice:drain,enable", "nova.orch.maintenance: drain (disable, move every server away) or enable (take servers again)"),
    "maintenance:reason": ("str?", "the disabled reason Nova keeps for a drain (e.g. a ticket); null: the formula's"),
    "maintenance:timeout": ("posint", "seconds a drain may take (Nova moves one server at a time per host)"),
    "maintenance:cold_migration": ("bool", "a server Nova refuses to live-migrate is cold-migrated (stopped for the move)"),
    "migration:enabled": ("bool", "migration trust on computes: the nova user's SSH key, authorized_keys and known_hosts built from the Salt mine (host-key checking on), sshd serving sftp"),
    "migration:transport": ("choice:ssh,tls", "libvirt live migration: ssh (qemu+ssh as the nova user) or tls (live_migration_with_native_tls; the libvirt certificates are the operator's)"),
    "migration:inbound_addr": ("host?", "[libvirt] live_migration_inbound_addr; null: my_ip"),
    "canary:enabled": ("bool", "new computes register disabled (enable_new_services = false on the control plane) and the rollout enables each one only after a test server booted on it"),
    "canary:flavor": ("str?", "flavor of the canary server (required when enabled)"),
    "canary:image": ("str?", "image of the canary server (required when enabled)"),
    "canary:timeout": ("posint", "seconds the canary server may take to become ACTIVE"),
    "canary:hosts": ("strlist", "computes the canary step works on (the orchestrate sets it)"),
    "firewall:vnc_ports": ("portrange", "VNC console ports opened on computes (8.2.6, 5900:5999)"),
    "firewall:api_port": ("port", "port opened on API nodes (8.2.6, 8774)"),
    "firewall:persist": ("bool", "restore the saved rules at boot (Debian: netfilter-persistent; RedHat: the iptables service)"),
    "sysctl": ("map", "kernel parameters set on computes with neutron (8.2.12.2)"),
    "libvirt:linuxbridge_qemu_conf": ("map", "qemu.conf lines written with the Linux Bridge plugin (8.2.12.4)"),
    "config": ("config", "raw overrides: <file>: <section>: <key>: value (null removes the key)"),
    "fleet:controllers": ("targets", "the controllers (api, scheduler, conductor): minion ids, or a compound target such as 'I@nova:roles:api'"),
    "fleet:computes": ("targets", "the computes: minion ids, or a compound target such as 'G@nova_role:compute' (a 500-compute fleet needs no id list)"),
    "fleet:conductors": ("targets", "the conductor hosts, as ids or a compound target (default: the controllers)"),
    "fleet:sync_conductor": ("minion?", "the one conductor that runs the DB sync (default: first conductor by id; required when the conductors are a target)"),
    "fleet:database": ("minion?", "minion that creates databases and grants (default: the sync conductor)"),
    "fleet:identity": ("minion?", "minion that creates Keystone records (default: the sync conductor)"),
    "fleet:batch": ("posint", "computes applied at once by orchestrate (one step per batch; a failed batch stops the rollout)"),
    "fleet:max_fail": ("count", "compute minions of a batch that may fail without stopping the rollout (0: none)"),
    "fleet:discover:attempts": ("posint", "host discovery tries while computes register"),
    "fleet:discover:interval": ("posint", "seconds between those tries"),
    "fleet:discover:expect": ("expect", "compute hosts that must be registered: a count, or their host names so a missing one is named (orchestrate passes fleet:computes)"),
    "manage:packages": ("bool", "install packages (false: left out of the run)"),
    "manage:database": ("bool", "create databases, users, grants"),
    "manage:identity": ("bool", "create Keystone records"),
    "manage:firewall": ("bool", "insert iptables rules"),
    "manage:sysctl": ("bool", "set kernel parameters"),
    "manage:libvirt": ("bool", "edit qemu.conf"),
    "manage:nova_network": ("bool", "remove nova-network when Networking is used"),
    "manage:db_sync": ("bool", "run nova-manage DB sync and cell setup"),
    "manage:services": ("bool", "start, enable and restart services"),
    "manage:discover": ("bool", "map new compute hosts to cells"),
    "manage:policy": ("bool", "write policy.yaml on API nodes (false: another tool owns it)"),
    "manage:aggregates": ("bool", "host aggregates and availability zones (the orchestrate runs them after discovery)"),
    "manage:migration": ("bool", "migration trust on computes (with migration:enabled)"),
    "clean:data": ("bool", "nova.clean also drops the databases, DB users and Keystone records (default false: data is kept)"),
    "lookup": ("map", "OS/release facts (package, service, file names): override only to port the formula"),
}

# Keystone's column limits (users/roles/services 255, projects and domains 64).
LENGTHS = {"identity:user": 255, "identity:project": 64, "identity:project_domain": 64,
           "identity:user_domain": 64, "identity:role": 255, "identity:service_role": 255,
           "identity:service:name": 255, "identity:service:type": 255}
# oslo.messaging's rabbit driver decodes the transport URL, then rebuilds
# kombu's URL with urllib's quote(), which leaves "/" raw: kombu then reads
# the rest of the password as a port and the services die quoting it. No
# encoding avoids that, so these values must not hold a "/".
NO_SLASH = ("messaging:user", "messaging:password")
# PyMySQL before 1.1 (Debian 12's 1.0.2, with Zed) sends the password as
# latin-1, while the server hashed the UTF-8 bytes: a non-ASCII database
# password then never logs in.
ASCII_ONLY = ("database:password",)
# Types whose values never reach an INI file as they are.
NOT_INI = ("config", "map", "dbadmin", "ksadmin", "policy", "aggregates")
V3_URLS = ("identity:auth_url", "placement:auth_url", "network:neutron:auth_url")
DB_NAME_MAX = 64  # MySQL identifier limit


def get(data, path):
    """``data[a][b]`` for ``path`` "a:b", or None when any level is missing."""
    for part in path.split(":"):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _refused(func, *args):
    """The error text of an engine rule, or None when it passes."""
    try:
        func(*args)
    except Exception as exc:  # noqa: BLE001 - the engines raise their own error types
        return str(exc)
    return None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool) or (
        isinstance(value, str) and value.strip().isdigit())


# ---------------------------------------------------------------- one checker per type
# Each takes (value, ctx) and returns a message or None; ctx holds the
# known releases and the engines' rules.

def _release(value, ctx):
    if str(value) not in ctx["releases"]:
        return f"unknown release {value!r} (known: {', '.join(ctx['releases'])})"
    return None


def _roles(value, ctx):
    if not isinstance(value, list):
        return "must be a list of roles"
    bad = [r for r in value if r not in ROLES]
    if bad:
        return f"unknown role(s) {', '.join(map(repr, bad))} (known: {', '.join(ROLES)})"
    return None


def _str(value, ctx):
    if not isinstance(value, str) or not value:
        return f"must be a non-empty string, got {value!r}"
    return None


def _dbname(value, ctx):
    return _str(value, ctx) or (None if re.fullmatch(r"[A-Za-z0-9_]{1,64}", value) else
                                f"database names use letters, digits and _, got {value!r}")


def _host(value, ctx):
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9._:\-\[\]%]+", value):
        return f"must be a host name or IP address, got {value!r}"
    return None


def _ip(value, ctx):
    try:
        ipaddress.ip_address(value if isinstance(value, str) else "")
    except ValueError:
        return f"must be an IP address (an oslo IPOpt), got {value!r}"
    return None


def _dbuser(value, ctx):
    if _refused(ctx["rules"]["db_user"], value):
        return f"must be 1-32 letters, digits, '_', '.', '$', '-' (openstack_db's rule), got {value!r}"
    return None


def _granthosts(value, ctx):
    if not isinstance(value, list) or not value:
        return "must be a non-empty list of host patterns (the DB user is created for each)"
    for host in value:
        if _refused(ctx["rules"]["db_host"], host):
            return f"invalid host pattern {host!r} (allowed: letters, digits, '.', '%', '_', ':', '/', '-')"
    return None


def _known_keys(value, known):
    if not isinstance(value, dict):
        return "must be a mapping"
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        return f"unknown key(s) {', '.join(unknown)} (known: {', '.join(known)})"
    return None


def _dbadmin(value, ctx):
    return _known_keys(value, ctx["rules"]["db_connection_keys"]())


def _ksadmin(value, ctx):
    return _known_keys(value, ctx["rules"]["auth_keys"]())


def _expect(value, ctx):
    if isinstance(value, list):
        if not all(isinstance(v, str) and v for v in value):
            return "must be a count or a list of compute host names"
    elif not _is_int(value) or int(value) < 0:
        return f"must be a count (>= 0) or a list of compute host names, got {value!r}"
    return None


def _secret(value, ctx):
    if not isinstance(value, str) or not value:
        return "must be a non-empty string (quote it in YAML)"
    return None


def _path(value, ctx):
    if not isinstance(value, str) or not value.startswith("/"):
        return f"must be an absolute path, got {value!r}"
    return None


def _bool(value, ctx):
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _version(value, ctx):
    if not isinstance(value, str) or not re.fullmatch(r"[0-9][0-9A-Za-z.+~:_-]*|latest", value):
        return f"must be a package version (e.g. 2:26.2.2-1~deb12u5) or latest, got {value!r}"
    return None


def _strlist(value, ctx):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return "must be a list of strings"
    return None


def _targets(value, ctx):
    if isinstance(value, str):
        return None if value.strip() else "must be a compound target or a list of minion ids"
    return _strlist(value, ctx) and "must be a list of minion ids or a compound target string"


def _minion(value, ctx):
    return None if isinstance(value, str) and value else "must be a minion id"


def _url(value, ctx):
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


def _urllist(value, ctx):
    if not isinstance(value, list):
        return "must be a list of URLs"
    return next(filter(None, (_url(item, ctx) for item in value)), None)


def _port(value, ctx):
    if not _is_int(value) or not 1 <= int(value) <= 65535:
        return f"port must be an integer 1-65535, got {value!r}"
    return None


def _portrange(value, ctx):
    parts = str(value).split(":")
    if len(parts) > 2 or any(_port(p, ctx) for p in parts):
        return f"must be a port or FIRST:LAST with ports 1-65535, got {value!r}"
    if len(parts) == 2 and int(parts[0]) > int(parts[1]):
        return f"first port is above the last, got {value!r}"
    return None


def _ratio(value, ctx):
    try:
        if isinstance(value, bool) or float(value) <= 0:
            raise ValueError
    except (TypeError, ValueError):
        return f"must be a number above 0, got {value!r}"
    return None


def _count(value, ctx):
    if not _is_int(value) or int(value) < 0:
        return f"must be an integer >= 0, got {value!r}"
    return None


def _posint(value, ctx):
    if not _is_int(value) or int(value) < 1:
        return f"must be an integer >= 1, got {value!r}"
    return None


def _map(value, ctx):
    return None if isinstance(value, dict) else "must be a mapping"


def _policy(value, ctx):
    if not isinstance(value, dict):
        return "must be a mapping of rule name -> check string"
    for name, rule in value.items():
        if not isinstance(name, str) or not name.strip() or "\n" in name:
            return f"rule names are non-empty one-line strings, got {name!r}"
        if not isinstance(rule, str) or "\n" in rule:
            return (f"the check string of {name!r} must be a one-line string "
                    f"(e.g. 'role:admin or role:reader'), got {rule!r}")
    return None


AGGREGATE_KEYS = ("availability_zone", "hosts", "metadata")


def _aggregates(value, ctx):
    if not isinstance(value, dict):
        return "must be a mapping of aggregate name -> {availability_zone, hosts, metadata}"
    for name, agg in value.items():
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            return f"aggregate names are non-empty strings of at most 255 characters, got {name!r}"
        if agg is None:
            continue  # to be removed
        err = _known_keys(agg, AGGREGATE_KEYS)
        if err:
            return f"{name}: {err}"
        zone = agg.get("availability_zone")
        if zone is not None and (not isinstance(zone, str) or not zone.strip()):
            return f"{name}: availability_zone must be a zone name or null, got {zone!r}"
        if _strlist(agg.get("hosts", []), ctx):
            return f"{name}: hosts must be a list of compute host names"
        meta = agg.get("metadata", {})
        if not isinstance(meta, dict) or "availability_zone" in meta or any(
                not isinstance(v, (str, int, float, bool)) and v is not None
                for v in meta.values()):
            return (f"{name}: metadata must map keys to strings, numbers or booleans "
                    "(the zone goes in availability_zone)")
    zones = {}
    for name, agg in value.items():
        for host in (agg or {}).get("hosts", []) if (agg or {}).get("availability_zone") else []:
            if zones.setdefault(host, agg["availability_zone"]) != agg["availability_zone"]:
                return (f"host {host!r} is in two availability zones ({zones[host]}, "
                        f"{agg['availability_zone']}): Nova allows one")
    return None


def _config(value, ctx):
    if not isinstance(value, dict):
        return "must be a mapping of file -> section -> key -> value"
    ini_name, ini_values = ctx["rules"]["ini_name"], ctx["rules"]["ini_values"]
    for fname, sections in value.items():
        if fname not in FILES:
            return f"unknown file {fname!r} (known: {', '.join(FILES)})"
        if not isinstance(sections, dict) or not all(
                isinstance(keys, dict) for keys in sections.values()):
            return f"{fname} must map section -> key -> value"
        for section, keys in sections.items():
            # the INI engine's own name and value rules; its messages never
            # quote a value (a raw override may hold a secret)
            for key, val in keys.items():
                err = (_refused(ini_name, fname, section, key)
                       or _refused(ini_values, fname, section, key, val))
                if err:
                    return err
            if not keys:
                err = _refused(ini_name, fname, section)
                if err:
                    return err
    return None


CHECKS = {
    "release": _release, "roles": _roles, "str": _str, "dbname": _dbname, "host": _host,
    "ip": _ip, "dbuser": _dbuser, "granthosts": _granthosts, "dbadmin": _dbadmin,
    "ksadmin": _ksadmin, "expect": _expect, "secret": _secret, "path": _path, "bool": _bool,
    "strlist": _strlist, "version": _version, "targets": _targets, "minion": _minion, "url": _url,
    "urllist": _urllist, "port": _port, "portrange": _portrange, "ratio": _ratio,
    "count": _count, "posint": _posint, "map": _map, "config": _config,
    "policy": _policy, "aggregates": _aggregates,
}


def _choice(kind):
    choices = kind[len("choice:"):].split(",")

    def check(value, ctx):
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"
    return check


def check_value(kind, value, ctx):
    """The message for ``value`` of type ``kind``, or None when it is valid."""
    if kind.endswith("?"):
        if value is None:
            return None
        kind = kind[:-1]
    if kind == "secret" and value is None:
        return None  # required or not: decided by what the minion runs
    checker = _choice(kind) if kind.startswith("choice:") else CHECKS[kind]
    return checker(value, ctx)


def _strings(value):
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _limits(key, value):
    """The limits some libraries put on a key's string value."""
    if not isinstance(value, str):
        return None
    if key in LENGTHS and len(value) > LENGTHS[key]:
        return f"at most {LENGTHS[key]} characters (Keystone's limit), got {len(value)}"
    if key in ASCII_ONLY and not value.isascii():
        return ("must be ASCII: PyMySQL before 1.1, which Nova uses on Zed, sends "
                "the password as latin-1, so a non-ASCII one never logs in")
    if key in NO_SLASH and "/" in value:
        return ("may not contain '/': oslo.messaging's rabbit driver re-quotes it raw "
                "into kombu's URL, which then cannot be parsed (every other character works)")
    return None


def unknown_keys(raw, prefix=""):
    """Pillar keys that are not in SCHEMA (typos), as 'a:b' paths."""
    out = []
    for key, value in raw.items():
        path = f"{prefix}{key}"
        kind = SCHEMA.get(path, (None,))[0]
        if kind in ("map", "config", "policy", "aggregates"):
            continue
        if kind is None:
            if isinstance(value, dict) and any(k.startswith(path + ":") for k in SCHEMA):
                out.extend(unknown_keys(value, path + ":"))
            else:
                out.append(path)
    return out


def check(nova, raw, releases, rules):
    """Every key of the merged map ``nova`` checked against its type (and the
    raw pillar ``raw`` for unknown keys): ["nova:<key>: <problem>", ...].
    ``rules``: the engines' rules, {db_user, db_host, db_connection_keys,
    auth_keys, ini_name, ini_values} (see nova_formula)."""
    if raw is not None and not isinstance(raw, dict):
        return ["nova: the pillar must be a mapping"]
    ctx = {"releases": [str(r) for r in releases or []], "rules": rules}
    errors = [f"nova:{k}: unknown key (see pillar.example)" for k in unknown_keys(raw or {})]
    for key, (kind, _) in SCHEMA.items():
        value = get(nova, key)
        err = check_value(kind, value, ctx)
        if not err and kind not in NOT_INI:
            # every string may reach an INI file (secrets too): the INI
            # engine's value rule, without quoting the value
            if any(_refused(rules["ini_values"], "", "", "", s) for s in _strings(value)):
                err = "must not contain a newline (it is written to an INI file)"
        err = err or _limits(key, value)
        if err:
            errors.append(f"nova:{key}: {err}")
    return errors


def schema():
    """The pillar reference: {"nova:<key>": description}."""
    return {f"nova:{k}": doc for k, (_, doc) in SCHEMA.items()}


def files():
    """{pillar nova:config file name: the plan's file id}."""
    return dict(FILES)


def reference():
    """[(key, type, description)] in schema order, for the generated docs."""
    return [(f"nova:{k}", kind, doc) for k, (kind, doc) in SCHEMA.items()]


def across_keys(nova, roles, where, me, rules):
    """The rules that tie keys together (release, roles, placement):
    ``roles`` this minion's, ``where`` its one-off jobs, ``rules`` the
    engines' and dialects' functions (nova_formula passes them in)."""
    errors = []
    if nova["dialect"] == "current":
        name = nova["database"]["name"]
        spare = len(rules["cell0_name"](name)) - len(name)
        if len(name) + spare > DB_NAME_MAX:
            errors.append(f"nova:database:name: at most {DB_NAME_MAX - spare} characters, so that "
                          f"its cell0 database ({rules['cell0_name']('<name>')}) fits "
                          f"MySQL's {DB_NAME_MAX}, got {len(name)}")
        for key in V3_URLS:
            if urlsplit(get(nova, key)).path.rstrip("/").endswith("/v2.0"):
                errors.append(f"nova:{key}: Identity v2.0 was removed from Keystone; release "
                              f"{nova['release']} needs the v3 (or unversioned) URL")
        if errors:
            return errors
    # Which secrets this minion needs depends on what it runs.
    neutron = nova["network"]["type"] == "neutron"
    needs = [
        ("database:password", "the database connection or the database minion",
         roles & set(nova["lookup"]["db_roles"]) or where["database"]),
        ("messaging:password", "every Nova service (RabbitMQ)", roles),
        ("identity:password", "the Keystone service user", roles or where["identity"]),
        ("placement:password", "[placement] on current releases",
         roles and nova["dialect"] == "current"),
        ("network:neutron:password", "[neutron] with OpenStack Networking", roles and neutron),
        ("network:neutron:metadata_secret", "the metadata proxy on API nodes",
         "api" in roles and neutron and nova["network"]["neutron"]["metadata_proxy"]),
    ]
    for key, why, needed in needs:
        if needed and get(nova, key) is None:
            errors.append(f"nova:{key}: required for {why} on this minion "
                          f"(roles: {', '.join(sorted(roles)) or 'none'}) but not set")
    if "api" in roles and nova["api"]["ssl"]["enabled"]:
        errors += [f"nova:api:ssl:{key}: required when nova:api:ssl:enabled is true"
                   for key in ("cert_file", "key_file") if not nova["api"]["ssl"][key]]
    if nova["dialect"] == "current" and nova["network"]["type"] == "nova-network":
        errors.append(f"nova:network:type: nova-network was removed from Nova; "
                      f"release {nova['release']} needs neutron")
    conductors = nova["fleet"]["conductors"] or nova["fleet"]["controllers"]
    if isinstance(conductors, str) and not nova["fleet"]["sync_conductor"]:
        errors.append(f"nova:fleet:sync_conductor: required when the conductors are a target "
                      f"({conductors!r}): name the one conductor that runs the DB sync")
    if where["sync_conductor"] == me and "conductor" not in roles:
        errors.append(f"nova:fleet:sync_conductor: names this minion ({me}) "
                      "but nova:roles has no conductor")
    if nova["canary"]["enabled"]:
        errors += [f"nova:canary:{key}: required when nova:canary:enabled is true"
                   for key in ("flavor", "image") if not nova["canary"][key]]
    errors += _loopback_cells(nova, where, me)
    return errors


def _is_loopback(host):
    try:
        return host == "localhost" or ipaddress.ip_address(str(host).strip("[]")).is_loopback
    except ValueError:
        return False


def _loopback_cells(nova, where, me):
    """The sync conductor stores its database URL in the cell mappings, which
    every API, scheduler and conductor host reads: a loopback address there
    sends the others to their own machine."""
    fleet = nova["fleet"]
    others = {m for role in ("controllers", "conductors")
              if isinstance(fleet[role], list) for m in fleet[role]} - {me}
    if not where["db_sync"] or not others or not _is_loopback(nova["database"]["host"]):
        return []
    return [f"nova:database:host: {nova['database']['host']} is written into the cell "
            f"mappings, which {', '.join(sorted(others))} read too: give the database "
            "server's address that every control-plane host reaches"]
