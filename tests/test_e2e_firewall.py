"""Install guide 8.2.6, for real: the firewall state against real iptables,
inside a network namespace made by this test (never the host's own tables).

The namespace starts with the guide's RHEL-style rule set, ending in REJECT.
``state.apply nova.firewall`` runs through the real salt-call *inside* the
namespace (``ip netns exec``), for an api + compute minion. Checked: TCP
5900:5999 and 8774 are accepted before the REJECT, the rules are saved in the
OS family's file (Debian: /etc/iptables/rules.v4, which ``ip netns exec``
maps to /etc/netns/<ns>/iptables/ so the host's file is never written), a
second run changes nothing, the rules come back after a "reboot" (live rules
flushed, then the boot-time loader the formula enabled runs), and the host's
rules are untouched."""
import json
import os
import secrets
import shutil
import subprocess

import pytest

from formula_support import pillar
from harness import SALT_CALL, SaltCall, StateRun

RULES = [
    "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT",
    "-A INPUT -p icmp -j ACCEPT",
    "-A INPUT -i lo -j ACCEPT",
    "-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT",
    "-A INPUT -j REJECT --reject-with icmp-host-prohibited",
]
SAVE = "/etc/iptables/rules.v4"  # nova/parameters/osfamilymap.yaml, Debian


def host_rules():
    return subprocess.run(["iptables-save"], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def comparable(lines):
    """iptables-save output without comments and packet counters."""
    return [ln.split(" [")[0] if ln.startswith(":") else ln
            for ln in lines if ln and not ln.startswith("#")]


@pytest.fixture
def netns():
    name = "nftest-" + secrets.token_hex(3)
    private = f"/etc/netns/{name}/iptables"
    os.makedirs(private)
    # `ip netns exec` bind-mounts /etc/netns/<ns>/<x> over /etc/<x> only when
    # /etc/<x> exists: make the (empty) mount point if the host has none.
    made_etc = not os.path.exists("/etc/iptables")
    if made_etc:
        os.makedirs("/etc/iptables")
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for rule in RULES:
            subprocess.run(["ip", "netns", "exec", name, "iptables", *rule.split()], check=True)
        yield name, private
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)
        if made_etc:
            os.rmdir("/etc/iptables")  # fails loudly if something was written there


def apply_in(ns, minion, sls="nova.firewall"):
    cmd = ["ip", "netns", "exec", ns, SALT_CALL, "--local", "-c", minion.config_dir,
           "--out=json", "--retcode-passthrough", "-l", "quiet", "state.apply", sls]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    try:
        data = json.loads(proc.stdout)["local"]
    except (ValueError, KeyError):
        pytest.fail(f"no state data ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return StateRun(proc.returncode, data, proc)


def ns_input(ns):
    out = subprocess.run(["ip", "netns", "exec", ns, "iptables", "-S", "INPUT"],
                         capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines() if ln.startswith("-A")]


def test_firewall_rules_before_reject_persisted_and_idempotent(netns, tmp_path):
    ns, private = netns
    host_before = comparable(host_rules())
    host_file_before = os.path.exists(SAVE) and open(SAVE).read()
    minion = SaltCall(tmp_path / "minion", grains={"os_family": "Debian"})
    minion.set_pillar(pillar(roles=["api", "compute"]))

    first = apply_in(ns, minion).assert_ok()
    assert set(first.changed) == {"nova-firewall-api", "nova-firewall-vnc",
                                  "nova-firewall-console", "nova-firewall-metadata"}, first.changed
    rules = ns_input(ns)
    reject = next(i for i, r in enumerate(rules) if "-j REJECT" in r)
    api = next(i for i, r in enumerate(rules) if "--dports 8774" in r and "-j ACCEPT" in r)
    vnc = next(i for i, r in enumerate(rules) if "--dports 5900:5999" in r and "-j ACCEPT" in r)
    assert api < reject and vnc < reject, rules
    for port in ("6080", "8775"):  # the console proxy and the metadata API
        assert next(i for i, r in enumerate(rules) if f"--dports {port}" in r) < reject, rules
    assert all("-p tcp" in rules[i] for i in (api, vnc)), rules
    # the guide's own rules are all still there, in order
    assert [r for r in rules if r in RULES] == RULES

    saved = open(os.path.join(private, "rules.v4")).read().splitlines()
    assert any("--dports 8774" in ln and "ACCEPT" in ln for ln in saved), saved
    assert any("--dports 5900:5999" in ln and "ACCEPT" in ln for ln in saved), saved
    assert any("REJECT" in ln for ln in saved), saved

    second = apply_in(ns, minion).assert_ok()
    assert second.changed == {}, second.changed
    assert ns_input(ns) == rules

    # a reboot: the live rules are gone, then the boot-time loader the formula
    # installed and enabled (netfilter-persistent) restores the saved ones
    assert first["nova-firewall-boot"]["result"] is True
    assert any(n.endswith("netfilter-persistent") for n in os.listdir("/etc/rcS.d"))
    subprocess.run(["ip", "netns", "exec", ns, "iptables", "-F", "INPUT"], check=True)
    assert ns_input(ns) == []
    subprocess.run(["ip", "netns", "exec", ns, "/usr/sbin/netfilter-persistent", "start"],
                   check=True, capture_output=True)
    assert ns_input(ns) == rules

    # the host: same rules, same file
    assert comparable(host_rules()) == host_before
    assert (os.path.exists(SAVE) and open(SAVE).read()) == host_file_before


def test_firewall_clean_removes_only_the_formulas_rules(netns, tmp_path):
    """nova.firewall.clean: the formula's ACCEPT rules gone from the live
    table and from the saved file, the guide's own rules kept in order; a
    second clean changes nothing."""
    ns, private = netns
    minion = SaltCall(tmp_path / "minion", grains={"os_family": "Debian"})
    minion.set_pillar(pillar(roles=["api", "compute"]))
    apply_in(ns, minion).assert_ok()
    assert len(ns_input(ns)) == len(RULES) + 4

    clean = apply_in(ns, minion, "nova.firewall.clean").assert_ok()
    assert set(clean.changed) == {f"nova-firewall-{r}-deleted" for r in (
        "api", "vnc", "console", "metadata")}, clean.changed
    assert ns_input(ns) == RULES
    saved = open(os.path.join(private, "rules.v4")).read()
    for port in ("8774", "5900:5999", "6080", "8775"):
        assert f"--dports {port}" not in saved, saved
    assert "REJECT" in saved
    again = apply_in(ns, minion, "nova.firewall.clean").assert_ok()
    assert again.changed == {}, again.changed
