#!/usr/bin/python3
"""Helpers for aio.sh (the all-in-one deploy of the nova formula).

Runs with Debian's /usr/bin/python3 (yaml and openstacksdk come from the
packages install-packages.sh installs), like ftest_helper.py beside it. Secrets
live in root-only files under STATE_DIR and never reach a command line, a log or
this script's output.

Subcommands:
  pillar [--clean [--keep-packages]]
                       write the masterless minion config and the AIO pillar
                       (pillar.example + all-in-one overrides) under STATE_DIR/aio;
                       --clean: the pillar of aio.sh reset-nova (nova.clean, data too)
  rabbit               ensure RabbitMQ user and vhost "nova" (password on stdin)
  check [--boot]       wait until nova-conductor, -scheduler and -compute are up
                       and the hypervisor is listed; with --boot, boot a server to
                       ACTIVE and delete it. Prints one line per fact.
  summary FILE         one line about a salt-call --out=json state.apply result
  purge                drop what the deploy made beside the formula (whose
                       nova.clean removes the rest): Placement resource
                       providers, RabbitMQ user/vhost
"""
import json
import re
import os
import secrets
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from harness import formula_roots, host_minion_opts  # noqa: E402  (shared with the tests)
STATE_DIR = os.environ.get("FTEST_STATE_DIR", "/var/lib/nova-formula-tests")
AIO_DIR = os.path.join(STATE_DIR, "aio")
CLOUD = "nova-formula-admin"
CLOUDS_YAML = os.environ.get("FTEST_CLOUDS_YAML", "/etc/openstack/clouds.yaml")
MINION_ID = "nova-aio"
KEYSTONE = "http://127.0.0.1:5000"
COMPUTE_URL = "http://127.0.0.1:8774/v2.1"
CONSOLE_URL = "http://127.0.0.1:6080/vnc_auto.html"
METADATA_URL = "http://127.0.0.1:8775"
FLAVOR = "aio.tiny"
IMAGE = "cirros-fake"
RABBIT_USER = RABBIT_VHOST = "nova"
DB_HOSTS = ["localhost", "127.0.0.1"]
# The deploy's own secrets (support-layer ones are read, never written, here).
SECRETS = {
    "database": "aio-db-nova",
    "messaging": "aio-rabbitmq-nova",
    "identity": "aio-keystone-nova",
    "metadata": "aio-metadata-secret",
}


def die(msg):
    print(f"aio_helper: {msg}", file=sys.stderr)
    sys.exit(1)


def secret_path(name):
    return os.path.join(STATE_DIR, f"{name}.password")


def read_secret(name):
    try:
        with open(secret_path(name)) as fh:
            value = fh.read().strip()
    except FileNotFoundError:
        value = ""
    if not value:
        die(f"{secret_path(name)} is missing: run tests/support/services.sh up all first")
    return value


def secret(name):
    """Return secret NAME, creating it (0600 in a 0700 dir) if absent.

    Random hex: readable in a demo. tests/test_e2e_secrets.py replaces them
    with passwords full of URL, shell and SQL special characters."""
    os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)
    os.chmod(STATE_DIR, 0o700)
    path = secret_path(name)
    if os.path.exists(path):
        with open(path) as fh:
            value = fh.read().strip()
        if value:
            return value
    value = secrets.token_hex(16)
    write_private(path, value + "\n")
    return value


def write_private(path, text):
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)


# ---------------------------------------------------------------- pillar

