#!/usr/bin/env python3
"""No-op apply of the compute + placement identity records: openstack_keystone
states vs the same records checked with `openstack` CLI calls (one process per
check, as shell-based formulas do), measured in the same run on the same Keystone.

Needs the test Keystone (`bash tests/support/services.sh up keystone`), which
writes the admin cloud `nova-formula-admin` to /etc/openstack/clouds.yaml.
Records use unique names in a unique region and are deleted at the end.

    .venv/bin/python benchmarks/keystone.py [--runs N]

Printed: wall time of one no-op `salt-call --local state.apply`, the time its
Keystone states took (Salt's per-state durations), the HTTP requests they sent
and how many of them were password logins (bcrypt in Keystone): with the
tokens kept from the run before (openstack_tokens, the default) and, for
comparison, with `openstack_keystone:token_cache: false` (every run logs in,
as the peers do);
the wall time and HTTP requests of the CLI checks; the same checks by
openstacksdk in one process (benchmarks/keystone_sdk_peer.py, in its own venv
.cache/bench-sdk-venv: openstacksdk and keystoneauth1 pinned below, their other
dependencies as pip resolves them); and the ratios. Targets: >= 10x the CLI,
>= 2x openstacksdk in the checks' own time, with fewer requests.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness import SaltCall  # noqa: E402

CLOUD = "nova-formula-admin"
TARGET = 10.0
SDK_TARGET = 2.0
SDK_VENV = os.path.join(REPO, ".cache", "bench-sdk-venv")
SDK_PY = os.path.join(SDK_VENV, "bin", "python")
SDK_PINS = ["openstacksdk==4.22.0", "keystoneauth1==5.18.1"]

SLS = """
{%- set b = salt['pillar.get']('bench') %}
project:
  openstack_keystone.project_present:
    - name: {{ b.project }}
admin-role:
  openstack_keystone.role_present:
    - name: admin
{%- for svc in b.services %}
{{ svc.name }}-user:
  openstack_keystone.user_present:
    - name: {{ svc.name }}
    - password: {{ svc.password }}
{{ svc.name }}-grant:
  openstack_keystone.role_grant_present:
    - name: admin
    - user: {{ svc.name }}
    - project: {{ b.project }}
{{ svc.name }}-service:
  openstack_keystone.service_present:
    - name: {{ svc.name }}
    - type: {{ svc.type }}
{{ svc.name }}-endpoints:
  openstack_keystone.endpoints_present:
    - name: {{ svc.name }}
    - region: {{ b.region }}
    - public: {{ svc.url }}
    - internal: {{ svc.url }}
    - admin: {{ svc.url }}
{%- endfor %}
request-count:
  module.run:
    - openstack_keystone.request_count: []
login-count:
  module.run:
    - openstack_keystone.request_count:
      - logins: true
"""
COUNTERS = ("request-count", "login-count")


def cli_checks(b):
    """The checks a shell formula runs (each an `openstack` process) for the same records."""
    cmds = [["project", "show", b["project"], "--domain", "Default", "-f", "value", "-c", "id"],
            ["role", "show", "admin", "-f", "value", "-c", "id"]]
    for svc in b["services"]:
        cmds += [
            ["user", "show", svc["name"], "--domain", "Default", "-f", "value", "-c", "id"],
            ["role", "assignment", "list", "--user", svc["name"], "--user-domain", "Default",
             "--project", b["project"], "--project-domain", "Default", "--role", "admin",
             "-f", "value"],
            ["service", "show", svc["name"], "-f", "value", "-c", "id"],
        ]
        for iface in ("public", "internal", "admin"):
            cmds.append(["endpoint", "list", "--service", svc["name"], "--interface", iface,
                         "--region", b["region"], "-f", "value"])
    return cmds


def run_cli(cmds, debug=False):
    """Run every check; return (seconds, HTTP requests or None)."""
    env = dict(os.environ, OS_CLOUD=CLOUD)  # credentials from clouds.yaml, not argv
    requests = 0
    start = time.perf_counter()
    for cmd in cmds:
        proc = subprocess.run(["openstack"] + (["--debug"] if debug else []) + cmd, env=env,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not proc.stdout.strip():
            sys.exit(f"CLI check failed: openstack {' '.join(cmd)}\n{proc.stderr[-500:]}")
        requests += proc.stderr.count("REQ: curl")
    return time.perf_counter() - start, requests


def ensure_sdk_venv():
    if not os.path.exists(SDK_PY):
        subprocess.run([sys.executable, "-m", "venv", SDK_VENV], check=True)
    probe = subprocess.run([SDK_PY, "-c", "import openstack, keystoneauth1; "
                            "print(openstack.version.__version__)"], capture_output=True, text=True)
    if probe.returncode or probe.stdout.strip() != SDK_PINS[0].split("==")[1]:
        subprocess.run([SDK_PY, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *SDK_PINS], check=True)


def run_sdk(bench, runs):
    """(median seconds, requests) of the openstacksdk peer; passwords on stdin."""
    proc = subprocess.run([SDK_PY, os.path.join(REPO, "benchmarks", "keystone_sdk_peer.py")],
                          input=json.dumps({"bench": bench, "cloud": CLOUD, "runs": runs}),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode:
        sys.exit(f"openstacksdk peer failed: {proc.stderr[-1500:]}")
    out = json.loads(proc.stdout)
    return statistics.median(out["seconds"]), out["requests"], out["seconds"], out["logins"]


def cleanup(salt, b):
    salt.write_sls("bench_clean", """
{%- set b = salt['pillar.get']('bench') %}
{%- for svc in b.services %}
{{ svc.name }}-service-gone:
  openstack_keystone.service_absent:
    - name: {{ svc.name }}
{{ svc.name }}-user-gone:
  openstack_keystone.user_absent:
    - name: {{ svc.name }}
{%- endfor %}
project-gone:
  openstack_keystone.project_absent:
    - name: {{ b.project }}
