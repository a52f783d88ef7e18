#!/usr/bin/env python3
"""Benchmark: set 35 keys across 8 sections of Debian's nova.conf, then again (no-op).

Compares, in one run and on the same file and keys:
  * openstack_ini (this formula's engine), in-process;
  * the floor: a plain read + atomic write (temp, fsync, rename) of the file;
  * Salt's own ``ini.options_present`` state (in-process, through Salt's loader);
  * a crudini-per-key loop (what ``openstack-config`` does);
  * puppet-nova's ``nova_config`` ("Applied catalog in" time, start-up excluded).

Every peer is sampled --samples times (default 3), each on a fresh copy;
medians and spreads (min-max) are printed, the ratios are of the medians.

Usage: .venv/bin/python benchmarks/ini.py [--rounds 20] [--samples 3] [--skip-salt] [--skip-puppet]
Needs Debian's crudini, puppet and puppet-module-nova (installed on first run).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, HERE)

from harness import load_module  # noqa: E402

openstack_ini = load_module("modules", "openstack_ini")
inifile = load_module("utils", "openstack_inifile")

# The kind of keys the guide sets: DB connection, transport, authtoken, ratios, neutron.
KEYS = {
    "DEFAULT": {
        "transport_url": "rabbit://nova:RABBIT_PASS@controller:5672/", "my_ip": "10.0.0.11",
        "auth_strategy": "keystone", "cpu_allocation_ratio": "16.0", "ram_allocation_ratio": "1.5",
        "reserved_host_memory_mb": "512", "reserved_host_disk_mb": "0", "compute_driver": "libvirt.LibvirtDriver",
        "use_neutron": "true", "state_path": "/var/lib/nova",
    },
    "api_database": {"connection": "mysql+pymysql://nova:NOVA_DBPASS@controller/nova_api"},
    "database": {"connection": "mysql+pymysql://nova:NOVA_DBPASS@controller/nova", "max_retries": "-1"},
    "keystone_authtoken": {
        "www_authenticate_uri": "http://controller:5000/", "auth_url": "http://controller:5000/",
        "memcached_servers": "controller:11211", "auth_type": "password", "project_domain_name": "Default",
        "user_domain_name": "Default", "project_name": "service", "username": "nova", "password": "NOVA_PASS",
    },
    "placement": {
        "region_name": "RegionOne", "project_domain_name": "Default", "project_name": "service",
        "auth_type": "password", "user_domain_name": "Default", "auth_url": "http://controller:5000/v3",
        "username": "placement", "password": "PLACEMENT_PASS",
    },
    "neutron": {"auth_url": "http://controller:5000", "service_metadata_proxy": "true",
                "metadata_proxy_shared_secret": "METADATA_SECRET"},
    "glance": {"api_servers": "http://controller:9292"},
    "oslo_concurrency": {"lock_path": "/var/lib/nova/tmp"},
}
N_KEYS = sum(len(v) for v in KEYS.values())
assert N_KEYS == 35 and len(KEYS) == 8


def source_conf():
    from conftest import _debian_nova_common
    return os.path.join(_debian_nova_common(), "nova.conf")


def fresh(src, workdir, name="nova.conf"):
    path = os.path.join(workdir, name)
    shutil.copyfile(src, path)
    return path


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_ours(src, workdir, rounds):
    change, noop = [], []
    for _ in range(rounds):
        path = fresh(src, workdir)
        change.append(timed(lambda: openstack_ini.set_options(path, KEYS)))
        noop.append(timed(lambda: openstack_ini.set_options(path, KEYS)))
    return change, noop, path


def sampled(fn, src, workdir, samples):
    """``samples`` runs of a peer, each on a fresh copy in its own folder:
    (change times, no-op times, the last file)."""
    change, noop = [], []
    for i in range(samples):
        sub = os.path.join(workdir, f"sample-{fn.__name__}-{i}")
        os.makedirs(sub)
        one_change, one_noop, path = fn(src, sub)
        change.append(one_change)
        noop.append(one_noop)
    return change, noop, path


def med_spread(values):
    """'median (min-max)' in ms."""
    return (f"{statistics.median(values) * 1e3:.2f}ms "
            f"({min(values) * 1e3:.2f}-{max(values) * 1e3:.2f})")


def bench_floor(src, workdir, rounds):
    def read_write(path):
        with open(path, "rb") as fh:
            data = fh.read()
        fd, tmp = tempfile.mkstemp(dir=workdir)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, path)
    samples = []
    for _ in range(rounds):
        path = fresh(src, workdir, "floor.conf")
        samples.append(timed(lambda: read_write(path)))
    return statistics.median(samples)


def bench_salt(src, workdir):
    import salt.config
    import salt.loader

    opts = salt.config.minion_config(None)
    opts.update({"file_client": "local", "test": False, "cachedir": os.path.join(workdir, "salt-cache"),
                 "extension_modules": os.path.join(workdir, "salt-cache", "extmods")})
    utils = salt.loader.utils(opts)
    funcs = salt.loader.minion_mods(opts, utils=utils)
    states = salt.loader.states(opts, funcs, utils, {})
    path = fresh(src, workdir, "salt.conf")
    keys = salt_keys()
    scale = N_KEYS / sum(len(v) for v in keys.values())
    change = timed(lambda: states["ini.options_present"](path, sections=keys)) * scale
    noop = timed(lambda: states["ini.options_present"](path, sections=keys)) * scale
    return change, noop, path


SALT_KEYS = 35  # set by --salt-keys


def salt_keys():
    """The first SALT_KEYS keys, section by section (Salt's ini takes minutes
    for all 35; its time grows with the keys: it is scaled to 35)."""
    out, left = {}, SALT_KEYS
    for section, keys in KEYS.items():
        take = dict(list(keys.items())[:left])
        if take:
            out[section] = take
        left -= len(take)
    return out


def bench_crudini(src, workdir):
    path = fresh(src, workdir, "crudini.conf")

    def loop():
        for section, keys in KEYS.items():
            for key, value in keys.items():
                subprocess.run(["crudini", "--set", path, section, key, value], check=True)
    return timed(loop), timed(loop), path


def bench_puppet(src, workdir):
    """nova_config writes /etc/nova/nova.conf: run puppet in a private mount
    namespace where /etc/nova is a bind mount of a scratch folder."""
    etc = os.path.join(workdir, "puppet-etc")
    os.makedirs(etc)
    fresh(src, etc)
    manifest = os.path.join(workdir, "bench.pp")
    with open(manifest, "w") as fh:
        for section, keys in KEYS.items():
            for key, value in keys.items():
                secret = "true" if inifile.is_secret(key) else "false"
                fh.write(f"nova_config {{ '{section}/{key}': value => '{value}', secret => {secret} }}\n")
    created = not os.path.isdir("/etc/nova")
    os.makedirs("/etc/nova", exist_ok=True)
    # the module path of benchmarks/puppet.py: puppet-module-rabbitmq left out
    # (its fact runs `rabbitmqctl status`, which can hang for minutes)
    from puppet import modulepath
    mods = modulepath(workdir)
    script = (f"mount --bind {etc} /etc/nova && "
              f"puppet apply --modulepath={mods} --color=false {manifest}")
    results = []
    try:
        for _ in range(2):  # change, then no-op
            out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
            found = re.search(r"Applied catalog in ([0-9.]+) seconds", out.stdout + out.stderr)
            if not found:
                raise RuntimeError("puppet apply failed:\n" + out.stdout[-2000:] + out.stderr[-2000:])
            results.append(float(found.group(1)))
    finally:
        if created:
            os.rmdir("/etc/nova")
    return results[0], results[1], os.path.join(etc, "nova.conf")


def lines_outside_keys(before, after):
    """Changed lines (git diff) that are not one of the 35 key lines."""
    out = subprocess.run(["git", "diff", "--no-index", "--unified=0", before, after],
                         capture_output=True, text=True).stdout
    wanted = {k for keys in KEYS.values() for k in keys}
    stray = []
    for line in out.splitlines():
        if line[:1] in "+-" and not line.startswith(("+++", "---")):
            key = line[1:].split("=")[0].strip()
            if key not in wanted:
                stray.append(line)
    return stray


def ensure_tools(need_puppet):
    missing = [p for p, exe in (("crudini", "crudini"), ("puppet", "puppet")) if not shutil.which(exe)]
    if need_puppet and not os.path.isdir("/usr/share/puppet/modules/nova"):
        missing.append("puppet-module-nova")
    if not need_puppet and "puppet" in missing:
        missing.remove("puppet")
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing, check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--samples", type=int, default=3, help="runs of each peer (>= 3)")
    parser.add_argument("--salt-keys", type=int, default=7,
                        help="keys per sample for Salt's ini (its time scaled to 35)")
    parser.add_argument("--skip-salt", action="store_true")
    parser.add_argument("--skip-puppet", action="store_true")
    args = parser.parse_args()
    global SALT_KEYS
    SALT_KEYS = min(args.salt_keys, N_KEYS)
    ensure_tools(not args.skip_puppet)
    src = source_conf()
    size = os.path.getsize(src)
    with tempfile.TemporaryDirectory() as workdir:
        ours_changes, ours_noops, ours_path = bench_ours(src, workdir, args.rounds)
        ours_change, ours_noop = statistics.median(ours_changes), statistics.median(ours_noops)
        floor = bench_floor(src, workdir, args.rounds)
        stray = lines_outside_keys(src, ours_path)
        rows = [("openstack_ini (this formula)", ours_changes, ours_noops, "", "")]
        peers = [("crudini loop (openstack-config)", bench_crudini)]
        if not args.skip_salt:
            peers.append(("salt ini.options_present", bench_salt))
        if not args.skip_puppet:
            peers.append(("puppet-nova nova_config", bench_puppet))
        blank_loss = {}
        for name, fn in peers:
            changes, noops, path = sampled(fn, src, workdir, args.samples)
            change, noop = statistics.median(changes), statistics.median(noops)
            if fn is bench_salt and SALT_KEYS < N_KEYS:
                name += f" ({SALT_KEYS} keys, scaled)"
            rows.append((name, changes, noops, f"{change / ours_change:,.0f}x",
                         f"{noop / ours_noop:,.0f}x"))
            blank_loss[name] = sum(1 for line in open(src) if not line.strip()) - sum(
                1 for line in open(path) if not line.strip())
    load = open("/proc/loadavg").read().split()[:3]
    print(f"\nbenchmarks/ini.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, load {' '.join(load)} (after)")
    print(f"nova.conf: {size:,} bytes, {sum(1 for _ in open(src)):,} lines; {N_KEYS} keys in "
          f"{len(KEYS)} sections; openstack_ini: {args.rounds} rounds, every peer: "
          f"{args.samples} samples (all {N_KEYS} keys each; Salt's ini: the first "
          f"{SALT_KEYS} keys per sample, its times scaled x{N_KEYS / SALT_KEYS:.1f} to "
          f"{N_KEYS}); median (min-max); ratios of medians, same run")
    print("| tool | change | no-op | change ratio | no-op ratio |\n|---|---:|---:|---:|---:|")
    for name, changes, noops, r1, r2 in rows:
        print(f"| {name} | {med_spread(changes)} | {med_spread(noops)} | {r1} | {r2} |")
    print(f"| floor: read + atomic write | {floor * 1e3:.2f}ms | | "
          f"ours/floor {ours_change / floor:.1f}x | |")
    print(f"lines changed outside the {N_KEYS} keys by openstack_ini: {len(stray)}")
    for name, lost in blank_loss.items():
        print(f"blank lines lost by {name}: {lost}")
    print(f"targets: >=1000x salt ini, >=200x crudini, >=30x puppet on change; no-op <= 5 ms "
          f"({'met' if ours_noop <= 0.005 else 'MISSED'}: {ours_noop * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