def build_pillar(clean=False, keep_packages=False):
    """pillar.example, with the all-in-one overrides: everything on
    127.0.0.1, this deploy's random passwords, the support layer's Keystone
    admin cloud and service passwords, and the fake compute driver. With
    ``clean``: for nova.clean, the data too (and, with ``keep_packages``,
    not the packages)."""
    import yaml

    with open(os.path.join(REPO, "pillar.example")) as fh:
        nova = yaml.safe_load(fh)["nova"]
    nova.update(release="zed", roles=["api", "scheduler", "conductor", "compute"],
                my_ip="127.0.0.1")
    nova["database"].update(host="127.0.0.1", password=secret(SECRETS["database"]),
                            grant_hosts=list(DB_HOSTS))
    nova["messaging"].update(host="127.0.0.1", user=RABBIT_USER, virtual_host=RABBIT_VHOST,
                             password=secret(SECRETS["messaging"]))
    ident = nova["identity"]
    ident.update(auth_url=KEYSTONE, www_authenticate_uri=KEYSTONE, auth_host="127.0.0.1",
                 password=secret(SECRETS["identity"]), admin={}, cloud=CLOUD)
    ident["endpoints"] = {i: COMPUTE_URL for i in ("public", "internal", "admin")}
    nova["network"]["neutron"].update(url="http://127.0.0.1:9696/", auth_url=KEYSTONE,
                                      password=read_secret("keystone-neutron"),
                                      metadata_secret=secret(SECRETS["metadata"]))
    nova["placement"].update(auth_url=KEYSTONE, password=read_secret("keystone-placement"))
    nova["compute"]["driver"] = "fake.FakeDriver"  # no KVM here
    # One minion is the whole fleet. nova-compute registers some seconds after
    # it starts: host discovery waits (bounded) for it.
    nova["fleet"].update(controllers=[MINION_ID], computes=[MINION_ID],
                         discover={"attempts": 40, "interval": 3, "expect": 1})
    # The host's own iptables are never touched by the tests: the firewall
    # state is proven in a network namespace (tests/test_e2e_firewall.py).
    nova["manage"]["firewall"] = False
    # nova-api on loopback with 2 uwsgi workers (2 cores), like the support
    # services; the formula writes it (the package's default: 16, every address)
    nova["api"].update(bind_host="127.0.0.1", workers=2)
    # the metadata API and the console proxy on loopback too, 2 workers
    nova["metadata"].update(bind_host="127.0.0.1", workers=2)
    nova["console"].update(proxy_host="127.0.0.1", base_url=CONSOLE_URL)
    # host aggregates are proven on the fleet (tests/fleet), where the
    # example's compute names exist
    nova["aggregates"] = {}
    if clean:
        nova["clean"]["data"] = True
        nova["manage"]["packages"] = not keep_packages
    return {"nova": nova}


def minion_opts(root):
    opts = {
        "id": MINION_ID,
        "file_client": "local",
        "root_dir": root,
        "pki_dir": os.path.join(root, "pki"),
        "cachedir": os.path.join(root, "cache"),
        "sock_dir": os.path.join(root, "sock"),
        "log_file": os.path.join(root, "minion.log"),
        "log_level_logfile": "warning",
        "file_roots": {"base": [formula_roots()]},
        "pillar_roots": {"base": [os.path.join(root, "pillar")]},
        "module_dirs": [REPO],
        "enable_fqdns_grains": False,
        "grains_cache": False,
    }
    # systemctl without systemd as PID 1 (this machine): Debian's init scripts
    # (``providers`` is not enough: it leaves ``service.offline`` behind)
    opts.update(host_minion_opts())
    return opts


def cmd_pillar(*args):
    """pillar [--clean [--keep-packages]]: the minion config and the pillar
    (for nova.clean with --clean; exit 1 when there is no support layer to
    clean against)."""
    import yaml

    clean = "--clean" in args
    if clean and not os.path.exists(CLOUDS_YAML):
        print("aio_helper: no support layer (Keystone): nothing for nova.clean to reach",
              file=sys.stderr)
        sys.exit(1)
    root = AIO_DIR
    os.makedirs(root, mode=0o700, exist_ok=True)
    os.chmod(root, 0o700)
    write_private(os.path.join(root, "conf", "minion"),
                  yaml.safe_dump(minion_opts(root), default_flow_style=False))
    write_private(os.path.join(root, "pillar", "top.sls"), "base:\n  '*':\n    - nova\n")
    write_private(os.path.join(root, "pillar", "nova.sls"), yaml.safe_dump(
        build_pillar(clean, "--keep-packages" in args), default_flow_style=False))


# ---------------------------------------------------------------- RabbitMQ

def rabbitmqctl(*args, stdin=None, check=True):
    res = subprocess.run(["rabbitmqctl", "-q", *args], input=stdin, capture_output=True,
                         text=True)
    if check and res.returncode != 0:
        die(f"rabbitmqctl {args[0]} failed: {res.stderr.strip()[-300:]}")
    return res


