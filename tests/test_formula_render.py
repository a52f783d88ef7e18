"""Render tests: the real ``salt-call --local state.show_sls`` of the formula,
with the grains of RHEL 7, Rocky 9 and Debian 12, for a legacy and a current
release and for all-in-one, controller-only and compute-only minions.

They read the rendered highstate data: which states exist, their order and
requisites, and the INI sections handed to the INI engine per file."""
import json
import os
from urllib.parse import quote, unquote, urlsplit

import pytest

from formula_support import (ALL_IN_ONE, drop_scratch_databases, CONTROLLER, DB_PASSWORD, GRAINS, SECRETS,
                             dumps, pillar, render, sandboxed)
from harness import REPO, load_module

PKG = {"RedHat": "openstack-nova-", "Debian": "nova-"}
CONSOLE = {"RedHat": "openstack-nova-novncproxy", "Debian": "nova-consoleproxy"}
METADATA = {"RedHat": (), "Debian": ("metadata",)}  # RedHat: inside openstack-nova-api
IPTABLES = {"RedHat": "/etc/sysconfig/iptables", "Debian": "/etc/iptables/rules.v4"}


@pytest.fixture
def minion(make_salt_call):
    def make(platform="debian12", minion_id="ctl1"):
        return make_salt_call(minion_id=minion_id, grains=GRAINS[platform])
    return make


def running(states):
    """The service.running states, in order; each has its service.enabled twin."""
    found = [s for s in states if s.startswith("nova-service-") and not s.endswith("-enabled")]
    for sid in found:
        fun, args = states[sid + "-enabled"]
        assert fun == "service.enabled" and args["require"] == [sid], sid
        assert "enable" not in states[sid][1], sid  # "already enabled" would hide a start
    return found


def ini(states, fid="nova_conf"):
    return states[f"nova-config-{fid}"][1]["sections"]


def test_static_grains_override_the_platform(minion):
    sc = minion("rhel7")
    code, data, _ = sc.run("grains.item", "os_family", "os", "osmajorrelease")
    assert code == 0
    assert data == {"os_family": "RedHat", "os": "RedHat", "osmajorrelease": 7}


