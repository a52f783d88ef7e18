#!/usr/bin/env python3
"""End-to-end timings of the all-in-one deploy (tests/support/aio.sh), on this
machine, printed against their targets (never asserted in a test).

Steps, each timed:
  1. aio.sh reset-nova             remove any earlier Nova (not counted)
  2. aio.sh prepare                venv, support packages/services, pillar (not counted)
  3. state.apply nova.packages     the nova-* install by the formula
  4. state.apply nova              everything else: DBs, Keystone, config, DB sync,
                                   services, host discovery
  5. check --boot                  compute services up, hypervisor, a server ACTIVE
  6. state.apply nova again        the no-op run (zero changes, nothing restarted)

"packages installed -> server ACTIVE" is 4 + 5. Targets (2 cores): <= 120 s;
no-op apply <= 10 s and <= 1/5 of the first apply (3 + 4).

Usage (root, Debian 12):  .venv/bin/python benchmarks/e2e.py
Leaves the all-in-one deployed (it is the README's main job).
"""
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AIO = os.path.join(REPO, "tests", "support", "aio.sh")
AIO_DIR = "/var/lib/nova-formula-tests/aio"
HELPER = ["/usr/bin/python3", os.path.join(REPO, "tests", "support", "aio_helper.py")]


def run(cmd, what):
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return took, proc.stdout


def salt_apply(sls, what):
    """aio.sh apply --sls SLS: the AIO minion config, policy-rc.d held."""
    took, _ = run(["bash", AIO, "apply", "--sls", sls], what)
    with open(os.path.join(AIO_DIR, "last-apply.json")) as fh:
        data = json.load(fh)["local"]
    changed = sum(1 for r in data.values() if r.get("changes"))
    return took, len(data), changed


def main():
    print(f"benchmarks/e2e.py on {os.cpu_count()} cores")
    run(["bash", AIO, "reset-nova"], "aio.sh reset-nova")
    run(["bash", AIO, "prepare"], "aio.sh prepare")

    t_pkg, _, _ = salt_apply("nova.packages", "state.apply nova.packages")
    t_first, n_first, c_first = salt_apply("nova", "state.apply nova (first)")
    t_check, out = run(HELPER + ["check", "--boot"], "check --boot")
    t_noop, n_noop, c_noop = salt_apply("nova", "state.apply nova (no-op)")

    to_active = t_first + t_check
    first_total = t_pkg + t_first
    rows = [
        ("nova-* packages installed (formula)", t_pkg, ""),
        (f"first state.apply nova ({n_first} states, {c_first} changed)", t_first, ""),
        ("services up, hypervisor, server ACTIVE", t_check, ""),
        ("packages installed -> server ACTIVE", to_active,
         f"target <= 120 s: {to_active / 120:.2f} of budget"),
        (f"no-op state.apply nova ({n_noop} states, {c_noop} changed)", t_noop,
         f"target <= 10 s: {t_noop / 10:.2f} of budget; "
         f"{t_noop / first_total:.3f} of the first apply (target <= 0.2)"),
    ]
    print(f"\n| step | seconds | vs target |\n|---|---:|---|")
    for name, secs, note in rows:
        print(f"| {name} | {secs:.1f} | {note} |")
    print("\n" + out.strip())
    if c_noop:
        sys.exit("the second apply changed something: not idempotent")


if __name__ == "__main__":
    main()
