#!/usr/bin/env python3
"""puppet-nova beside this formula, on the same converged all-in-one, in one run.

puppet: Debian's ``puppet`` (7.23) and ``puppet-module-nova`` (21.0.0, Zed)
with the modules it depends on, installed with apt when missing (the only
thing this script installs). ``puppet-module-rabbitmq`` is kept OUT of the
module path (a folder of links to the other modules): its fact runs
``rabbitmqctl status``, which hung 300 s here.

The manifest declares the classes for the all-in-one's roles with the
all-in-one pillar's values (nova, nova::db, nova::keystone::authtoken,
nova::api, nova::scheduler, nova::conductor, nova::compute, nova::placement,
nova::network::neutron), then nova::db::mysql and nova::keystone::auth for
the same database and Keystone records; ``puppet apply --noop`` of it against
the converged all-in-one (nothing is changed). Printed per sample: the
"Compiled catalog" and "Applied catalog" times puppet reports and the wall
time of the whole process; beside it the whole no-op ``salt-call --local
state.apply nova`` (interleaved, same load). Classes puppet failed on are
named (and then left out in a second manifest, so the rest is timed too).

Target (issue 17): ours <= 1/3 of puppet's whole run.

Usage (root, AIO deployed):  .venv/bin/python benchmarks/puppet.py [--runs 3]
Nothing secret is printed: the manifest (it holds the pillar's passwords) is
written 0600 in a root-only folder and removed at the end.
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

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AIO_DIR = "/var/lib/nova-formula-tests/aio"
MODULES = "/usr/share/puppet/modules"
PACKAGES = ["puppet", "puppet-module-nova"]
LEFT_OUT = {"rabbitmq"}
CLOUDS = "/etc/openstack/clouds.yaml"
CLASS_RE = re.compile(r"Stage\[main\]/([A-Z][\w:]*)")


def ensure_puppet():
    missing = [p for p in PACKAGES if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True
    ).stdout.strip() != "install ok installed"]
    if missing:
        print(f"installing with apt: {' '.join(missing)}", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300",
                        "--no-install-recommends"] + missing, check=True, timeout=1800,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       stdout=subprocess.DEVNULL)
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "puppet-module-nova"],
                             capture_output=True, text=True).stdout
    return version


def modulepath(work):
    path = os.path.join(work, "modules")
    os.makedirs(path)
    for name in sorted(os.listdir(MODULES)):
        if name not in LEFT_OUT:
            os.symlink(os.path.join(MODULES, name), os.path.join(path, name))
    return path


def q(value):
    """A Puppet single-quoted string."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def manifest(skip=()):
    with open(os.path.join(AIO_DIR, "pillar", "nova.sls")) as fh:
        nova = yaml.safe_load(fh)["nova"]
    db, mq, ks = nova["database"], nova["messaging"], nova["identity"]
    pl, nt = nova["placement"], nova["network"]["neutron"]
    from urllib.parse import quote
    db_url = (f"{db['driver']}://{db['user']}:{quote(str(db['password']), safe='')}@"
              f"{db['host']}/{{}}")
    mq_url = (f"rabbit://{mq['user']}:{quote(str(mq['password']), safe='')}@"
              f"{mq['host']}:{mq['port']}/{mq['virtual_host']}")
    classes = {
        "nova": {"default_transport_url": mq_url, "lock_path": "/var/lib/nova/tmp"},
        "nova::db": {"database_connection": db_url.format(db["name"]),
                     "api_database_connection": db_url.format(db["api_name"])},
        "nova::keystone::authtoken": {
            "password": ks["password"], "username": ks["user"], "project_name": ks["project"],
            "auth_url": ks["auth_url"], "www_authenticate_uri": ks["www_authenticate_uri"]},
        "nova::api": {"api_bind_address": nova["api"]["bind_host"],
                      "metadata_listen": nova["metadata"]["bind_host"],
                      "osapi_compute_workers": nova["api"]["workers"],
                      "metadata_workers": nova["metadata"]["workers"]},
        "nova::scheduler": {},
        "nova::conductor": {},
        "nova::compute": {"vncproxy_host": nova["console"]["proxy_host"]},
        "nova::placement": {"password": pl["password"], "auth_url": pl["auth_url"],
                            "region_name": pl["region"], "username": pl["user"],
                            "project_name": pl["project"]},
        "nova::network::neutron": {"password": nt["password"], "auth_url": nt["auth_url"],
                                   "region_name": nt["region"], "username": nt["user"],
                                   "project_name": nt["project"]},
        "nova::db::mysql": {"password": db["password"], "host": db["host"],
                            "allowed_hosts": db["grant_hosts"]},
        "nova::keystone::auth": {
            "password": ks["password"], "auth_name": ks["user"], "tenant": ks["project"],
            "region": ks["region"], "public_url": ks["endpoints"]["public"],
            "internal_url": ks["endpoints"]["internal"], "admin_url": ks["endpoints"]["admin"],
            "roles": [ks["role"], ks["service_role"]]},
    }
    lines = []
    for name, params in classes.items():
        if name in skip:
            continue
        body = ",\n".join(f"  {k} => {('[' + ', '.join(q(x) for x in v) + ']') if isinstance(v, list) else q(v)}"
                          for k, v in params.items())
        lines.append(f"class {{ {q(name)}:\n{body}\n}}")
    return "\n".join(lines) + "\n", list(classes)