region-gone:
  module.run:
    - openstack_keystone.region_delete:
      - region: {{ b.region }}
""")
    salt.apply("bench_clean").assert_ok()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="no-op applies to time")
    parser.add_argument("--cli-runs", type=int, default=1, help="timed rounds of CLI checks")
    args = parser.parse_args()

    ensure_sdk_venv()
    sfx = uuid.uuid4().hex[:8]
    bench = {"project": f"service-bench-{sfx}", "region": f"bench-{sfx}", "services": [
        {"name": f"compute-bench-{sfx}", "type": "compute",
         "url": "http://127.0.0.1:8774/v2.1", "password": uuid.uuid4().hex},
        {"name": f"placement-bench-{sfx}", "type": "placement",
         "url": "http://127.0.0.1:8778", "password": uuid.uuid4().hex}]}
    salt = SaltCall(tempfile.mkdtemp(prefix="bench-keystone-"))
    salt.set_pillar({"openstack_keystone": {"cloud": CLOUD}, "bench": bench})
    salt.write_sls("bench_ks", SLS)
    try:
        salt.apply("bench_ks").assert_ok()  # create the records (not timed)

        def noops(token_cache):
            salt.set_pillar({"openstack_keystone": {"cloud": CLOUD, "token_cache": token_cache},
                             "bench": bench})
            salt.apply("bench_ks").assert_ok()  # warm-up (with the cache: keeps the tokens)
            walls, state_times, counts, logins = [], [], [], []
            for _ in range(args.runs):
                start = time.perf_counter()
                run = salt.apply("bench_ks").assert_ok()
                walls.append(time.perf_counter() - start)
                changed = [sid for sid in run.changed if sid not in COUNTERS]
                if changed:
                    sys.exit(f"no-op apply changed {changed}")
                state_times.append(sum(r["duration"] for sid, r in run.states.items()
                                       if sid not in COUNTERS) / 1000.0)
                counts.append(run["request-count"]["changes"]["openstack_keystone.request_count"])
                logins.append(run["login-count"]["changes"]["openstack_keystone.request_count"])
            return walls, state_times, counts, logins

        # without kept tokens (every run logs in, as the peers do), then with them
        _, cold_times, cold_counts, cold_logins = noops(False)
        walls, state_times, counts, logins = noops(True)
        sdk, sdk_requests, sdk_samples, sdk_logins = run_sdk(bench, args.runs)
        cmds = cli_checks(bench)
        cli_times = [run_cli(cmds)[0] for _ in range(args.cli_runs)]
        _, cli_requests = run_cli(cmds, debug=True)  # counting pass, not timed
    finally:
        cleanup(salt, bench)

    wall, states, cli = (statistics.median(walls), statistics.median(state_times),
                         statistics.median(cli_times))
    load = open("/proc/loadavg").read().split()[:3]
    print(f"benchmarks/keystone.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, load {' '.join(load)} (after); ratios from the same run")
    print(f"records: project, admin role, and for compute and placement: user (password "
          f"checked), admin grant, service, 3 endpoints; {args.runs} no-op applies")
    print(f"openstack_keystone states : {states * 1000:8.1f} ms   HTTP requests {counts[0]:3d}"
          f", {logins[0]} logins   (tokens kept from the run before; whole salt-call --local "
          f"state.apply: {wall:.2f} s)")
    cold = statistics.median(cold_times)
    print(f"  the same, token_cache off: {cold * 1000:6.1f} ms   HTTP requests "
          f"{cold_counts[0]:3d}, {cold_logins[0]} logins   (samples "
          f"{', '.join(f'{t * 1000:.0f}' for t in cold_times)} ms; vs openstacksdk "
          f"{sdk / cold:.1f}x)")
    print(f"openstacksdk, one process : {sdk * 1000:8.1f} ms   HTTP requests {sdk_requests:3d}"
          f", {sdk_logins} logins   (samples {', '.join(f'{t * 1000:.0f}' for t in sdk_samples)} ms)")
    print(f"our samples               : {', '.join(f'{t * 1000:.0f}' for t in state_times)} ms")
    print(f"openstack CLI, {len(cmds)} calls    : {cli * 1000:8.1f} ms   HTTP requests "
          f"{cli_requests:3d}   (no password check)")
    ratio = cli / states
    print(f"speed-up, records checked : {ratio:6.1f}x   (target >= {TARGET:.0f}x: "
          f"{'met' if ratio >= TARGET else 'NOT met'})")
    print(f"speed-up, whole salt-call : {cli / wall:6.1f}x   (salt-call start-up included "
          f"on our side only)")
    print(f"HTTP requests             : {cli_requests / counts[0]:6.1f}x fewer")
    ratio = sdk / states
    print(f"vs openstacksdk           : {ratio:6.1f}x faster, {sdk_requests} vs {counts[0]} "
          f"requests   (target >= {SDK_TARGET:.0f}x and fewer: "
          f"{'met' if ratio >= SDK_TARGET and counts[0] < sdk_requests else 'NOT met'})")


if __name__ == "__main__":
    main()
