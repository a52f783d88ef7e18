"""The INI sections of Nova's config files, in the option dialect of the
release, and the URLs they hold.

- ``legacy``: the install guide's own names (Icehouse era): sql_connection,
  rabbit_*, api-paste.ini [filter:authtoken], network_api_class, Keystone v2.
- ``current``: Zed and later: transport_url, [database]/[api_database],
  [keystone_authtoken], [placement], [neutron], [glance].

``sections(nova, roles, my_ip)`` returns ``{file id: {section: {key: value}}}``
(a value of None removes the key). URLs are built here, in Python, with the
user and password percent-encoded (Jinja string concatenation breaks on
``@ : / % #``...).
"""
import re
from urllib.parse import quote

VIF_DRIVERS = {
    "generic": "nova.virt.libvirt.vif.LibvirtGenericVIFDriver",
    "ovs": "nova.virt.libvirt.vif.LibvirtHybridOVSBridgeDriver",
    "linuxbridge": "nova.virt.libvirt.vif.LibvirtGenericVIFDriver",
}
CELL0_SUFFIX = "_cell0"  # nova-manage's rule: cell0's database is <main name>_cell0


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


def cell0_name(name):
    """The cell0 database of main database ``name`` (nova-manage's rule)."""
    return name + CELL0_SUFFIX


def databases(nova):
    """The databases of the release: main (and, on current releases, API and cell0)."""
    db = nova["database"]
    if nova["dialect"] == "legacy":
        return [db["name"]]
    return [db["name"], db["api_name"], cell0_name(db["name"])]


# ---------------------------------------------------------------- sections

def _put(sections, section, **keys):
    sections.setdefault(section, {}).update(
        {k: v for k, v in keys.items() if v is not None})


def _absent(sections, section, *keys):
    sections.setdefault(section, {}).update({k: None for k in keys})


def _legacy(nova, roles, conf, paste):
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


def _current(nova, roles, conf, paste):
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
    # the service token Nova sends beside its users' tokens (OSSA-2023-003:
    # required by every release with that fix, Zed's point releases
    # included; `nova-status upgrade check` fails without it)
    _keystone_client(ks, "service_user", conf)
    _put(conf, "service_user", send_service_user_token=True)
    _keystone_client(nova["placement"], "placement", conf)
    if net["type"] == "neutron":
        _keystone_client(net["neutron"], "neutron", conf)
        if "api" in roles:
            _put(conf, "neutron", service_metadata_proxy=net["neutron"]["metadata_proxy"],
                 metadata_proxy_shared_secret=net["neutron"]["metadata_secret"])
    if nova["glance"]["api_servers"]:
        _put(conf, "glance", api_servers=",".join(nova["glance"]["api_servers"]))


DIALECTS = {"legacy": _legacy, "current": _current}
# where each dialect keeps the VNC console keys: section, then the names of
# "enabled", "server_listen" and "server_proxyclient_address"
CONSOLE_KEYS = {"legacy": ("DEFAULT", "vnc_enabled", "vncserver_listen",
                           "vncserver_proxyclient_address"),
                "current": ("vnc", "enabled", "server_listen", "server_proxyclient_address")}


def _console(nova, roles, conf):
    """[vnc] on computes (their VNC servers, the proxy's public URL); the
    proxy's own address on API nodes."""
    section, enabled, listen, proxyclient = CONSOLE_KEYS[nova["dialect"]]
    con = nova["console"]
    if "compute" in roles:
        _put(conf, section, **{enabled: con["enabled"]})
        if con["enabled"]:
            _put(conf, section, **{listen: con["server_listen"],
                                   proxyclient: conf["DEFAULT"]["my_ip"]},
                 novncproxy_base_url=con["base_url"])
    if "api" in roles and con["enabled"]:
        _put(conf, section, novncproxy_host=con["proxy_host"],
             novncproxy_port=int(con["proxy_port"]))


def _common(nova, roles, conf, compute):
    """What every release writes the same way."""
    if not roles & set(nova["lookup"]["db_roles"]):
        # Computes reach the database through the conductor: no URL, and a
        # leftover one (e.g. a packaged default) is removed.
        _absent(conf, "DEFAULT", "sql_connection")
        _absent(conf, "database", "connection")
        _absent(conf, "api_database", "connection")
    cpt = nova["compute"]
    if roles & {"compute", "scheduler"}:
        _put(conf, "DEFAULT", cpu_allocation_ratio=float(cpt["cpu_allocation_ratio"]),
             ram_allocation_ratio=float(cpt["ram_allocation_ratio"]))
    if "compute" in roles:
        _put(conf, "DEFAULT", reserved_host_memory_mb=int(cpt["reserved_host_memory_mb"]),
             reserved_host_disk_mb=int(cpt["reserved_host_disk_mb"]),
             compute_driver=cpt["driver"])
        if cpt["driver"]:
            # nova-compute reads nova-compute.conf after nova.conf.
            _put(compute, "DEFAULT", compute_driver=cpt["driver"])


