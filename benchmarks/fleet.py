#!/usr/bin/env python3
"""Fleet rollout times: ``salt-run state.orchestrate nova.orch.deploy`` on a
real fleet (tests/fleet/fleet.py) with 1, 2 and 4 computes, the computes in
batches of 1 versus all at once, and the no-op rollout of each; then the
whole ``salt-call state.apply nova`` no-op on a compute-only host against
the controller's.

    .venv/bin/python benchmarks/fleet.py [--runs 3] [--name nfbench] [--keep] [--noop-only]

Each scenario starts from fresh computes (their hosts purged and started
again: a minion and nothing else) and a converged controller, so "rollout"
is what adding N computes costs; the controller's own first rollout is
printed once. No-op figures are medians of --runs samples. Targets
(issue 13): the no-op rollout grows with the number of batches, not of
hosts; the compute's salt-call no-op is at most 1/3 of the controller's.
Beside each host's no-op, Salt's floor there (the same salt-call applying
benchmarks/floor.sls) gives the formula's overhead on a real compute-only
host (issue 17: <= 0.3 s). ``--noop-only``: ctl, cmp1 and cmp2 rolled out
once, then only those salt-call figures.
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
FLOOR_SLS = "benchmarks.floor"  # benchmarks/floor.sls: the master serves the checkout


def rollout(nf):
    rc, steps, took = nf.orchestrate()
    bad = {sid: s["comment"] for sid, s in steps.items() if s["result"] is not True}
    if rc != 0 or bad:
        sys.exit(f"rollout failed ({rc}): {bad}")
    return took, steps


def salt_call_noop(fleet, host, sls="nova"):
    """(seconds, states, states' own seconds) of a whole ``salt-call
    state.apply SLS`` in ``host``, through the master (a no-op)."""
    start = time.monotonic()
    cp = fleet.run(host, ["/opt/salt/bin/salt-call", "--out=json", "state.apply", sls],
                   timeout=600)
    took = time.monotonic() - start
    ret = json.loads(cp.stdout)["local"]
    changed = [r["__id__"] for r in ret.values() if r.get("changes")]
    if changed or not all(r["result"] is True for r in ret.values()):
        sys.exit(f"{host}: the no-op apply was not one: changed {changed}")
    return took, len(ret), sum(r.get("duration", 0) for r in ret.values()) / 1000


def noop_calls(fleet, runs):
    """Per host: the whole no-op ``salt-call state.apply nova`` and Salt's floor
    (the same salt-call applying benchmarks/floor.sls, one test.nop),
    interleaved, medians of ``runs`` after one warm-up of each."""
    calls = {}
    for host in (CTL, "cmp1", "cmp2"):
        salt_call_noop(fleet, host, FLOOR_SLS)
        salt_call_noop(fleet, host)
        nova, floor = [], []
        for _ in range(runs):
            floor.append(salt_call_noop(fleet, host, FLOOR_SLS)[0])
            nova.append(salt_call_noop(fleet, host))
        calls[host] = {"whole": statistics.median(s[0] for s in nova), "states": nova[0][1],
                       "own": statistics.median(s[2] for s in nova),
                       "floor": statistics.median(floor),
                       "spread": (min(s[0] for s in nova), max(s[0] for s in nova))}
        calls[host]["overhead"] = calls[host]["whole"] - calls[host]["floor"]
    return calls


def print_calls(calls):
    ctl = calls[CTL]
    print("\n| `salt-call state.apply nova`, no-op, through the master | whole s (spread) | "
          "floor s | overhead s | states | states' own s | whole vs controller | "
          "overhead vs controller |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for host, what in ((CTL, "controller, init scripts"), ("cmp1", "compute, init scripts"),
                       ("cmp2", "compute, systemd")):
        c = calls[host]
        print(f"| {what} ({host}) | {c['whole']:.2f} ({c['spread'][0]:.2f}-{c['spread'][1]:.2f}) "
              f"| {c['floor']:.2f} | {c['overhead']:.2f} | {c['states']} | {c['own']:.2f} | "
              f"{c['whole'] / ctl['whole']:.2f} | {c['overhead'] / ctl['overhead']:.2f} |")
    print("\nfloor: the same salt-call applying benchmarks/floor.sls (one test.nop); "
          "overhead = whole - floor (issue 17: <= 0.3 s on a compute-only host)")
    print("target (issue 13): a compute's whole no-op <= 0.33 of the controller's")


def fresh(fleet, hosts):
    """``hosts`` as new machines: purged, started again, minions answering."""
    fleet.down(hosts, purge=True)
    fleet.up(hosts, systemd=[h for h in hosts if h in SYSTEMD])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--name", default="nfbench")
    ap.add_argument("--keep", action="store_true", help="leave the fleet running")
    ap.add_argument("--noop-only", action="store_true",
                    help="ctl, cmp1 and cmp2 rolled out once, then only the salt-call "
                         "no-op figures (no rollout scenarios)")
    ap.add_argument("--formula", default=REPO,
                    help="checkout the master serves (default: this one)")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]

    fleet = Fleet(name=args.name, formula=args.formula)
    fleet.down(purge=True)
    rows, calls, memory = [], {}, {}
    hosts = COMPUTES[:2] if args.noop_only else COMPUTES
    try:
        fleet.up([CTL] + hosts, systemd=SYSTEMD)
        fleet.support_up()
        nf = NovaFleet(fleet, computes=hosts[:2] if args.noop_only else hosts[:1])
        nf.prepare()
        first, _ = rollout(nf)
        print(f"controller + {len(nf.computes)} compute(s) from nothing: {first:.0f} s",
              flush=True)
        for n in () if args.noop_only else (1, 2, 4):
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
        if args.noop_only:
            rollout(nf)  # converged: the no-op figures need every host settled
        calls = noop_calls(fleet, args.runs)
        # memory of the rolled-out hosts (every process of each, PSS)
        memory = {host: fleet.memory(host) / 1024 for host in [CTL] + hosts}
    finally:
        if not args.keep:
            fleet.down(purge=True)

    print(f"\nfleet benchmark, {started}, load {load:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at the end, 2 cores, "
          f"{args.runs} samples per no-op (median)\n")
    if args.noop_only:
        print_calls(calls)
        print("\nPSS after the rollout, MiB: " + ", ".join(
            f"{host} {mib:.0f}" for host, mib in memory.items()))
        return
    print("| computes | batch | batches | rollout s | no-op rollout s | no-op s per batch |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, batch, batches, took, noop in rows:
        print(f"| {n} | {batch} | {batches} | {took:.0f} | {noop:.1f} | {noop / batches:.1f} |")
    all_at_once = {n: noop for n, batch, _, _, noop in rows if batch == n}
    print(f"\nno-op, all at once, 4 computes vs 1: {all_at_once[4] / all_at_once[1]:.2f}x "
          "(hosts x4, batches x1)")
    by_batch = {n: noop for n, batch, _, _, noop in rows if batch == 1}
    print(f"no-op, batch 1, 4 computes vs 1: {by_batch[4] / by_batch[1]:.2f}x (batches x4)")
    print_calls(calls)
    print("\nPSS after the rollout, MiB: " + ", ".join(
        f"{host} {mib:.0f}" for host, mib in memory.items())
          + " (ctl: salt-master, support layer and Nova's control plane; cmp2: systemd)")


if __name__ == "__main__":
    main()