def cmd_rabbit():
    password = secret(SECRETS["messaging"])
    users = rabbitmqctl("list_users").stdout.split()
    if RABBIT_USER in users:
        # the stored password may be newer than the user: re-sync (stdin only)
        rabbitmqctl("change_password", RABBIT_USER, stdin=password + "\n")
    else:
        rabbitmqctl("add_user", RABBIT_USER, stdin=password + "\n")
    if RABBIT_VHOST not in rabbitmqctl("list_vhosts").stdout.split():
        rabbitmqctl("add_vhost", RABBIT_VHOST)
    rabbitmqctl("set_permissions", "-p", RABBIT_VHOST, RABBIT_USER, ".*", ".*", ".*")


# ---------------------------------------------------------------- OpenStack

def openstack(*commands, microversion=None, timeout=600):
    """Run ``openstack`` commands in ONE client process (commands on stdin,
    ~10x faster than one process each); return the JSON documents printed,
    in order. Credentials come from clouds.yaml through OS_CLOUD."""
    env = dict(os.environ, OS_CLOUD=CLOUD, OS_CLIENT_CONFIG_FILE=CLOUDS_YAML)
    argv = ["openstack"]
    if microversion:
        argv += ["--os-compute-api-version", microversion]
    res = subprocess.run(argv, input="\n".join(commands) + "\n", capture_output=True,
                         text=True, env=env, timeout=timeout)
    docs, text, pos = [], res.stdout, 0
    decoder = json.JSONDecoder()
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except ValueError:
            nl = text.find("\n", pos)
            pos = len(text) if nl < 0 else nl + 1
            continue
        docs.append(doc)
    return docs, res


def connect():
    import openstack as sdk

    os.environ.setdefault("OS_CLIENT_CONFIG_FILE", CLOUDS_YAML)
    return sdk.connect(cloud=CLOUD)


def compute_state():
    """({binary: state}, [hypervisor names]) from the compute API."""
    docs, res = openstack("compute service list -f json", "hypervisor list -f json")
    if len(docs) != 2:
        raise RuntimeError("openstack compute service/hypervisor list failed: "
                           + (res.stderr.strip().splitlines() or ["no output"])[-1])
    services = {s["Binary"]: s["State"] for s in docs[0]}
    hypervisors = [h["Hypervisor Hostname"] for h in docs[1]]
    return services, hypervisors


def wait_compute(seconds=180):
    deadline = time.monotonic() + seconds
    want = ("nova-conductor", "nova-scheduler", "nova-compute")
    services, hypervisors, last = {}, [], None
    while time.monotonic() < deadline:
        try:
            services, hypervisors = compute_state()
            if all(services.get(b) == "up" for b in want) and hypervisors:
                return services, hypervisors
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            last = exc
        time.sleep(3)
    die(f"compute not ready within {seconds}s: services {services or '-'}, "
        f"hypervisors {hypervisors or '-'}" + (f" ({last})" if last else "")
        + "; see /var/log/nova/")


def boot_server(name=None):
    """Boot a server (flavor aio.tiny, image cirros-fake, no NIC) to ACTIVE,
    delete it; return seconds from create to ACTIVE."""
    name = name or f"aio-{secrets.token_hex(3)}"
    docs, _ = openstack(f"flavor list -f json")
    if not docs or FLAVOR not in [f["Name"] for f in docs[0]]:
        openstack(f"flavor create --ram 64 --disk 1 --vcpus 1 {FLAVOR} -f json")
    start = time.monotonic()
    docs, res = openstack(
        f"server create --flavor {FLAVOR} --image {IMAGE} --nic none --wait {name} -f json",
        microversion="2.37")
    took = time.monotonic() - start
    server = docs[0] if docs and isinstance(docs[0], dict) else {}
    status = server.get("status")
    fault = server.get("fault")
    openstack(f"server delete --wait {name}")
    docs, _ = openstack(f"server list --name ^{name}$ -f json")
    if docs and docs[0]:
        die(f"server {name} was not deleted")
    if status != "ACTIVE":
        err = (res.stderr.strip().splitlines() or [""])[-1]
        die(f"server {name} did not become ACTIVE (status {status!r}, fault {fault!r}) {err}")
    return took


