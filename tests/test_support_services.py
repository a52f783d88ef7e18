"""The end-to-end support services (tests/support/services.sh) answer and are safe.

Brings them up itself (install-packages.sh and `services.sh up all` are both quick
when already done), then checks each API answers, that the admin cloud issues a token,
that the catalog and the test image are there, and that no secret leaks to argv or to
world-readable files. A service that cannot come up is an error, never a skip.
"""
import os
import stat
import subprocess

import pytest
import yaml
from keystoneauth1 import loading, session as ks_session

SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "support")
STATE = "/var/lib/nova-formula-tests"
CLOUDS_YAML = "/etc/openstack/clouds.yaml"
SERVICES = {
    "identity": "http://127.0.0.1:5000/v3",
    "placement": "http://127.0.0.1:8778",
    "image": "http://127.0.0.1:9292",
    "network": "http://127.0.0.1:9696",
}
PORTS = {5000, 8778, 9292, 9696, 11211}  # 11211: memcached, Keystone's cache


def run_support(*args, timeout=1800):
    proc = subprocess.run(["bash", os.path.join(SUPPORT, args[0]), *args[1:]],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def services_up():
    assert os.geteuid() == 0, "the support services need root"
    run_support("install-packages.sh")
    run_support("services.sh", "up", "all")


@pytest.fixture(scope="module")
def admin_session(services_up):
    with open(CLOUDS_YAML) as fh:
        cloud = yaml.safe_load(fh)["clouds"]["nova-formula-admin"]
    auth = loading.get_plugin_loader("password").load_from_options(**cloud["auth"])
    return ks_session.Session(auth=auth), cloud


def secrets():
    values = []
    for name in os.listdir(STATE):
        if name.endswith(".password"):
            with open(os.path.join(STATE, name)) as fh:
                values.append(fh.read().strip())
    return values


def test_token_issued_for_admin_cloud(admin_session):
    sess, cloud = admin_session
    assert cloud["region_name"] == "RegionOne"
    assert sess.get_token()
    assert sess.get_project_id()


def test_cli_token_issue_with_os_cloud(services_up):
    env = dict(os.environ, OS_CLOUD="nova-formula-admin")
    out = subprocess.run(["openstack", "token", "issue", "-f", "value", "-c", "id"], env=env,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()


@pytest.mark.parametrize("service_type", sorted(SERVICES))
def test_service_answers_and_is_in_catalog(admin_session, service_type):
    sess, _ = admin_session
    url = sess.get_endpoint(service_type=service_type, interface="public", region_name="RegionOne")
    assert url.rstrip("/") == SERVICES[service_type]
    for interface in ("internal", "admin"):
        assert sess.get_endpoint(service_type=service_type, interface=interface,
                                 region_name="RegionOne").rstrip("/") == SERVICES[service_type]
    # An authenticated request through the catalog: the service validates our token.
    path = {"identity": "/projects", "placement": "/resource_providers",
            "image": "/v2/images", "network": "/v2.0/networks"}[service_type]
    resp = sess.get(path, endpoint_filter={"service_type": service_type, "interface": "public"},
                    raise_exc=False)
    assert resp.status_code == 200, (service_type, resp.status_code, resp.text[:300])


def test_service_project_and_users(admin_session):
    sess, _ = admin_session
    ident = {"service_type": "identity", "interface": "public"}
    projects = sess.get("/projects?name=service", endpoint_filter=ident).json()["projects"]
    assert len(projects) == 1
    users = {u["name"] for u in sess.get("/users", endpoint_filter=ident).json()["users"]}
    assert {"admin", "placement", "glance", "neutron"} <= users


def test_fake_image_present(admin_session):
    sess, _ = admin_session
    images = sess.get("/v2/images?name=cirros-fake",
                      endpoint_filter={"service_type": "image", "interface": "public"}).json()["images"]
    assert len(images) == 1
    img = images[0]
    assert (img["status"], img["visibility"], img["disk_format"], img["size"]) == (
        "active", "public", "raw", 1024 * 1024)


def test_ports_listen_on_loopback_only(services_up):
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state != "0A":  # LISTEN
                    continue
                addr, port = local.rsplit(":", 1)
                if int(port, 16) in PORTS:
                    listening.setdefault(int(port, 16), set()).add(addr)
    assert set(listening) == PORTS
    for port, addrs in listening.items():
        assert addrs == {"0100007F"}, f"port {port} bound to {addrs}, not 127.0.0.1 only"


def test_secret_files_are_root_only(services_up):
    mode = stat.S_IMODE(os.stat(STATE).st_mode)
    assert mode == 0o700, oct(mode)
    names = [n for n in os.listdir(STATE) if n.endswith(".password")]
    assert {"keystone-admin.password", "db-keystone.password"} <= set(names)
    for name in names + ["setup.log"]:
        st = os.stat(os.path.join(STATE, name))
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600, (name, oct(st.st_mode))
    st = os.stat(CLOUDS_YAML)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600


def test_no_secret_on_any_argv(services_up):
    values = secrets()
    assert values
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().decode(errors="replace")
        except OSError:
            continue
        for value in values:
            assert value not in argv, f"a secret is on the argv of pid {pid}"


def test_no_root_owned_service_logs(services_up):
    for project in ("keystone", "placement", "glance", "neutron"):
        logdir = f"/var/log/{project}"
        for name in os.listdir(logdir):
            st = os.stat(os.path.join(logdir, name))
            assert st.st_uid != 0, f"{logdir}/{name} is owned by root: the daemon cannot write it"


def test_up_again_changes_nothing(services_up):
    before = {n: os.stat(os.path.join(STATE, n)).st_mtime_ns for n in os.listdir(STATE)}
    out = run_support("services.sh", "up", "all", timeout=300)
    assert out.split("\n")[:4] == [f"services.sh: {s}: up" for s in
                                   ("keystone", "placement", "glance", "neutron")]
    after = {n: os.stat(os.path.join(STATE, n)).st_mtime_ns for n in os.listdir(STATE)}
    assert before == after


def test_status_reports_all_up(services_up):
    out = run_support("services.sh", "status", timeout=60)
    assert out.count(": up (") == 4, out


def test_keystone_caches_through_memcached(admin_session):
    """Keystone runs with its cache on memcached (as production Keystones do):
    a token validated twice is served from the cache the second time."""
    import socket

    def stats():
        with socket.create_connection(("127.0.0.1", 11211), timeout=5) as sock:
            sock.sendall(b"stats\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                assert chunk, "memcached closed the connection"
                data += chunk
        return {parts[1]: parts[2] for parts in
                (line.split() for line in data.decode().splitlines()) if len(parts) == 3}

    sess, _ = admin_session
    url = sess.get_endpoint(service_type="identity", interface="public").rstrip("/")
    url = url if url.endswith("/v3") else url + "/v3"
    before = int(stats()["get_hits"])
    for _ in range(2):
        assert sess.get(url + "/projects").status_code == 200
    assert int(stats()["get_hits"]) > before
