#!/usr/bin/env python3
"""Fleet rollout times: ``salt-run state.orchestrate nova.orch.deploy`` on a
real fleet (tests/fleet/fleet.py) with 1, 2 and 4 computes, the computes in
batches of 1 versus all at once, and the no-op rollout of each; then the
whole ``salt-call state.apply nova`` no-op on a compute-only host against
the controller's.

    .venv/bin/python benchmarks/fleet.py [--runs 3] [--name nfbench] [--keep]

Each scenario starts from fresh computes (their hosts purged and started
again: a minion and nothing else) and a converged controller, so "rollout"
is what adding N computes costs; the controller's own first rollout is
printed once. No-op figures are medians of --runs samples. Targets
(issue 13): the no-op rollout grows with the number of batches, not of
hosts; the compute's salt-call no-op is at most 1/3 of the controller's.
The fleet (ctl + cmp1..cmp4, ~1.8 GiB) is torn down at the end unless --keep.
"""
import argparse
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "fleet"))

from fleet import Fleet
from nova_fleet import CTL, NovaFleet, changed_minions

COMPUTES = ["cmp1", "cmp2", "cmp3", "cmp4"]
SYSTEMD = ["cmp2"]  # Salt's systemd_service path; the others use init scripts


def rollout(nf):
    rc, steps, took = nf.orchestrate()
    bad = {sid: s["comment"] for sid, s in steps.items() if s["result"] is not True}
    if rc != 0 or bad:
        sys.exit(f"rollout failed ({rc}): {bad}")
    return took, steps


def salt_call_noop(fleet, host):
    """Seconds of a whole ``salt-call state.apply nova`` in ``host`` (no-op)."""
    start = time.monotonic()
    cp = fleet.run(host, ["/opt/salt/bin/salt-call", "--out=json", "state.apply", "nova"],
                   timeout=600)
    took = time.monotonic() - start
    ret = json.loads(cp.stdout)["local"]
    changed = [r["__id__"] for r in ret.values() if r.get("changes")]
    if changed or not all(r["result"] is True for r in ret.values()):
        sys.exit(f"{host}: the no-op apply was not one: changed {changed}")
    return took, len(ret), sum(r.get("duration", 0) for r in ret.values()) / 1000


def fresh(fleet, hosts):
    """``hosts`` as new machines: purged, started again, minions answering."""
    fleet.down(hosts, purge=True)
    fleet.up(hosts, systemd=[h for h in hosts if h in SYSTEMD])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--name", default="nfbench")
    ap.add_argument("--keep", action="store_true", help="leave the fleet running")
    ap.add_argument("--formula", default=REPO,
                    help="checkout the master serves (default: this one)")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]

    fleet = Fleet(name=args.name, formula=args.formula)
    fleet.down(purge=True)
    rows, calls, memory = [], {}, {}
    try:
        fleet.up([CTL] + COMPUTES, systemd=SYSTEMD)
        fleet.support_up()
        nf = NovaFleet(fleet, computes=COMPUTES[:1])
        nf.prepare()
        first, _ = rollout(nf)
        print(f"controller + 1 compute from nothing: {first:.0f} s", flush=True)
        for n in (1, 2, 4):
            for batch in sorted({1, n}):
                hosts = COMPUTES[:n]
                fresh(fleet, hosts)
                nf.computes, nf.fleet_pillar["batch"] = hosts, batch
                nf.write_pillar()
                took, steps = rollout(nf)
                noops = []
                for _ in range(args.runs):
                    t, steps = rollout(nf)
                    if changed_minions(steps):
                        sys.exit(f"no-op rollout changed {changed_minions(steps)}")
                    noops.append(t)
                batches = -(-n // batch)
                rows.append((n, batch, batches, took, statistics.median(noops)))
                print(f"{n} computes, batch {batch}: rollout {took:.0f} s, "
                      f"no-op {statistics.median(noops):.1f} s {[round(t, 1) for t in noops]}",
                      flush=True)
        for host in (CTL, "cmp1", "cmp2"):
            samples = [salt_call_noop(fleet, host) for _ in range(args.runs + 1)][1:]
            calls[host] = (statistics.median(s[0] for s in samples), samples[0][1],
                           statistics.median(s[2] for s in samples))
        # memory of the rolled-out hosts (every process of each, PSS)
        memory = {host: fleet.memory(host) / 1024 for host in [CTL] + COMPUTES}
    finally:
        if not args.keep:
            fleet.down(purge=True)

    print(f"\nfleet benchmark, {started}, load {load:.2f} at start, 2 cores, "
          f"{args.runs} samples per no-op (median)\n")
    print("| computes | batch | batches | rollout s | no-op rollout s | no-op s per batch |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, batch, batches, took, noop in rows:
        print(f"| {n} | {batch} | {batches} | {took:.0f} | {noop:.1f} | {noop / batches:.1f} |")
    all_at_once = {n: noop for n, batch, _, _, noop in rows if batch == n}
    print(f"\nno-op, all at once, 4 computes vs 1: {all_at_once[4] / all_at_once[1]:.2f}x "
          "(hosts x4, batches x1)")
    by_batch = {n: noop for n, batch, _, _, noop in rows if batch == 1}
    print(f"no-op, batch 1, 4 computes vs 1: {by_batch[4] / by_batch[1]:.2f}x (batches x4)")
    print("\n| salt-call state.apply nova, no-op | whole s | states | states' own s | "
          "vs controller |")
    print("|---|---:|---:|---:|---:|")
    for host, what in ((CTL, "controller, init scripts"), ("cmp1", "compute, init scripts"),
                       ("cmp2", "compute, systemd")):
        took, n, own = calls[host]
        print(f"| {what} ({host}) | {took:.2f} | {n} | {own:.2f} | "
              f"{took / calls[CTL][0]:.2f} |")
    print("\ntarget: a compute's whole no-op <= 0.33 of the controller's")
    print("\nPSS after the rollout, MiB: " + ", ".join(
        f"{host} {mib:.0f}" for host, mib in memory.items())
          + " (ctl: salt-master, support layer and Nova's control plane; cmp2: systemd)")


if __name__ == "__main__":
    main()
