"""Nova on the fleet, the way an operator deploys it: a pillar on the master
(shared data for every minion, the database and Keystone admin credentials
for the controller only), the formula's modules synced, then
``salt-run state.orchestrate nova.orch.deploy`` on ctl.

Used by the fleet tests (tests/fleet/test_fleet_*.py) and benchmarks/fleet.py.
Secrets go to files (pillar) and stdin, never to an argv.
"""
import fnmatch
import json
import os
import secrets
import time

import yaml

CTL = "ctl"
CLOUD = "nova-formula-admin"
FLAVOR = "fleet.tiny"
IMAGE = "cirros-fake"  # made by the support layer (services.sh)
# both are in the fleet's package cache (tests/fleet/README.md): the fleet
# deploys the older, so test_fleet_2_upgrade's update to the newer is real
NOVA_VERSIONS = ("2:26.2.2-1~deb12u4", "2:26.2.2-1~deb12u5")
NOVA_DAEMONS = ("nova-api", "nova-api-metadata", "nova-novncproxy", "nova-scheduler",
                "nova-conductor", "nova-compute")


class NovaFleet:
    """The deploy's data and actions on one fleet (a :class:`fleet.Fleet`)."""

    def __init__(self, fleet, computes=("cmp1", "cmp2"), controllers=(CTL,), conductors=(),
                 **fleet_pillar):
        self.fleet = fleet
        # a list of minion ids, or a glob the master matches (pillar nova:fleet:computes)
        self.computes = computes if isinstance(computes, str) else list(computes)
        self.controllers = list(controllers)
        self.conductors = list(conductors)
        self.fleet_pillar = fleet_pillar
        self.shared = {}  # more nova pillar for every minion (e.g. aggregates)
        self.version = NOVA_VERSIONS[0]  # nova:version on every host
        self.ctl = fleet.address(CTL)
        self.passwords = {k: secrets.token_hex(12) for k in ("db", "mq", "nova", "metadata")}

    # ------------------------------------------------------------ pillar
    def support_secret(self, name):
        """A password of the support layer inside ctl (root-only file there)."""
        return self.fleet.read_file(CTL, f"/var/lib/nova-formula-tests/{name}.password").strip()

    def common(self):
        ks = f"http://{self.ctl}:5000"
        fleet = {"controllers": self.controllers, "computes": self.computes,
                 "discover": {"attempts": 40, "interval": 3}}
        if self.conductors:
            fleet["conductors"] = self.conductors
        fleet.update(self.fleet_pillar)
        return {"nova": {
            "release": "zed",
            "version": self.version,
            "messaging": {"host": self.ctl, "virtual_host": "nova", "password": self.passwords["mq"]},
            "identity": {"auth_url": ks, "www_authenticate_uri": ks, "auth_host": self.ctl,
                         "password": self.passwords["nova"],
                         "endpoints": {i: f"http://{self.ctl}:8774/v2.1"
                                       for i in ("public", "internal", "admin")}},
            "placement": {"auth_url": ks, "password": self.support_secret("keystone-placement")},
            "network": {"neutron": {"url": f"http://{self.ctl}:9696/", "auth_url": ks,
                                    "password": self.support_secret("keystone-neutron")}},
            "compute": {"driver": "fake.FakeDriver"},
            # the URL computes hand to clients: the proxy on ctl
            "console": {"base_url": f"http://{self.ctl}:6080/vnc_auto.html"},
            "fleet": fleet,
            **self.shared,
        }}

    def compute_hosts(self):
        """The computes' minion ids (a glob matched against the running hosts)."""
        if isinstance(self.computes, str):
            return sorted(h for h in self.fleet.running_hosts()
                          if fnmatch.fnmatch(h, self.computes))
        return list(self.computes)

    def controller(self):
        """What only the controller may know: the database password and URL
        parts, the Keystone admin credentials (a clouds.yaml cloud there) and
        the metadata secret (the metadata API runs there; computes need none).
        A conductor on another host gets a grant from its own address."""
        remote = [self.fleet.address(h) for h in self.conductors if h != CTL]
        # the cell mappings hold this URL and every conductor reads them: with
        # a conductor elsewhere, the address they all reach (and a grant for it)
        host = self.ctl if remote else "127.0.0.1"
        return {"nova": {
            "roles": ["api", "scheduler", "conductor"],
            "database": {"host": host, "password": self.passwords["db"],
                         "grant_hosts": ["localhost", "127.0.0.1"] + remote + (
                             [self.ctl] if remote else []),
                         "admin": {"unix_socket": "/run/mysqld/mysqld.sock", "user": "root"}},
            "identity": {"cloud": CLOUD},
            "network": {"neutron": {"metadata_secret": self.passwords["metadata"]}},
        }}

    def write_pillar(self, per_host=None):
        """top.sls: common data to every minion (and the master), the
        controller's to ctl, roles to each host; ``per_host``: {host: extra}."""
        root = self.fleet.pillar_dir()
        os.makedirs(os.path.join(root, "nova"), exist_ok=True)
        files = {"common": self.common(), "controller": self.controller()}
        top = {"'*'": ["nova.common"], f"'{CTL}'": ["nova.controller"]}
        for host in [h for h in self.conductors if h != CTL]:
            files[f"conductor_{host}"] = {"nova": {
                "roles": ["conductor"],
                "database": {"host": self.ctl, "password": self.passwords["db"]}}}
            top[f"'{host}'"] = [f"nova.conductor_{host}"]
        files["compute"] = {"nova": {"roles": ["compute"]}}
        for target in ([self.computes] if isinstance(self.computes, str) else self.computes):
            top[f"'{target}'"] = ["nova.compute"]
        for host, extra in (per_host or {}).items():
            files[f"extra_{host}"] = extra
            top.setdefault(f"'{host}'", []).append(f"nova.extra_{host}")
        for name, data in files.items():
            _write(os.path.join(root, "nova", f"{name}.sls"), yaml.safe_dump(data))
        _write(os.path.join(root, "top.sls"), "base:\n" + "".join(
            f"  {target}:\n" + "".join(f"    - {sls}\n" for sls in sls_list)
            for target, sls_list in top.items()))
        self.fleet.salt(["salt", "*", "saltutil.refresh_pillar"], timeout=120)

    def prepare(self):
        """What the operator provides beside the formula: the RabbitMQ user and
        vhost (password on stdin), a flavor; then the modules synced."""
        self.fleet.run(CTL, ["sh", "-c", "if rabbitmqctl -q list_users </dev/null | "
                             "cut -f1 | grep -qx nova; then rabbitmqctl -q change_password nova; "
                             "else rabbitmqctl -q add_user nova; fi"],
                       input=self.passwords["mq"] + "\n", check=True)
        self.fleet.run(CTL, ["sh", "-c", "rabbitmqctl -q list_vhosts | grep -qx nova || "
                             "rabbitmqctl -q add_vhost nova; rabbitmqctl -q set_permissions "
                             "-p nova nova '.*' '.*' '.*'"], check=True)
        self.write_pillar()
        self.sync()

    def sync(self):
        for argv in (["salt-run", "saltutil.sync_all"], ["salt", "*", "saltutil.sync_all"]):
            self.fleet.salt(argv, timeout=300, check=True)

    # ------------------------------------------------------------ running
    def orchestrate(self, sls="nova.orch.deploy", test=False, timeout=1800, pillar=None):
        """(returncode, {step id: step}, seconds) of the orchestrate runner;
        ``pillar``: given on the command line (no secrets there: it is argv)."""
        argv = ["salt-run", "--out=json", "state.orchestrate", sls]
        if test:
            argv.append("test=True")
        if pillar:
            argv.append("pillar=" + json.dumps(pillar))
        start = time.monotonic()
        proc = self.fleet.salt(argv, timeout=timeout)
        took = time.monotonic() - start
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"orchestrate gave no JSON ({proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") from None
        data = data.get("data", data)
        (steps,) = data.values()
        if not isinstance(steps, dict):
            raise AssertionError(f"orchestrate failed to render: {steps}")
        return proc.returncode, {k.split("_|-")[1]: v for k, v in steps.items()}, took

    def apply(self, target="*", sls="nova", test=False, tgt_type="glob", timeout=1800):
        """{minion: {state id: ret}} of ``salt TARGET state.apply SLS``."""
        argv = ["salt", "--out=json", "--static", "-t", str(timeout)]
        if tgt_type != "glob":
            argv.append(f"--{tgt_type}")
        argv += [target, "state.apply", sls] + (["test=True"] if test else [])
        proc = self.fleet.salt(argv, timeout=timeout + 60)
        data = json.loads(proc.stdout)
        return {m: ({r.get("__id__", k): r for k, r in ret.items()} if isinstance(ret, dict)
                    else ret) for m, ret in data.items()}

    def daemon_pids(self, host):
        """{daemon: pid} of the nova daemons running on ``host`` (their
        pidfiles; systemd's MainPID on a systemd host)."""
        out = {}
        for daemon in NOVA_DAEMONS:
            if self.fleet.kind(host) == "systemd":
                pid = self.fleet.run(host, ["systemctl", "show", "-p", "MainPID", "--value",
                                            daemon]).stdout.strip()
                if pid and pid != "0":
                    out[daemon] = int(pid)
                continue
            cp = self.fleet.run(host, ["cat", f"/run/nova/{daemon}.pid"])
            pid = cp.stdout.strip()
            if cp.returncode == 0 and pid and self.fleet.run(
                    host, ["kill", "-0", pid]).returncode == 0:
                out[daemon] = int(pid)
        return out

    def all_pids(self):
        return {h: self.daemon_pids(h) for h in
                dict.fromkeys([CTL] + self.conductors + self.compute_hosts())}

    # ------------------------------------------------------------ OpenStack
    def openstack(self, *commands, microversion="2.74", timeout=600):
        """Run ``openstack`` commands in one client process inside ctl; the JSON
        documents printed, in order."""
        cp = self.fleet.run(CTL, ["openstack", "--os-cloud", CLOUD,
                                  "--os-compute-api-version", microversion],
                            input="\n".join(commands) + "\n", timeout=timeout)
        docs, text, pos = [], cp.stdout, 0
        decoder = json.JSONDecoder()
        while pos < len(text):
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
        return docs, cp

    def compute_services(self):
        docs, _ = self.openstack("compute service list -f json")
        return {(s["Binary"], s["Host"]): s for s in docs[0]} if docs else {}

    def hypervisors(self):
        docs, _ = self.openstack("hypervisor list -f json")
        return sorted(h["Hypervisor Hostname"] for h in docs[0]) if docs else []

    def wait(self, predicate, what, timeout=240, interval=3):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"{what} not within {timeout} s (last: {last!r})")

    def boot(self, name, host=None, zone=None):
        """A server to ACTIVE (forced onto ``host``, or in availability zone
        ``zone``); its record (with the host it landed on)."""
        docs, _ = self.openstack("flavor list -f json")
        if not docs or FLAVOR not in [f["Name"] for f in docs[0]]:
            self.openstack(f"flavor create --ram 64 --disk 1 --vcpus 1 {FLAVOR} -f json")
        where = f" --availability-zone nova:{host}" if host else (
            f" --availability-zone {zone}" if zone else "")
        docs, cp = self.openstack(f"server create --flavor {FLAVOR} --image {IMAGE} --nic none"
                                  f"{where} --wait {name} -f json")
        server = docs[0] if docs and isinstance(docs[0], dict) else {}
        assert server.get("status") == "ACTIVE", (server, cp.stderr[-2000:])
        docs, _ = self.openstack(f"server show {name} -f json")
        return docs[0]

    def delete_servers(self, *names):
        self.openstack(*[f"server delete --wait {n}" for n in names])


# ------------------------------------------------------------ reading results
def steps_ok(steps):
    bad = {sid: s["comment"] for sid, s in steps.items() if s["result"] is not True}
    assert not bad, bad


def changed_minions(steps):
    """{step: [minions it changed]} of the salt.state steps of an orchestrate."""
    out = {}
    for sid, step in steps.items():
        if sid == "nova-orch-sync-modules":
            continue  # a function step: its "changes" are the function's output
        ret = (step.get("changes") or {}).get("ret") or {}
        out[sid] = sorted(m for m, states in ret.items() if isinstance(states, dict) and any(
            isinstance(r, dict) and r.get("changes") for r in states.values()))
    return {sid: ms for sid, ms in out.items() if ms}


def _write(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