@pytest.mark.parametrize("platform", sorted(GRAINS))
@pytest.mark.parametrize("release", ["icehouse", "zed"])
def test_all_in_one(minion, platform, release):
    sc = minion(platform)
    family = GRAINS[platform]["os_family"]
    states = render(sc, pillar(release))
    legacy = release == "icehouse"

    # 8.2.1 packages named per OS family
    fun, args = states["nova-packages"]
    assert fun == "pkg.installed"
    # the guide's four, and the console proxy (API nodes)
    assert args["pkgs"] == [PKG[family] + r for r in ALL_IN_ONE] + [CONSOLE[family]]

    conf = ini(states)
    d = conf["DEFAULT"]
    # 8.2.10 / 8.2.11 guide defaults
    assert (d["cpu_allocation_ratio"], d["ram_allocation_ratio"]) == (16.0, 1.5)
    assert (d["reserved_host_memory_mb"], d["reserved_host_disk_mb"]) == (512, 0)
    assert d["my_ip"] == "10.1.2.3"
    # mode and owner first, in a state of their own (a mode fix restarts nothing)
    args = states["nova-config-nova_conf-permissions"][1]
    assert (args["mode"], args["user"], args["group"]) == ("0640", "root", "nova")
    assert states["nova-config-nova_conf"][1]["name"] == args["name"] == "/etc/nova/nova.conf"
    assert states["nova-config-nova_conf"][1]["require"] == ["nova-config-nova_conf-permissions"]

    if legacy:
        # 8.2.3 / 8.2.5 / 8.2.8 / 8.2.12 in the guide's own names
        assert d["sql_connection"].startswith("mysql://nova:")
        assert (d["rpc_backend"], d["rabbit_host"], d["rabbit_port"]) == \
            ("rabbit", "mq.example.org", 5672)
        assert (d["rabbit_userid"], d["rabbit_virtual_host"]) == ("nova", "/")
        assert d["rabbit_password"] == SECRETS["messaging"]
        assert d["auth_strategy"] == "keystone"
        assert d["network_api_class"] == "nova.network.neutronv2.api.API"
        assert d["security_group_api"] == "neutron"
        assert d["firewall_driver"] == "nova.virt.firewall.NoopFirewallDriver"
        assert d["tcp_keepidle"] == 600
        assert conf["neutron"]["url"] == "http://controller:9696/"
        assert conf["neutron"]["admin_auth_url"] == "http://controller:35357/v2.0"
        assert conf["neutron"]["admin_tenant_name"] == "services"
        assert conf["neutron"]["metadata_proxy_shared_secret"] == SECRETS["metadata"]
        assert conf["neutron"]["service_metadata_proxy"] is True
        assert conf["libvirt"]["vif_driver"] == "nova.virt.libvirt.vif.LibvirtGenericVIFDriver"
        paste = ini(states, "api_paste")["filter:authtoken"]
        assert paste == {"auth_host": "controller", "admin_tenant_name": "services",
                         "admin_user": "compute", "admin_password": SECRETS["identity"]}
        assert "transport_url" not in d and "database" not in conf
        assert ["nova-db-sync"] == [s for s in states if "sync" in s]
        assert states["nova-network-dead"][0] == "service.dead"
        assert states["nova-keystone-endpoints"][1]["public"] == \
            "http://controller:8774/v2/%(tenant_id)s"
        assert states["nova-keystone-user"][1]["name"] == "compute"
    else:
        assert conf["database"]["connection"].startswith("mysql+pymysql://nova:")
        assert conf["database"]["connection"].endswith("@db.example.org:3306/nova")
        assert conf["api_database"]["connection"].endswith("@db.example.org:3306/nova_api")
        assert d["transport_url"].startswith("rabbit://nova:")
        assert conf["api"]["auth_strategy"] == "keystone"
        assert conf["wsgi"]["tcp_keepidle"] == 600
        ks = conf["keystone_authtoken"]
        assert (ks["auth_type"], ks["username"], ks["project_name"]) == \
            ("password", "nova", "service")
        assert ks["password"] == SECRETS["identity"]
        assert conf["placement"]["username"] == "placement"
        assert conf["placement"]["password"] == SECRETS["placement"]
        assert conf["neutron"]["metadata_proxy_shared_secret"] == SECRETS["metadata"]
        assert "sql_connection" not in d and "rabbit_host" not in d
        assert "network_api_class" not in d and "api_paste" not in [
            s[len("nova-config-"):] for s in states if s.startswith("nova-config-")]
        assert [s for s in states if s.endswith("sync") or s.startswith("nova-cell")] == [
            "nova-api-db-sync", "nova-cell0-mapped", "nova-cell1-present", "nova-db-sync"]
        assert states["nova-cell1-present"][1]["name"] == "cell1"
        assert "nova-network-dead" not in states
        assert states["nova-discover-hosts"][0] == "nova_manage.hosts_discovered"
        assert {"sls": "nova.service"} in states["nova-discover-hosts"][1]["require"]
        assert states["nova-db-nova_cell0"][0] == "openstack_db.database_present"
        # consoles: the proxy's address on this API node, [vnc] of its compute
        vnc = conf["vnc"]
        assert (vnc["enabled"], vnc["server_listen"], vnc["server_proxyclient_address"]) == \
            (True, "0.0.0.0", "10.1.2.3")
        assert (vnc["novncproxy_host"], vnc["novncproxy_port"]) == ("0.0.0.0", 6080)
        assert vnc["novncproxy_base_url"] == "http://controller:6080/vnc_auto.html"
        # the metadata API: inside nova-api (RedHat) or a uwsgi daemon of its own
        if family == "RedHat":
            assert (d["enabled_apis"], d["metadata_listen"], d["metadata_listen_port"]) == \
                ("osapi_compute,metadata", "0.0.0.0", 8775)
            assert "nova-config-metadata_server" not in states
        else:
            meta = states["nova-config-metadata_server"][1]
            assert meta["name"] == "/etc/default/nova-api-metadata"
            assert '--http-socket 0.0.0.0:8775 --ini /etc/nova/nova-api-metadata-uwsgi.ini' \
                in meta["contents"]
            assert "nova-config-metadata_server" in states["nova-service-metadata"][1]["watch"]
            assert states["nova-config-console_default"][1]["contents"].count(
                "NOVA_CONSOLE_PROXY_TYPE=novnc") == 1
        # policy.yaml: only the rules given (none here), names checked first
        assert states["nova-policy-file"][1]["contents"].count("\n") == 1
        assert states["nova-policy-rules-known"][1]["prereq"] == ["nova-policy-file"]

    # 8.2.6 firewall: both ports, first in the chain, saved where the OS keeps them
    for sid, port in (("nova-firewall-vnc", "5900:5999"), ("nova-firewall-api", "8774")):
        fun, args = states[sid]
        assert fun == "iptables.insert"
        assert (args["dports"], args["position"], args["jump"]) == (port, 1, "ACCEPT")
        assert args["save"] == IPTABLES[family]
    # 8.2.12.2 sysctl keys of the guide
    assert {s for s in states if s.startswith("nova-sysctl-")} == {
        "nova-sysctl-net.ipv4.conf.all.rp_filter", "nova-sysctl-net.ipv4.conf.default.rp_filter",
        "nova-sysctl-net.bridge.bridge-nf-call-arptables",
        "nova-sysctl-net.bridge.bridge-nf-call-iptables",
        "nova-sysctl-net.bridge.bridge-nf-call-ip6tables"}
    # 8.2.14 services in the guide's order, after the DB sync
    # (beside the API: the metadata API, a daemon of its own on Debian, and
    # the console proxy)
    services = running(states)
    assert services == ["nova-service-" + s for s in
                        ("messagebus", "libvirt", "api") + METADATA[family] + (
                            "novncproxy", "scheduler", "conductor", "compute")]
    assert states["nova-service-api"][1]["name"] == PKG[family] + "api"
    assert {"sls": "nova.db_sync"} in states["nova-service-conductor"][1]["require"]
    assert states["nova-service-scheduler"][1]["require"][1] == "nova-service-novncproxy"
    # 8.2.2 / 8.2.4 one-off jobs: this lone conductor owns them
    assert states["nova-db-user-%"][1]["password"] == DB_PASSWORD
    assert states["nova-keystone-role-grant"][1]["name"] == "admin"


def _assert_no_db_url(states):
    text = dumps(states)
    assert "mysql" not in text
    for form in (DB_PASSWORD, json.dumps(DB_PASSWORD)[1:-1], "d%40b"):
        assert form not in text


@pytest.mark.parametrize("platform,release", [("debian12", "zed"), ("rhel7", "icehouse"),
                                              ("rocky9", "2024.1")])
