"""``state.apply nova.clean`` on the real all-in-one: deploy, clean (data
included), a listing shows nothing of Nova left, a dry run on the bare host
lists every pending step without failing, deploy again through a real
salt-master and minion (the orchestrate), a server boots.

Runs after tests/test_e2e.py (which leaves the all-in-one deployed) and
leaves it deployed for the tests after it.
"""
import glob
import json
import os
import re
import subprocess

import pymysql
import pytest

from test_e2e import (HELPER, ORCH_STEPS, aio, apply, check, nova_pids, openstack_json,
                      orchestrate_changes, orchestrate_deploy, orchestrate_failures)

NOVA_PKGS = ("nova-api", "nova-scheduler", "nova-conductor", "nova-compute", "nova-common",
             "python3-nova", "nova-compute-kvm", "nova-consoleproxy")
DATABASES = ("nova", "nova_api", "nova_cell0")


def installed(pkg):
    out = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg],
                         capture_output=True, text=True).stdout
    return out == "installed"


def root_db(sql, args=None):
    conn = pymysql.connect(unix_socket="/run/mysqld/mysqld.sock", user="root")
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def nova_left():
    """Everything of Nova this listing can find on the machine."""
    left = [p for p in NOVA_PKGS if installed(p)]
    left += [p for p in ("/etc/nova", "/var/lib/nova", "/var/log/nova", "/etc/default/nova-api",
                         "/etc/default/nova-api-metadata", "/etc/default/nova-consoleproxy")
             if os.path.exists(p)]
    left += [f"pidfile {p}" for p in glob.glob("/run/nova/*.pid")]
    left += [f"rc link {p}" for p in glob.glob("/etc/rc?.d/S*nova-*")]
    with open("/etc/sysctl.conf") as fh:
        left += [f"sysctl.conf: {ln.strip()}" for ln in fh
                 if re.match(r"(net\.bridge\.bridge-nf-call|net\.ipv4\.conf\.(all|default)\.rp_filter)", ln)]
    left += [f"database {r[0]}" for r in root_db("SHOW DATABASES") if r[0] in DATABASES]
    left += [f"db user {u}@{h}" for u, h in root_db(
        "SELECT User, Host FROM mysql.user WHERE User = 'nova'")]
    left += [f"keystone user {u['Name']}" for u in openstack_json("user", "list")
             if u["Name"] == "nova"]
    left += [f"keystone service {s['Name']}" for s in openstack_json("service", "list")
             if s["Type"] == "compute"]
    left += [f"keystone endpoint {e['ID']}" for e in openstack_json("endpoint", "list")
             if e["Service Type"] == "compute"]
    return left


def clean():
    """nova.clean with the data (the pillar aio.sh reset-nova uses)."""
    subprocess.run(HELPER + ["pillar", "--clean"], check=True)
    run = apply("--sls", "nova.clean")
    subprocess.run(HELPER + ["pillar"], check=True)
    return run


@pytest.fixture(scope="module")
def cleaned():
    aio()  # deployed (an earlier module left it so; idempotent otherwise)
    assert not [p for p in NOVA_PKGS[:4] if not installed(p)]
    first = clean()
    # what the deploy made beside the formula (aio.sh reset-nova does the same)
    subprocess.run(HELPER + ["purge"], check=True)
    yield first
    aio()  # deployed again for the tests after this module


def test_clean_removes_everything_the_formula_made(cleaned):
    cleaned.assert_ok()
    changed = set(cleaned.changed)
    for sid in ("nova-packages-purged", "nova-db-nova-absent", "nova-db-nova_api-absent",
                "nova-db-nova_cell0-absent", "nova-keystone-user-absent",
                "nova-keystone-service-absent", "nova-keystone-endpoints-absent",
                "nova-config-api_server-absent", "nova-config-metadata_server-absent"):
        assert sid in changed, (sid, sorted(changed))
    # services were stopped before the packages went
    order = [r["__id__"] for r in cleaned.ordered]
    assert order.index("nova-service-api-dead") < order.index("nova-packages-purged")
    assert nova_left() == []


def test_second_clean_changes_nothing(cleaned):
    again = clean().assert_ok()
    assert again.changed == {}, again.changed


def test_dry_run_on_a_bare_host_lists_every_step(cleaned):
    """Packages not installed, no nova.conf, no databases: test=True lists
    what would happen (result None), fails nothing, changes nothing."""
    dry = apply("test=True")
    assert not dry.failed, json.dumps({k: v["comment"] for k, v in dry.failed.items()},
                                      indent=1)
    assert dry.returncode == 0
    pending = {sid for sid, r in dry.states.items() if r["result"] is None}
    for sid in ("nova-packages", "nova-config-nova_conf", "nova-db-nova", "nova-keystone-user",
                "nova-api-db-sync", "nova-cell0-mapped", "nova-cell1-present", "nova-db-sync",
                "nova-service-api", "nova-service-compute", "nova-discover-hosts"):
        assert sid in pending, (sid, dry[sid]["comment"] if sid in dry.states else "missing")
    assert nova_left() == []


def test_clean_of_packages_the_formula_never_configured(cleaned):
    """Nova's packages installed by hand (daemons held, as aio.sh reset-nova
    --keep-packages leaves them), nothing of the formula's on the host, and
    Keystone's and Placement's uwsgi running: Debian's nova-api init script
    then reports their uwsgi as nova-api. nova.clean stops only what runs
    here, disables and purges, and fails nothing."""
    policy = "/usr/sbin/policy-rc.d"
    ours = not os.path.exists(policy)
    if ours:
        with open(policy, "w") as fh:
            fh.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                        "-o", "DPkg::Lock::Timeout=600", *NOVA_PKGS[:4]],
                       check=True, capture_output=True, timeout=900)
    finally:
        if ours:
            os.unlink(policy)
    assert not os.path.exists("/etc/default/nova-api")
    lying = subprocess.run(["/etc/init.d/nova-api", "status"], capture_output=True)
    assert lying.returncode == 0, "the init script no longer mistakes other uwsgi for nova-api"
    run = clean().assert_ok()
    assert "nova-packages-purged" in run.changed
    assert "nova-service-api-dead" not in run.changed  # nothing of ours ran
    assert nova_left() == []


def test_deploy_again_through_a_master_boots_a_server(cleaned, salt_factories):
    """From the bare host (packages purged; databases, DB users and Keystone
    records gone) the whole rollout through a real salt-master and minion:
    ``state.orchestrate nova.orch.deploy``. A server boots, and the
    masterless apply with the same pillar agrees: nothing left to do."""
    subprocess.run(HELPER + ["rabbit"], check=True)  # the operator's, purged with the rest
    returncode, steps = orchestrate_deploy(salt_factories)
    assert returncode == 0, orchestrate_failures(steps)
    assert list(steps) == ORCH_STEPS, list(steps)
    assert not orchestrate_failures(steps), orchestrate_failures(steps)
    made = orchestrate_changes(steps)["nova-orch-sync-node"]
    for sid in ("nova-packages", "nova-db-nova", "nova-keystone-user", "nova-db-sync",
                "nova-service-api", "nova-service-compute"):
        assert sid in made, (sid, made)
    assert not [p for p in NOVA_PKGS[:4] if not installed(p)]
    assert all(nova_pids().values()), nova_pids()
    out = check(boot=True)
    assert "nova-compute up" in out
    run = apply()
    run.assert_ok()
    assert run.changed == {}, run.changed