def sections(nova, roles, my_ip, workers):
    """{file id: {section: {key: value}}} of this minion's files (before the
    raw overrides of nova:config). ``workers``: the API's worker count."""
    roles = set(roles)
    conf, paste, compute = {}, {}, {}
    _put(conf, "DEFAULT", my_ip=my_ip)
    DIALECTS[nova["dialect"]](nova, roles, conf, paste)
    _common(nova, roles, conf, compute)
    _console(nova, roles, conf)
    # the RPC pin: set for a rolling upgrade (nova.orch.upgrade), absent otherwise
    if nova["upgrade_levels"]["compute"] is None:
        _absent(conf, "upgrade_levels", "compute")
    else:
        _put(conf, "upgrade_levels", compute=str(nova["upgrade_levels"]["compute"]))
    if "api" in roles and nova["lookup"]["api_server"] == "eventlet":
        # Nova serves its APIs itself (RedHat): which, where and how wide, in nova.conf
        meta = nova["metadata"]
        _put(conf, "DEFAULT", osapi_compute_listen=nova["api"]["bind_host"],
             osapi_compute_listen_port=int(nova["api"]["port"]), osapi_compute_workers=workers,
             enabled_apis="osapi_compute,metadata" if meta["enabled"] else "osapi_compute")
        if meta["enabled"]:
            _put(conf, "DEFAULT", metadata_listen=meta["bind_host"],
                 metadata_listen_port=int(meta["port"]),
                 metadata_workers=int(meta["workers"] or workers))
    return {"nova_conf": conf, "api_paste": paste, "compute_conf": compute}


# Debian's init script asks "is any uwsgi_python3 running?" (Keystone's and
# Placement's count too); read nova-api's own pidfile instead. The file is
# sourced after /lib/lsb/init-functions, so this wins for `status`.
UWSGI_STATUS = """# Its status: its own pidfile, not any uwsgi process on the host.
status_of_proc () {
    if pidofproc -p "$PIDFILE" "$1" >/dev/null; then log_success_msg "$2 is running"; return 0; fi
    log_failure_msg "$2 is not running"
    return 3
}
"""


def _uwsgi_args(host, port, ini, workers, ssl):
    socket = f"--http-socket {host}:{int(port)}"
    if ssl["enabled"]:
        socket = f"--https-socket {host}:{int(port)},{ssl['cert_file']},{ssl['key_file']}"
    return f'DAEMON_ARGS="{socket} --ini {ini} --processes {int(workers)}"\n'


CONSOLE_DEFAULT = ("# Managed by the nova formula (nova:console): the console proxy the init\n"
                   "# scripts start (the serial proxy is not used).\n"
                   "NOVA_CONSOLE_PROXY_TYPE=novnc\nNOVA_SERIAL_PROXY_START=false\n")


def server_files(nova, roles, workers):
    """{file id: {"path", "contents", "service"}}: the shell files a Debian
    init script reads after building its arguments: where each uwsgi-served
    API (nova-api, nova-api-metadata) listens and how many workers it runs,
    and which console proxy nova-consoleproxy starts. Each is read by one
    service, which restarts when it changes."""
    look, api, meta = nova["lookup"], nova["api"], nova["metadata"]
    out = {}
    if "api" not in roles:
        return out
    uwsgi = look["api_server"] == "uwsgi"
    if uwsgi and look["api_server_file"]:
        out["api_server"] = {
            "path": look["api_server_file"], "service": "api",
            "contents": "# Managed by the nova formula (nova:api): where nova-api listens, how "
                        "many workers.\n" + _uwsgi_args(api["bind_host"], api["port"],
                                                       look["api_uwsgi_ini"], workers,
                                                       api["ssl"]) + UWSGI_STATUS}
    if uwsgi and meta["enabled"] and look["metadata_server_file"]:
        out["metadata_server"] = {
            "path": look["metadata_server_file"], "service": "metadata",
            "contents": "# Managed by the nova formula (nova:metadata): where the metadata API "
                        "listens, how many workers.\n" + _uwsgi_args(
                            meta["bind_host"], meta["port"], look["metadata_uwsgi_ini"],
                            meta["workers"] or workers, {"enabled": False}) + UWSGI_STATUS}
    if nova["console"]["enabled"] and look["console_default_file"]:
        out["console_default"] = {"path": look["console_default_file"],
                                  "service": "novncproxy", "contents": CONSOLE_DEFAULT}
    return out


def policy_file(nova, roles):
    """(path, contents) of policy.yaml on API nodes: the rules of nova:policy
    only (Nova's defaults for the rest), or None elsewhere."""
    if "api" not in roles or not nova["lookup"]["policy_file"]:
        return None
    lines = ["# Managed by the nova formula (nova:policy): the rules that differ from "
             "Nova's defaults."]
    lines += [f"{_yaml_str(name)}: {_yaml_str(rule)}"
              for name, rule in sorted(nova["policy"].items())]
    return nova["lookup"]["policy_file"], "\n".join(lines) + "\n"


def _yaml_str(text):
    """``text`` as a double-quoted YAML scalar (also valid JSON)."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def policy_rule_names(sample_text):
    """The rule names of a policy sample (oslopolicy-sample-generator's
    YAML, as Debian ships it): every default, commented out or not, and the
    deprecated names it lists."""
    return sorted(set(re.findall(r'^#? ?"([^"\n]+)":', sample_text, re.M)))