def test_compute_only_holds_no_database_url(minion, platform, release):
    sc = minion(platform, minion_id="cmp1")
    fleet = {"fleet": {"controllers": ["ctl1"], "computes": ["cmp1"]}}
    states = render(sc, pillar(release, ["compute"], **fleet))
    _assert_no_db_url(states)
    conf = ini(states)
    # a packaged or leftover URL is removed, never written
    assert conf["DEFAULT"]["sql_connection"] is None
    assert conf["database"]["connection"] is None
    assert conf["api_database"]["connection"] is None
    assert not [s for s in states if "sync" in s or s.startswith(("nova-db", "nova-keystone"))]
    assert "nova-discover-hosts" not in states
    assert running(states) == [
        "nova-service-messagebus", "nova-service-libvirt", "nova-service-compute"]
    assert "nova-firewall-api" not in states and "nova-firewall-vnc" in states
    assert states["nova-packages"][1]["pkgs"] == [PKG[GRAINS[platform]["os_family"]] + "compute"]


def test_compute_only_needs_no_database_password(minion):
    sc = minion("debian12", minion_id="cmp1")
    data = pillar("zed", ["compute"], fleet={"controllers": ["ctl1"]},
                  lookup={"services": {"messagebus": None}})
    del data["nova"]["database"]["password"]
    states = render(sc, data)
    assert states["nova-pillar-valid"][0] == "test.succeed_without_changes"
    _assert_no_db_url(states)
    # a service the OS lacks (lookup name null) is not managed
    assert running(states) == [
        "nova-service-libvirt", "nova-service-compute"]


def test_controller_only(minion):
    states = render(minion("rocky9"), pillar("zed", CONTROLLER))
    assert "nova-service-compute" not in states and "nova-service-libvirt" not in states
    assert not [s for s in states if s.startswith("nova-sysctl-")]
    assert "nova-firewall-vnc" not in states and "nova-firewall-api" in states
    conf = ini(states)
    assert conf["database"]["connection"].startswith("mysql+pymysql://")
    assert "reserved_host_memory_mb" not in conf["DEFAULT"]
    assert conf["DEFAULT"]["cpu_allocation_ratio"] == 16.0  # the scheduler reads it
    assert "nova-db-sync" in states


def test_passwords_are_url_encoded_and_round_trip(minion):
    states = render(minion(), pillar("zed"))
    conf = ini(states)
    for url, user, password, host in (
            (conf["database"]["connection"], "nova", SECRETS["database"], "db.example.org"),
            (conf["DEFAULT"]["transport_url"], "nova", SECRETS["messaging"], "mq.example.org")):
        parts = urlsplit(url)
        assert (unquote(parts.username), unquote(parts.password)) == (user, password)
        assert parts.hostname == host
    legacy = ini(render(minion(), pillar("juno")))
    parts = urlsplit(legacy["DEFAULT"]["sql_connection"])
    assert unquote(parts.password) == SECRETS["database"] and parts.path == "/nova"


def test_vhost_and_query_in_urls(minion):
    states = render(minion(), pillar("zed", messaging={"virtual_host": "open/stack"},
                                     database={"query": {"charset": "utf8"}}))
    conf = ini(states)
    assert conf["DEFAULT"]["transport_url"].endswith("@mq.example.org:5672/open%2Fstack")
    assert conf["database"]["connection"].endswith("/nova?charset=utf8")


def test_debian_placeholders_are_set_and_compute_driver_in_both_files(minion):
    states = render(minion("debian12"), pillar("zed", compute={"driver": "fake.FakeDriver"}))
    conf = ini(states)
    assert conf["DEFAULT"]["my_ip"] == "10.1.2.3"
    assert conf["placement"]["username"] == "placement"
    assert conf["DEFAULT"]["compute_driver"] == "fake.FakeDriver"
    compute = states["nova-config-compute_conf"][1]
    assert compute["name"] == "/etc/nova/nova-compute.conf"
    assert compute["sections"] == {"DEFAULT": {"compute_driver": "fake.FakeDriver"}}
    perms = states["nova-config-compute_conf-permissions"][1]
    assert (perms["mode"], perms["group"]) == ("0640", "nova")
    # nova-compute reads both files; the other services only nova.conf; each
    # runs Nova's packages (a new version restarts it)
    assert states["nova-service-compute"][1]["watch"] == [
        "nova-config-nova_conf", "nova-config-compute_conf", "nova-packages"]
    assert states["nova-service-conductor"][1]["watch"] == ["nova-config-nova_conf",
                                                            "nova-packages"]
    # the fake driver needs no libvirtd
    assert "nova-service-libvirt" not in states
    assert states["nova-service-compute"][1]["require"][1] == "nova-service-conductor"
    # RDO ships no nova-compute.conf: nothing to manage there
    rhel = render(minion("rocky9"), pillar("zed", compute={"driver": "fake.FakeDriver"}))
    assert "nova-config-compute_conf" not in rhel
    assert rhel["nova-service-compute"][1]["watch"] == ["nova-config-nova_conf", "nova-packages"]


@pytest.mark.parametrize("plugin,driver", [
    ("generic", "LibvirtGenericVIFDriver"), ("ovs", "LibvirtHybridOVSBridgeDriver"),
    ("linuxbridge", "LibvirtGenericVIFDriver")])
def test_vif_driver_and_qemu_conf_follow_the_plugin(minion, plugin, driver):
    states = render(minion("rhel7"), pillar("icehouse", network={"plugin": plugin}))
    assert ini(states)["libvirt"]["vif_driver"] == "nova.virt.libvirt.vif." + driver
    qemu = {s: a for s, (f, a) in states.items() if s.startswith("nova-libvirt-qemu-")}
    if plugin != "linuxbridge":
        assert not qemu
        return
    assert {a["repl"] for a in qemu.values()} == {
        'user = "root"', 'group = "root"',
        'cgroup_device_acl = ["/dev/null", "/dev/full", "/dev/zero", "/dev/random", '
        '"/dev/urandom", "/dev/ptmx", "/dev/kvm", "/dev/kqemu", "/dev/rtc", "/dev/hpet", '
        '"/dev/net/tun"]'}
    assert all(a["name"] == "/etc/libvirt/qemu.conf" for a in qemu.values())
    assert states["nova-service-libvirt"][1]["watch"] == [{"sls": "nova.libvirt"}]