def cmd_check(*args):
    start = time.monotonic()
    services, hypervisors = wait_compute()
    print("services: " + ", ".join(f"{b} {s}" for b, s in sorted(services.items())))
    print("hypervisors: " + ", ".join(hypervisors)
          + f" (ready after {time.monotonic() - start:.1f} s)")
    if "--boot" in args:
        took = boot_server()
        print(f"server: ACTIVE after {took:.1f} s, then deleted")


def _listed(ids, limit=12):
    ids = sorted(ids)
    return f" ({', '.join(ids[:limit])}{' …' if len(ids) > limit else ''})" if ids else ""


def pending_kinds(data):
    """{"change"|"start"|"restart": [state ids]} of a dry run: what a real run
    would do (result None), by what the state's comment says."""
    kinds = {"change": [], "start": [], "restart": []}
    for key, ret in data.items():
        if ret.get("result") is not None:
            continue
        comment = str(ret.get("comment", "")).lower()
        kind = ("restart" if "restart" in comment else
                "start" if re.search(r"set to (be )?start|would have been started", comment)
                else "change")
        kinds[kind].append(ret.get("__id__", key))
    return kinds


def cmd_summary(path):
    """One line from a salt-call --out=json state.apply result; exit 1 on a
    failure. A dry run (test=True) changes nothing: the line then says what a
    real run would change, start and restart."""
    with open(path) as fh:
        text = fh.read()
    try:
        data = json.loads(text)["local"]
    except (ValueError, KeyError, TypeError):
        die(f"salt-call gave no state data; see {path}")
    if not isinstance(data, dict):
        die(f"salt-call failed: {str(data)[:2000]}")
    kinds = pending_kinds(data)
    dry = any(kinds.values())
    changed = [] if dry else [r.get("__id__", k) for k, r in data.items() if r.get("changes")]
    line = f"{len(data)} states, {len(changed)} changed" + _listed(changed)
    if dry:
        line += ("; dry run: a real run would " + ", ".join(
            f"{kind} {len(ids)}{_listed(ids, 6)}" for kind, ids in kinds.items()))
    print(line)
    failed = {r.get("__id__", k): r.get("comment") for k, r in data.items()
              if r.get("result") is False}
    if failed:
        for sid, comment in failed.items():
            # retried states carry every attempt: the last line says it all
            last = (str(comment).strip().splitlines() or [""])[-1]
            print(f"  FAILED {sid}: {last}", file=sys.stderr)
        sys.exit(1)


# ---------------------------------------------------------------- purge

def cmd_purge():
    """What the deploy made beside the formula (nova.clean removes the rest)."""
    purge_placement()
    rabbitmqctl("delete_user", RABBIT_USER, check=False)
    rabbitmqctl("delete_vhost", RABBIT_VHOST, check=False)


def purge_placement():
    """Resource providers nova-compute registered: a new compute node of the
    same name would clash with them after a redeploy."""
    if not os.path.exists(CLOUDS_YAML):
        return
    try:
        conn = connect()
        placement = conn.placement
        for rp in list(placement.resource_providers()):
            allocs = placement.get(f"/resource_providers/{rp.id}/allocations").json()
            for consumer in (allocs.get("allocations") or {}):
                placement.delete(f"/allocations/{consumer}")
            placement.delete(f"/resource_providers/{rp.id}")
    except Exception as exc:  # noqa: BLE001
        print(f"aio_helper: Placement providers not purged ({type(exc).__name__}); "
              "is Placement up?", file=sys.stderr)


def main(argv):
    if not argv:
        die("usage: aio_helper.py SUBCOMMAND (see the module docstring)")
    table = {"pillar": cmd_pillar, "rabbit": cmd_rabbit, "check": cmd_check,
             "summary": cmd_summary, "purge": cmd_purge}
    cmd, args = argv[0], argv[1:]
    if cmd not in table:
        die(f"unknown subcommand {cmd!r}")
    table[cmd](*args)


if __name__ == "__main__":
    main(sys.argv[1:])