def admin_env():
    """The admin credentials for puppet-keystone's providers (environment, never argv)."""
    with open(CLOUDS) as fh:
        auth = yaml.safe_load(fh)["clouds"]["nova-formula-admin"]["auth"]
    # puppet-keystone's providers ask for a system-scoped token (Keystone's
    # bootstrap gives the admin user the admin role on the system)
    return dict(os.environ, OS_AUTH_URL=auth["auth_url"], OS_USERNAME=auth["username"],
                OS_PASSWORD=auth["password"], OS_SYSTEM_SCOPE="all",
                OS_USER_DOMAIN_NAME=auth.get("user_domain_name", "Default"),
                OS_IDENTITY_API_VERSION="3", OS_INTERFACE="public")


def puppet_run(work, mods, text, env):
    path = os.path.join(work, "site.pp")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    cmd = ["puppet", "apply", "--noop", "--modulepath", mods, "--color=false",
           "--vardir", os.path.join(work, "var"), "--logdest", "console", path]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    whole = time.monotonic() - start
    out = proc.stdout + proc.stderr
    compiled = re.search(r"Compiled catalog for \S+ in environment \S+ in ([\d.]+) seconds", out)
    applied = re.search(r"Applied catalog in ([\d.]+) seconds", out)
    # Facter's own complaints (it cannot read /proc/1/environ in this
    # container) are not errors of the catalog
    errors = [ln for ln in out.splitlines()
              if ln.startswith("Error") and not ln.startswith("Error: Facter")]
    failed = sorted({m.group(1).lower() for ln in errors for m in [CLASS_RE.search(ln)] if m})
    return {"whole": whole, "compiled": float(compiled.group(1)) if compiled else None,
            "applied": float(applied.group(1)) if applied else None,
            "errors": len(errors), "failed": failed,
            "first_error": errors[0][:300] if errors else ""}


def mask(text, env):
    """``text`` with the pillar's and the admin's passwords replaced."""
    with open(os.path.join(AIO_DIR, "pillar", "nova.sls")) as fh:
        raw = fh.read()
    secrets_ = set(re.findall(r"(?:password|metadata_secret): *['\"]?([^'\"\n]+)", raw))
    secrets_.add(env["OS_PASSWORD"])
    for value in sorted(secrets_, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


def ours():
    conf = os.path.join(AIO_DIR, "conf")
    start = time.monotonic()
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "salt-call"), "--local", "-c",
                           conf, "--out=quiet", "-l", "quiet", "state.apply", "nova"],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        sys.exit("our no-op apply failed: " + proc.stderr[-1500:])
    return time.monotonic() - start


def fmt(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    return f"{statistics.median(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    if not os.path.exists(os.path.join(AIO_DIR, "conf", "minion")):
        sys.exit("no AIO: run `bash tests/support/aio.sh` first")
    version = ensure_puppet()
    puppet_v = subprocess.run(["puppet", "--version"], capture_output=True, text=True).stdout
    load = open("/proc/loadavg").read().split()[:3]
    print(f"benchmarks/puppet.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, load {' '.join(load)}; puppet {puppet_v.strip()}, "
          f"puppet-module-nova {version}; modules left out: {', '.join(sorted(LEFT_OUT))}")
    work = tempfile.mkdtemp(prefix="nova-bench-puppet-")
    os.chmod(work, 0o700)
    try:
        mods, env = modulepath(work), admin_env()
        text, classes = manifest()
        probe = puppet_run(work, mods, text, env)  # also warms puppet's caches
        skip = probe["failed"]
        if skip:
            print(f"puppet failed on: {', '.join(skip)} ({probe['errors']} errors, first: "
                  f"{mask(probe['first_error'], env)}); timing the other classes")
            text, _ = manifest(skip)
        elif probe["errors"]:
            print(f"puppet reported {probe['errors']} errors, first: "
                  f"{mask(probe['first_error'], env)}")
        print(f"classes timed: {', '.join(c for c in classes if c not in skip)}")
        pup, our = [], []
        for _ in range(args.runs):
            pup.append(puppet_run(work, mods, text, env))
            our.append(ours())
        errs = sorted({e for r in pup for e in r["failed"]})
        print(f"\n| measure (median, spread; n={args.runs}) | seconds |\n|---|---:|")
        print(f"| puppet: Compiled catalog | {fmt([r['compiled'] for r in pup])} |")
        print(f"| puppet: Applied catalog (--noop) | {fmt([r['applied'] for r in pup])} |")
        print(f"| puppet: whole process | {fmt([r['whole'] for r in pup])} |")
        print(f"| ours: whole no-op salt-call state.apply nova | {fmt(our)} |")
        ratio = statistics.median(our) / statistics.median([r["whole"] for r in pup])
        print(f"| **ours / puppet whole** | **{ratio:.2f}** (target <= 0.33: "
              f"{'met' if ratio <= 1 / 3 else 'NOT met'}) |")
        if errs:
            print(f"puppet errors in the timed runs, classes: {', '.join(errs)}")
        load = open("/proc/loadavg").read().split()[:3]
        print(f"load after: {' '.join(load)} (re-take on a quiet machine; the ratio is "
              "from the same run, interleaved)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