def test_console_and_metadata_switched_off(minion):
    """console:enabled and metadata:enabled false: no proxy package, service
    or port; computes get [vnc] enabled = false; on Debian the metadata
    daemon the nova-api package ships is stopped and kept from booting."""
    off = {"console": {"enabled": False}, "metadata": {"enabled": False}}
    deb = render(minion("debian12"), pillar("zed", **off))
    assert deb["nova-packages"][1]["pkgs"] == ["nova-" + r for r in ALL_IN_ONE]
    assert "nova-service-novncproxy" not in deb and "nova-service-metadata" not in deb
    assert not {"nova-firewall-console", "nova-firewall-metadata"} & set(deb)
    assert not {"nova-config-metadata_server", "nova-config-console_default"} & set(deb)
    assert ini(deb)["vnc"] == {"enabled": False}
    assert deb["nova-service-metadata-dead"][0] == "service.dead"
    assert "--pidfile /run/nova/nova-api-metadata.pid" in deb["nova-service-metadata-dead"][1][
        "onlyif"]
    fun, args = deb["nova-service-metadata-disabled"]
    assert (fun, args["name"], args["require"]) == (
        "service.disabled", "nova-api-metadata", ["nova-service-metadata-dead"])
    rh = render(minion("rocky9"), pillar("zed", **off))
    assert ini(rh)["DEFAULT"]["enabled_apis"] == "osapi_compute"
    assert "metadata_listen" not in ini(rh)["DEFAULT"]
    assert "nova-service-metadata-dead" not in rh  # nothing of its own to stop


def test_raw_overrides_win_and_can_remove(minion):
    states = render(minion(), pillar("zed", config={
        "nova.conf": {"DEFAULT": {"debug": True, "cpu_allocation_ratio": 4.0},
                      "vnc": {"enabled": False, "novncproxy_base_url": None}},
        "api-paste.ini": {"composite:osapi_compute": {"/v2.1": "oscomputeversion_v2"}}},
        secret_keys=["novncproxy_base_url"]))
    conf = ini(states)
    assert conf["DEFAULT"]["debug"] is True and conf["DEFAULT"]["cpu_allocation_ratio"] == 4.0
    assert conf["vnc"]["enabled"] is False and conf["vnc"]["novncproxy_base_url"] is None
    assert ini(states, "api_paste") == {"composite:osapi_compute": {"/v2.1": "oscomputeversion_v2"}}
    assert "novncproxy_base_url" in states["nova-config-nova_conf"][1]["secret_keys"]
    # api reads api-paste.ini, so it now watches it
    assert "nova-config-api_paste" in states["nova-service-api"][1]["watch"]


def test_api_ssl_options(minion):
    ssl = {"enabled": True, "ca_file": "/etc/pki/ca.pem", "cert_file": "/etc/pki/c.pem",
           "key_file": "/etc/pki/k.pem"}
    legacy = ini(render(minion(), pillar("icehouse", api={"ssl": ssl, "tcp_keepidle": 300},
                                        messaging={"ssl": {"enabled": True,
                                                           "ca_file": "/etc/pki/mq.pem"}})))
    assert legacy["DEFAULT"]["enabled_ssl_apis"] == "osapi_compute"
    assert legacy["DEFAULT"]["ssl_cert_file"] == "/etc/pki/c.pem"
    assert legacy["DEFAULT"]["tcp_keepidle"] == 300
    assert legacy["DEFAULT"]["rabbit_use_ssl"] is True
    assert legacy["DEFAULT"]["kombu_ssl_ca_certs"] == "/etc/pki/mq.pem"
    states = render(minion(), pillar("zed", api={"ssl": ssl}, messaging={"ssl": {"enabled": True}},
                                     sysctl={"net.bridge.bridge-nf-call-nonexistent": 1}))
    current = ini(states)
    assert current["wsgi"]["ssl_key_file"] == "/etc/pki/k.pem"
    assert current["oslo_messaging_rabbit"] == {"ssl": True}
    # a sysctl key the kernel lacks: a clear failure for that key, no crash
    fun, args = states["nova-sysctl-net.bridge.bridge-nf-call-nonexistent"]
    assert fun == "test.fail_without_changes"
    assert "no net.bridge.bridge-nf-call-nonexistent" in args["comment"]
    assert "br_netfilter" in args["comment"]
    assert states["nova-sysctl-net.ipv4.conf.all.rp_filter"][0] == "sysctl.present"


