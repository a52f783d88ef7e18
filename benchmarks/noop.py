#!/usr/bin/env python3
"""The formula's own cost of a no-op apply, against Salt's floor, in one run.

Formula overhead = median wall time of a no-op ``salt-call --local
state.apply nova`` minus the median of the same salt-call applying an SLS
that holds one ``test.nop`` (Salt's own floor: start-up, grains, pillar,
loader, output), with the same minion config, runs interleaved so both see
the same machine load. Printed per role:

  * the two medians (and spreads), the overhead and its target;
  * a per-state profile: each state's median duration (from the state
    return's ``duration``), the slowest first, those over 150 ms flagged;
  * the render time of ``map.jinja`` + the plan (``state.show_sls`` of an SLS
    that imports map.jinja and holds one test.nop, minus show_sls of the
    floor) and of all of ``nova`` (show_sls nova minus the floor).

Roles:
  aio      the all-in-one pillar (tests/support/aio.sh), a real no-op: the AIO
           must be deployed and converged (a run that changes anything stops
           the benchmark).
  compute  the same pillar with ``roles: [compute]`` (the AIO host stays
           the fleet's controller by name only), a real no-op too: a
           compute-only node's nova.conf carries no database URLs, so this
           role's config files are copies of the AIO's (nova:lookup:files
           points at them, under the benchmark's own folder), converged once
           by a first apply (which restarts the AIO's nova-compute once: it
           watches them), then measured like the all-in-one. The all-in-one's
           own files are never written. A compute-only host of a real fleet,
           through its master: benchmarks/fleet.py.

Targets (issue 17): overhead <= 1.0 s (aio), <= 0.3 s (compute); no state
over 150 ms.

Usage (root, AIO deployed):
    .venv/bin/python benchmarks/noop.py [--runs 5] [--roles aio,compute]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE_DIR = os.environ.get("FTEST_STATE_DIR", "/var/lib/nova-formula-tests")
AIO_DIR = os.path.join(STATE_DIR, "aio")
BENCH_DIR = os.path.join(STATE_DIR, "bench-noop")
SALT_CALL = os.path.join(REPO, ".venv", "bin", "salt-call")
TARGETS = {"aio": 1.0, "compute": 0.3}
STATE_TARGET_MS = 150.0

with open(os.path.join(REPO, "benchmarks", "floor.sls")) as _fh:
    FLOOR_SLS = _fh.read()  # one test.nop, shared with benchmarks/fleet.py
MAP_SLS = ('{%- from "nova/map.jinja" import nova with context %}\n'
           "map-rendered:\n  test.nop:\n    - name: {{ nova.plan.concerns|length }}\n")


def setup(role):
    """A minion config for ``role``: the AIO's, plus a file root holding the
    floor SLS, and (compute) its own pillar. Root-only: the pillar holds
    secrets."""
    base = os.path.join(BENCH_DIR, role)
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(os.path.join(base, "conf"), mode=0o700)
    os.chmod(BENCH_DIR, 0o700)
    with open(os.path.join(AIO_DIR, "conf", "minion")) as fh:
        opts = yaml.safe_load(fh)
    sls_root = os.path.join(base, "sls")
    os.makedirs(sls_root)
    for name, text in (("nova_bench_floor.sls", FLOOR_SLS), ("nova_bench_map.sls", MAP_SLS)):
        with open(os.path.join(sls_root, name), "w") as fh:
            fh.write(text)
    opts["file_roots"] = {"base": list(opts["file_roots"]["base"]) + [sls_root]}
    opts["log_file"] = os.path.join(base, "minion.log")
    if role == "compute":
        pillar_dir = os.path.join(base, "pillar")
        os.makedirs(pillar_dir, mode=0o700)
        shutil.copy(os.path.join(AIO_DIR, "pillar", "top.sls"), pillar_dir)
        with open(os.path.join(AIO_DIR, "pillar", "nova.sls")) as fh:
            pillar = yaml.safe_load(fh)
        nova = pillar["nova"]
        nova["roles"] = ["compute"]
        fleet = nova.setdefault("fleet", {})
        fleet.update({"controllers": ["nova-bench-ctl"], "computes": [opts["id"]]})
        for key in ("conductors", "sync_conductor", "database", "identity"):
            fleet.pop(key, None)
        # its own copies of the config files, which the first apply converges
        etc = os.path.join(base, "etc")
        os.makedirs(etc, mode=0o750)
        files = {}
        for key, path in (("nova_conf", "/etc/nova/nova.conf"),
                          ("compute_conf", "/etc/nova/nova-compute.conf")):
            if os.path.exists(path):
                files[key] = os.path.join(etc, os.path.basename(path))
                shutil.copy2(path, files[key])
        nova.setdefault("lookup", {}).setdefault("files", {}).update(files)
        fd = os.open(os.path.join(pillar_dir, "nova.sls"), os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(pillar, fh)
        opts["pillar_roots"] = {"base": [pillar_dir]}
    with open(os.path.join(base, "conf", "minion"), "w") as fh:
        yaml.safe_dump(opts, fh)
    return os.path.join(base, "conf")


def salt_call(conf, *args):
    """(wall seconds, parsed JSON 'local') of one salt-call."""
    cmd = [SALT_CALL, "--local", "-c", conf, "--out=json", "-l", "quiet"] + list(args)
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - start
    try:
        data = json.loads(proc.stdout)["local"]
    except (ValueError, KeyError):
        sys.exit(f"salt-call {' '.join(args)} gave no JSON (exit {proc.returncode}): "
                 f"{proc.stderr[-1500:]}")
    return took, data


def spread(values):
    return f"{min(values):.2f}-{max(values):.2f}"


def bench_role(role, runs):
    conf = setup(role)
    floor, nova, profile = [], [], {}
    show_floor, show_map, show_nova = [], [], []
    salt_call(conf, "state.apply", "nova_bench_floor")  # warm the caches once
    salt_call(conf, "state.apply", "nova")  # (compute: converges its copies)
    for _ in range(runs):
        took, data = salt_call(conf, "state.apply", "nova_bench_floor")
        floor.append(took)
        took, data = salt_call(conf, "state.apply", "nova")
        if not isinstance(data, dict):
            sys.exit(f"state.apply nova failed: {str(data)[:1500]}")
        nova.append(took)
        failed = [r.get("__id__", k) for k, r in data.items() if r.get("result") is False]
        if failed:
            sys.exit(f"states failed: {', '.join(failed)}")
        changed = [r.get("__id__", k) for k, r in data.items() if r.get("changes")]
        if changed:
            sys.exit(f"not a no-op: changed {', '.join(changed)} (converge the AIO first)")
        for key, ret in data.items():
            profile.setdefault(ret.get("__id__", key), []).append(float(ret.get("duration", 0)))
    for _ in range(runs):
        show_floor.append(salt_call(conf, "state.show_sls", "nova_bench_floor")[0])
        show_map.append(salt_call(conf, "state.show_sls", "nova_bench_map")[0])
        show_nova.append(salt_call(conf, "state.show_sls", "nova")[0])

    med = statistics.median
    overhead = med(nova) - med(floor)
    states_ms = {k: med(v) for k, v in profile.items()}
    total_states = sum(states_ms.values()) / 1000
    slow = {k: v for k, v in states_ms.items() if v > STATE_TARGET_MS}
    print(f"\n## {role}: {len(states_ms)} states (no-op)")
    print(f"| measure | median s | spread s (n={runs}) |\n|---|---:|---|")
    print(f"| state.apply nova | {med(nova):.2f} | {spread(nova)} |")
    print(f"| state.apply nova_bench_floor (one test.nop) | {med(floor):.2f} | {spread(floor)} |")
    print(f"| **formula overhead** (difference) | **{overhead:.2f}** | target <= "
          f"{TARGETS[role]} s: {'met' if overhead <= TARGETS[role] else 'NOT met'} |")
    print(f"| the states' own time (sum of median durations) | {total_states:.2f} | |")
    print(f"| render map.jinja + plan (show_sls map minus floor) | "
          f"{med(show_map) - med(show_floor):.2f} | |")
    print(f"| render all of nova (show_sls nova minus floor) | "
          f"{med(show_nova) - med(show_floor):.2f} | |")
    print(f"| ratio nova / floor | {med(nova) / med(floor):.2f}x | same run |")
    print(f"\nslowest states (median ms over {runs} runs; target <= {STATE_TARGET_MS:.0f} ms):")
    for name, ms in sorted(states_ms.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {ms:8.1f}  {name}{'  <-- over target' if ms > STATE_TARGET_MS else ''}")
    return {"role": role, "overhead": overhead, "slow": slow}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--roles", default="aio,compute")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the AIO minion config and pillar are root-only)")
    if not os.path.exists(os.path.join(AIO_DIR, "conf", "minion")):
        sys.exit("no AIO minion config: run `bash tests/support/aio.sh` first")
    load = open("/proc/loadavg").read().split()[:3]
    print(f"benchmarks/noop.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, load average {' '.join(load)} (before); "
          f"medians of {args.runs}")
    try:
        results = [bench_role(role, args.runs) for role in args.roles.split(",")]
    finally:
        shutil.rmtree(BENCH_DIR, ignore_errors=True)  # it holds a copy of the pillar
    load = open("/proc/loadavg").read().split()[:3]
    print(f"\nload average after: {' '.join(load)}")
    missed = [r["role"] for r in results if r["overhead"] > TARGETS[r["role"]] or r["slow"]]
    print("(absolute figures follow the machine's load, printed above; the differences "
          "and ratios are measured in the same run, interleaved)")
    print("targets: " + ("met" if not missed else f"NOT met for {', '.join(missed)}"))


if __name__ == "__main__":
    main()