def test_one_sync_conductor_chosen_from_pillar(minion):
    fleet = {"controllers": ["ctl2", "ctl1"], "computes": ["cmp1"]}
    first = render(minion(minion_id="ctl1"), pillar("zed", CONTROLLER, fleet=fleet))
    other = render(minion(minion_id="ctl2"), pillar("zed", CONTROLLER, fleet=fleet))
    assert "nova-db-sync" in first and "nova-db-nova" in first and "nova-keystone-user" in first
    assert "nova-discover-hosts" in first
    for sid in ("nova-db-sync", "nova-api-db-sync", "nova-db-nova", "nova-keystone-user",
                "nova-discover-hosts"):
        assert sid not in other
    assert {"sls": "nova.db_sync"} not in other["nova-service-api"][1]["require"]
    # named explicitly, and DB / Keystone jobs moved to other minions
    named = dict(fleet, sync_conductor="ctl2", database="db1", identity="ks1")
    ctl2 = render(minion(minion_id="ctl2"), pillar("zed", CONTROLLER, fleet=named))
    assert "nova-db-sync" in ctl2 and "nova-db-nova" not in ctl2 and "nova-keystone-user" not in ctl2
    db1 = render(minion(minion_id="db1"), pillar("zed", [], fleet=named))
    assert [s for s in db1 if s.startswith("nova-db-")][:3] == [
        "nova-db-nova", "nova-db-nova_api", "nova-db-nova_cell0"]
    assert not [s for s in db1 if s.startswith(("nova-config", "nova-service", "nova-keystone"))]


MANAGE = ("packages", "database", "identity", "firewall", "sysctl", "libvirt", "nova_network",
          "db_sync", "services", "discover", "policy")


def test_manage_flags_leave_concerns_out(minion):
    """A concern switched off is not in the run at all (no stand-in state that
    would report it as done), what remains needs nothing of it, and the
    validation state says what was left out."""
    real = render(minion(), pillar("zed"))
    left = render(minion(), pillar("zed", manage={k: False for k in MANAGE}))
    heavy = [s for s in real if not s.startswith(("nova-config-", "nova-pillar"))]
    assert heavy
    assert not set(heavy) & set(left), set(heavy) & set(left)
    assert sorted(left) == sorted(s for s in real if s not in heavy)
    assert all(fun != "test.succeed_without_changes" for sid, (fun, _) in left.items()
               if sid != "nova-pillar-valid")
    for sid, (_, args) in left.items():
        for req in (args.get("require") or []) + (args.get("watch") or []):
            assert req in left or req == {"sls": "nova.config"}, (sid, req)
    comment = left["nova-pillar-valid"][1]["comment"]
    assert comment.endswith("; left out by nova:manage: database, identity, packages, policy, "
                            "firewall, sysctl, db_sync, service, discover"), comment
    assert left["nova-config-nova_conf"][0] == "openstack_ini.options_present"
    assert "left out" not in real["nova-pillar-valid"][1]["comment"]
    # one concern off: only its states go, and only its requisites drop
    no_db = render(minion(), pillar("zed", manage={"db_sync": False}))
    assert sorted(no_db) == sorted(s for s in real if s not in (
        "nova-api-db-sync", "nova-cell0-mapped", "nova-cell1-present", "nova-db-sync"))
    assert {"sls": "nova.db_sync"} not in no_db["nova-service-conductor"][1]["require"]
    assert no_db["nova-discover-hosts"][1]["require"] == [{"sls": "nova.service"}]


def test_orchestrate_renders_targets_from_pillar(minion):
    sc = minion()
    fleet = {"controllers": ["ctl-b", "ctl-a"], "computes": ["cmp1", "cmp2", "cmp3"],
             "batch": 2, "database": "db1"}
    states = render(sc, pillar("zed", [], fleet=fleet), sls="nova.orch.deploy")
    order = ["nova-orch-sync-modules", "nova-orch-database",
             "nova-orch-sync-node", "nova-orch-controllers", "nova-orch-computes-1",
             "nova-orch-computes-2", "nova-orch-discover",
             # three computes: they trust each other once all have run
             "nova-orch-migration-trust"]
    assert list(states) == order + ["nova-orch-report"]
    assert states["nova-orch-report"][1]["require"] == ["nova-orch-migration-trust"]
    for before, after in zip(order, order[1:]):
        assert states[after][1]["require"] == [before], (after, states[after][1]["require"])
        assert states[after][1]["failhard"] is True
    # batches of 2, each a step: a failed one stops the rollout there
    assert states["nova-orch-computes-1"][1]["tgt"] == ["cmp1", "cmp2"]
    assert states["nova-orch-computes-2"][1]["tgt"] == ["cmp3"]
    assert states["nova-orch-computes-1"][1]["allow_fail"] == 0
    assert states["nova-orch-sync-modules"][1]["name"] == "saltutil.sync_all"
    assert sorted(states["nova-orch-sync-modules"][1]["tgt"]) == [
        "cmp1", "cmp2", "cmp3", "ctl-a", "ctl-b", "db1"]
    assert states["nova-orch-database"][1]["tgt"] == "db1"
    # the Keystone records are the sync conductor's (ctl-a): its own run makes them
    assert "nova-orch-identity" not in states
    # the sync conductor's own run does the DB sync, before its services
    assert states["nova-orch-sync-node"][1]["tgt"] == "ctl-a"
    assert states["nova-orch-sync-node"][1]["sls"] == "nova"
    assert states["nova-orch-controllers"][1]["tgt"] == ["ctl-b"]
    assert states["nova-orch-discover"][1]["pillar"] == {
        "nova": {"fleet": {"discover": {"expect": 3}}}}


def test_orchestrate_gives_conductors_that_are_not_controllers_their_run(minion):
    fleet = {"controllers": ["ctl1"], "conductors": ["cond2", "cond1"],
             "computes": ["cmp1", "cmp2"]}
    states = render(minion(), pillar("zed", [], fleet=fleet), sls="nova.orch.deploy")
    assert states["nova-orch-sync-node"][1]["tgt"] == "cond1"  # first conductor by id
    assert states["nova-orch-controllers"][1]["tgt"] == ["cond2", "ctl1"]
    assert sorted(states["nova-orch-sync-modules"][1]["tgt"]) == [
        "cmp1", "cmp2", "cond1", "cond2", "ctl1"]


def test_one_rule_picks_the_sync_conductor_for_minions_and_orchestrate():
    """The minions' plan (nova_formula.sync_conductor) and the orchestrate's
    targets ask the same function, so they never disagree; conductors given
    as a target need sync_conductor named, on both sides."""
    plan = load_module("utils", "nova_plan")
    formula = load_module("modules", "nova_formula")
    for fleet, want in (
            ({"controllers": ["ctl-b", "ctl-a"], "computes": ["c1"]}, "ctl-a"),
            ({"controllers": ["ctl1"], "conductors": ["cond2", "cond1"], "computes": ["c1"]},
             "cond1"),
            ({"controllers": ["ctl1"], "sync_conductor": "ctl9", "computes": ["c1"]}, "ctl9"),
            ({"conductors": "G@role:conductor", "computes": ["c1"]}, None)):
        assert formula.sync_conductor(fleet) == want, fleet
        to = plan.fleet_targets(fleet, {"conductors": ["cond1", "cond2"]})
        assert to["sync"] == want, fleet
        assert bool(to["errors"]) is (want is None), to["errors"]
    to = plan.fleet_targets({"conductors": "G@role:conductor", "sync_conductor": "cond2",
                             "computes": ["c1"]}, {"conductors": ["cond1", "cond2"]})
    assert to["sync"] == "cond2" and not to["errors"]


def test_orchestrate_targets_a_fleet_by_compound_expression(minion):
    """500 computes need no id list: the orchestrate targets the expression,
    and the master counts its minions for host discovery (proven on a real
    master by the fleet tests); a minion cannot match it and says so."""
    plan = load_module("utils", "nova_plan")
    fleet = {"controllers": ["ctl1"], "computes": "I@nova:roles:compute and cmp*"}
    to = plan.fleet_targets(fleet, {"computes": ["cmp1", "cmp2", "cmp3"]})
    assert to["errors"] == [] and to["compute_ids"] == ["cmp1", "cmp2", "cmp3"]
    assert to["batches"] == [["cmp1"], ["cmp2"], ["cmp3"]]  # the matched minions, in batches
    assert to["computes"] == {"tgt": "( I@nova:roles:compute and cmp* )", "tgt_type": "compound"}
    assert to["everyone"] == {"tgt": "L@ctl1 or ( I@nova:roles:compute and cmp* )",
                              "tgt_type": "compound"}
    assert plan.fleet_targets(fleet, {"computes": []})["errors"]  # matches nothing: said
    states = render(minion(), pillar("zed", [], fleet=fleet), sls="nova.orch.deploy")
    assert list(states) == ["nova-orch-fleet"]
    assert "matched on the master" in states["nova-orch-fleet"][1]["comment"]


def test_orchestrate_without_fleet_fails_clearly(minion):
    states = render(minion(), pillar("zed", []), sls="nova.orch.deploy")
    assert list(states) == ["nova-orch-fleet"]
    assert states["nova-orch-fleet"][0] == "test.fail_without_changes"


# ------------------------------------------------------------ applying

NOVA_CONF = ("[DEFAULT]\n# The IP address of this host\n#my_ip = <host_ipv4>\nmy_ip = 192.0.2.2\n"
             "\n[database]\n#connection = <None>\n\n[placement]\nusername =\n")


@pytest.fixture
def aio_files(tmp_path):
    files = {"nova_conf": tmp_path / "nova.conf", "api_paste": tmp_path / "api-paste.ini",
             "compute_conf": tmp_path / "nova-compute.conf"}
    files["nova_conf"].write_text(NOVA_CONF)
    files["api_paste"].write_text("[filter:authtoken]\npaste.filter_factory = x:y\n")
    files["compute_conf"].write_text("[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n")
    return files


@pytest.fixture
def scratch_db():
    import uuid

    prefix = "novafr_" + uuid.uuid4().hex[:6]
    yield prefix
    drop_scratch_databases(prefix)


def test_apply_all_in_one_converges_then_changes_nothing(minion, aio_files, scratch_db):
    """state.apply nova for real: databases in the local MariaDB and the INI
    engine on copies of the config files; the heavy OpenStack states stubbed."""
    import stat
    sc = minion("debian12")
    stub = {k: False for k in ("packages", "identity", "firewall", "sysctl", "libvirt",
                               "nova_network", "db_sync", "services", "discover")}
    data = pillar("zed", manage=stub, compute={"driver": "fake.FakeDriver"},
                  database={"host": "127.0.0.1", "user": scratch_db, "name": scratch_db,
                            "api_name": scratch_db + "_api", "grant_hosts": ["localhost"],
                            "admin": {"unix_socket": "/run/mysqld/mysqld.sock", "user": "root"}},
                  lookup={"group": "root", "files": {k: str(v) for k, v in aio_files.items()},
                          **sandboxed(aio_files["nova_conf"].parent)})
    sc.set_pillar(data)
    first = sc.apply("nova").assert_ok()
    assert first["nova-config-nova_conf"]["changes"]
    assert first["nova-db-" + scratch_db]["changes"]
    assert first["nova-config-compute_conf"]["changes"]
    conf = aio_files["nova_conf"].read_text()
    assert [ln for ln in conf.splitlines() if ln.startswith("my_ip")] == ["my_ip = 10.1.2.3"]
    assert "connection = mysql+pymysql://" + scratch_db in conf
    placement = conf.split("[placement]")[1].split("\n[")[0]
    assert [ln for ln in placement.splitlines() if ln.startswith("username")] == [
        "username = placement"]
    assert "compute_driver = fake.FakeDriver" in aio_files["compute_conf"].read_text()
    for path in aio_files.values():
        if path.name != "api-paste.ini":
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    output = first.proc.stdout
    with open(sc.log_file) as fh:
        log = fh.read()  # the minion's debug log
    for secret in SECRETS.values():
        for form in (secret, json.dumps(secret)[1:-1], quote(secret, safe="")):
            assert form not in output and form not in log
    # run order: validation, DB, config (the DB sync and the services, left
    # out here, are ordered in the real all-in-one: tests/test_e2e.py)
    order = [s["__id__"] for s in first.ordered]
    assert order[0] == "nova-pillar-valid"
    assert order.index("nova-config-nova_conf") > order.index("nova-db-" + scratch_db)
    assert "left out by nova:manage: identity, packages, firewall, sysctl, db_sync, service, " \
        "discover" in first["nova-pillar-valid"]["comment"]

    second = sc.apply("nova").assert_ok()
    assert not second.changed, second.changed

    # test=True reports the drift of a changed ratio and writes nothing
    before = aio_files["nova_conf"].read_bytes()
    sc.set_pillar(merge_pillar(data, {"compute": {"cpu_allocation_ratio": 4.0}}))
    dry = sc.apply("nova", test=True)
    assert dry["nova-config-nova_conf"]["result"] is None
    assert aio_files["nova_conf"].read_bytes() == before


def merge_pillar(data, extra):
    from formula_support import merge
    return {"nova": merge(data["nova"], extra)}


def test_firewall_rules_before_reject_saved_and_never_duplicated(minion, tmp_path):
    """nova.firewall for real, in a private network namespace (unshare -n) whose
    INPUT chain already ends in a REJECT rule, applied twice."""
    import subprocess

    from harness import SALT_CALL
    sc = minion("debian12")
    save = tmp_path / "rules.v4"
    sc.set_pillar(pillar("zed", lookup={"iptables_save": str(save)}))
    apply = [SALT_CALL, "--local", "-c", sc.config_dir, "--out=json", "--retcode-passthrough",
             "-l", "quiet", "state.apply", "nova.firewall"]
    script = ('iptables -A INPUT -p tcp --dport 22 -j ACCEPT && iptables -A INPUT -j REJECT'
              ' && "$@" > first.json && "$@" > second.json && iptables -S INPUT')
    proc = subprocess.run(["unshare", "-n", "sh", "-c", script, "sh", *apply], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = proc.stdout.splitlines()
    vnc = "-A INPUT -p tcp -m multiport --dports 5900:5999 -j ACCEPT"
    api = "-A INPUT -p tcp -m multiport --dports 8774 -j ACCEPT"
    reject = next(i for i, r in enumerate(rules) if "-j REJECT" in r)
    assert rules.count(vnc) == 1 and rules.count(api) == 1, rules
    assert rules.index(vnc) < reject and rules.index(api) < reject
    first = json.loads((tmp_path / "first.json").read_text())["local"]
    second = json.loads((tmp_path / "second.json").read_text())["local"]
    changed = lambda run: sorted(r["__id__"] for r in run.values() if r["changes"])  # noqa: E731
    # the Compute API, the console proxy and the metadata API on this api +
    # compute minion, and the computes' VNC ports
    assert changed(first) == ["nova-firewall-api", "nova-firewall-console",
                              "nova-firewall-metadata", "nova-firewall-vnc"]
    assert changed(second) == [] and all(r["result"] for r in second.values())
    saved = save.read_text()
    assert "--dports 5900:5999 -j ACCEPT" in saved and "--dports 8774 -j ACCEPT" in saved


def default_pillar_acl():
    import yaml
    with open(os.path.join(REPO, "nova", "parameters", "defaults.yaml")) as fh:
        return yaml.safe_load(fh)["libvirt"]["linuxbridge_qemu_conf"]["cgroup_device_acl"]


def test_sysctl_and_qemu_conf_lines_then_their_clean(minion, aio_files, tmp_path):
    """A Linux Bridge libvirt compute for real, in a private network namespace
    (unshare -n: its net.* sysctls are its own): sysctl keys set live and in
    sysctl.conf, qemu.conf's lines set at their commented defaults; then
    nova.sysctl.clean and nova.libvirt.clean take exactly those lines back
    (an operator's own lines stay), and a second clean changes nothing."""
    import subprocess

    from harness import SALT_CALL
    sc = minion("debian12", minion_id="cmp1")
    qemu, sysctl_conf = tmp_path / "qemu.conf", tmp_path / "sysctl.conf"
    qemu.write_text('#user = "libvirt-qemu"\n#group = "libvirt-qemu"\n'
                    "#cgroup_device_acl = [\n#]\nvnc_listen = \"0.0.0.0\"\n")
    sysctl_conf.write_text("# the operator's own\nvm.swappiness = 10\n")
    off = {k: False for k in ("packages", "firewall", "nova_network", "services")}
    sc.set_pillar(pillar("zed", ["compute"], manage=off,
                         network={"plugin": "linuxbridge"},
                         compute={"driver": "libvirt.LibvirtDriver"},
                         lookup={"group": "root", "qemu_conf": str(qemu),
                                 "sysctl_conf": str(sysctl_conf),
                                 "files": {k: str(v) for k, v in aio_files.items()}}))
    runs = ("nova", "nova", "nova.sysctl.clean,nova.libvirt.clean",
            "nova.sysctl.clean,nova.libvirt.clean")
    script = " && ".join(f'"$@" {sls} > run{i}.json && sysctl -n net.ipv4.conf.all.rp_filter '
                         f'>> live.txt' for i, sls in enumerate(runs))
    apply = [SALT_CALL, "--local", "-c", sc.config_dir, "--out=json", "--retcode-passthrough",
             "-l", "quiet", "state.apply"]
    subprocess.run(["unshare", "-n", "sh", "-c", "sysctl -qw net.ipv4.conf.all.rp_filter=2 && "
                    + script, "sh", *apply], cwd=tmp_path, capture_output=True, text=True,
                   timeout=600)
    done = [json.loads((tmp_path / f"run{i}.json").read_text())["local"]
            for i in range(len(runs)) if (tmp_path / f"run{i}.json").exists()]
    assert len(done) == len(runs), [str(r)[-1500:] for r in done]
    for run in done:
        assert all(r["result"] for r in run.values()), {
            r["__id__"]: r["comment"] for r in run.values() if not r["result"]}
    changed = [sorted(r["__id__"] for r in run.values() if r["changes"]) for run in done]
    sysctl_ids = ["nova-sysctl-net.bridge.bridge-nf-call-arptables",
                  "nova-sysctl-net.bridge.bridge-nf-call-ip6tables",
                  "nova-sysctl-net.bridge.bridge-nf-call-iptables",
                  "nova-sysctl-net.ipv4.conf.all.rp_filter",
                  "nova-sysctl-net.ipv4.conf.default.rp_filter"]
    qemu_ids = ["nova-libvirt-qemu-cgroup_device_acl", "nova-libvirt-qemu-group",
                "nova-libvirt-qemu-user"]
    assert set(sysctl_ids + qemu_ids) <= set(changed[0]), changed[0]
    assert changed[1] == [], changed[1]
    assert set(changed[2]) == {f"{i}-line" for i in sysctl_ids} | {
        f"{i}-default" for i in qemu_ids}, changed[2]
    assert changed[3] == [], changed[3]
    # set live in the namespace (2 -> 0); the clean leaves the kernel alone
    assert (tmp_path / "live.txt").read_text().split() == ["0", "0", "0", "0"]
    # our lines commented out again: libvirt's defaults (the deploy set them
    # where the commented defaults stood; other lines untouched)
    acl = default_pillar_acl()
    assert qemu.read_text() == (f'#user = "root"\n#group = "root"\n#cgroup_device_acl = {acl}\n'
                                '#]\nvnc_listen = "0.0.0.0"\n'), qemu.read_text()
    assert "vm.swappiness = 10" in sysctl_conf.read_text()
    assert "rp_filter" not in sysctl_conf.read_text() and "bridge-nf" not in \
        sysctl_conf.read_text()


# ------------------------------------------------------------ loud failures

def test_a_service_layer_that_cannot_act_is_refused(make_salt_call):
    """systemctl installed, systemd not PID 1 (a container, like this test
    machine): Salt's systemd module would run "offline" and every service
    state would succeed doing nothing. The formula refuses, naming the fix."""
    if not os.path.exists("/bin/systemctl") or os.path.isdir("/run/systemd/system"):
        pytest.fail("this test needs a host with systemctl but without systemd as PID 1")
    sc = make_salt_call(minion_id="ctl1", grains=GRAINS["debian12"],
                        extra_opts={"disable_modules": []})  # as a default minion
    states = render(sc, pillar("zed"))
    assert list(states) == ["nova-pillar-valid"]
    fun, args = states["nova-pillar-valid"]
    assert fun == "test.fail_without_changes"
    assert "systemd is not running as PID 1" in args["comment"]
    assert "disable_modules: [systemd_service]" in args["comment"]
    # a real apply fails the run (exit code), having run nothing else
    sc.set_pillar(pillar("zed"))
    run = sc.apply("nova")
    assert run.returncode != 0 and list(run.failed) == ["nova-pillar-valid"], run.states
    assert len(run.states) == 1, list(run.states)
    # a minion set up as docs/operations.md says applies normally
    ok = render(make_salt_call(minion_id="ctl1", grains=GRAINS["debian12"]), pillar("zed"))
    assert ok["nova-pillar-valid"][0] == "test.succeed_without_changes"


def test_modules_not_synced_says_so(make_salt_call):
    """The formula's modules missing on a minion (no saltutil.sync_all): the
    render error says what to run, not "has no attribute 'nova_formula.plan'"."""
    sc = make_salt_call(minion_id="ctl1", grains=GRAINS["debian12"],
                        extra_opts={"module_dirs": []})
    sc.set_pillar(pillar("zed"))
    code, data, proc = sc.run("state.show_sls", "nova")
    assert code != 0
    text = json.dumps(data) if data else proc.stdout + proc.stderr
    assert "modules are not on this minion" in text and "saltutil.sync_all" in text, text[-2000:]
    assert "has no attribute" not in text


def test_orchestrate_without_the_modules_on_the_master_says_so(make_salt_call):
    """The orchestrate rendered where the formula's modules were never synced
    (salt-run saltutil.sync_all skipped): one failing step that says what to
    run, before any minion is touched."""
    sc = make_salt_call(minion_id="master", grains=GRAINS["debian12"],
                        extra_opts={"module_dirs": []})
    states = render(sc, pillar("zed", fleet={"controllers": ["ctl1"], "computes": ["cmp1"]}),
                    sls="nova.orch.deploy")
    assert list(states) == ["nova-orch-modules"]
    fun, args = states["nova-orch-modules"]
    assert fun == "test.fail_without_changes"
    assert "salt-run saltutil.sync_all" in args["comment"] and args["failhard"] is True
