"""The INI engine through the real salt-call, on Debian's shipped nova.conf."""
import os
import subprocess

from harness import REPO

SECRET_DB = "Db-s3cr3t@:/%#&'\" \\x"
SECRET_RABBIT = "Rb-s3cr3t-unique-42"

GUIDE_KEYS = {
    "DEFAULT": {
        "transport_url": f"rabbit://nova:{SECRET_RABBIT}@127.0.0.1:5672/",
        "auth_strategy": "keystone",
        "my_ip": "192.0.2.10",
        "cpu_allocation_ratio": 16.0,
        "ram_allocation_ratio": 1.5,
        "reserved_host_memory_mb": 512,
        "reserved_host_disk_mb": 0,
    },
    "database": {"connection": f"mysql+pymysql://nova:{SECRET_DB}@127.0.0.1/nova"},
    "keystone_authtoken": {"auth_url": "http://127.0.0.1:5000/", "username": "nova", "password": "Ks-pw-unique-77"},
    "placement": {"username": "placement", "region_name": "RegionOne"},
    "neutron": {"service_metadata_proxy": True, "metadata_proxy_shared_secret": "Meta-unique-99"},
}
SECRETS = [SECRET_DB, SECRET_RABBIT, "Ks-pw-unique-77", "Meta-unique-99"]
# Debian's nova.conf already holds these two exactly: they are not changes.
ALREADY_SET = {("keystone_authtoken", "username"), ("neutron", "service_metadata_proxy")}
EXPECTED = {(s, k) for s, keys in GUIDE_KEYS.items() for k in keys} - ALREADY_SET
KEY_COUNT = len(EXPECTED)


def sls(salt_call, path, sections=GUIDE_KEYS):
    salt_call.set_pillar({"ini_test": {"path": str(path), "sections": sections}})
    return salt_call.write_sls("initest", """
        ini-file:
          openstack_ini.options_present:
            - name: {{ pillar.ini_test.path }}
            - sections: {{ pillar.ini_test.sections | json }}
            - mode: '0640'
            - user: root
            - group: nogroup
        """)


def changed_keys(run):
    changes = run["ini-file"]["changes"]
    return {(s, k) for s, keys in changes.items() if s != "permissions" for k in keys}


def git_diff_lines(before, after):
    proc = subprocess.run(["git", "diff", "--no-index", "--unified=0", str(before), str(after)],
                          capture_output=True, text=True)
    return [line for line in proc.stdout.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_first_run_changes_exactly_the_keys_then_nothing(salt_call, nova_conf, tmp_path):
    before = tmp_path / "before.conf"
    before.write_bytes(nova_conf.read_bytes())
    name = sls(salt_call, nova_conf)

    preview = salt_call.apply(name, test=True)
    assert preview["ini-file"]["result"] is None
    assert len(changed_keys(preview)) == KEY_COUNT
    assert nova_conf.read_bytes() == before.read_bytes()

    first = salt_call.apply(name).assert_ok()
    assert changed_keys(first) == EXPECTED
    assert first["ini-file"]["changes"]["permissions"]["mode"] == {"old": "0644", "new": "0640"}
    st = os.stat(nova_conf)
    assert (st.st_mode & 0o777, st.st_uid) == (0o640, 0)

    diff = git_diff_lines(before, nova_conf)
    added = [line for line in diff if line.startswith("+")]
    removed = [line for line in diff if line.startswith("-")]
    assert len(added) == KEY_COUNT
    # Only the lines of keys that already had a value are replaced.
    assert sorted(line.split("=")[0].strip("- ") for line in removed) == sorted(
        ["auth_url", "connection", "region_name", "username"])

    mtime = os.stat(nova_conf).st_mtime_ns
    second = salt_call.apply(name).assert_ok()
    assert second.changed == {}
    assert os.stat(nova_conf).st_mtime_ns == mtime
    again = salt_call.apply(name, test=True).assert_ok()
    assert again["ini-file"]["result"] is True and again.changed == {}

    for secret in SECRETS:
        for output in (preview.proc.stdout, first.proc.stdout, second.proc.stdout):
            assert secret not in output
        assert secret not in open(salt_call.log_file).read()


def test_drift_is_reported_by_test_mode_and_repaired(salt_call, nova_conf):
    name = sls(salt_call, nova_conf)
    salt_call.apply(name).assert_ok()
    text = nova_conf.read_text().replace("\nreserved_host_memory_mb = 512\n", "\nreserved_host_memory_mb = 4096\n")
    nova_conf.write_text(text)
    drift = salt_call.apply(name, test=True)
    assert drift["ini-file"]["changes"] == {
        "DEFAULT": {"reserved_host_memory_mb": {"old": "4096", "new": "512"}}}
    assert nova_conf.read_text() == text
    salt_call.apply(name).assert_ok()
    assert "\nreserved_host_memory_mb = 512\n" in nova_conf.read_text()


def test_bad_value_fails_cleanly_naming_file_and_key(salt_call, nova_conf):
    original = nova_conf.read_bytes()
    name = sls(salt_call, nova_conf, {"DEFAULT": {"debug": True, "my_ip": "a\nb"}})
    run = salt_call.apply(name)
    state = run["ini-file"]
    assert state["result"] is False
    assert str(nova_conf) in state["comment"] and "[DEFAULT] my_ip" in state["comment"]
    assert "Traceback" not in state["comment"] and "Traceback" not in run.proc.stdout
    assert run.returncode != 0
    assert nova_conf.read_bytes() == original


def test_options_absent_and_execution_functions(salt_call, nova_conf):
    code, value, _ = salt_call.run("openstack_ini.get_option", str(nova_conf), "DEFAULT", "state_path")
    assert (code, value) == (0, "/var/lib/nova")
    name = salt_call.write_sls("absent", f"""
        gone:
          openstack_ini.options_absent:
            - name: {nova_conf}
            - sections:
                DEFAULT: [state_path, pybasedir]
        """)
    run = salt_call.apply(name).assert_ok()
    assert set(run["gone"]["changes"]["DEFAULT"]) == {"state_path", "pybasedir"}
    assert salt_call.apply(name).assert_ok().changed == {}


def test_master_and_minion_apply_the_same_state(salt_master, salt_minion, master_state_dir, tmp_path,
                                                debian_nova_common):
    target = tmp_path / "nova.conf"
    target.write_bytes(open(os.path.join(debian_nova_common, "nova.conf"), "rb").read())
    (master_state_dir / "initest_master.sls").write_text(
        f"ini-file:\n  openstack_ini.options_present:\n    - name: {target}\n"
        "    - sections:\n        DEFAULT:\n          debug: true\n          my_ip: 192.0.2.7\n")
    cli = salt_master.salt_cli(timeout=120)
    first = cli.run("state.apply", "initest_master", minion_tgt=salt_minion.id)
    assert first.returncode == 0, first
    ret = next(iter(first.data.values()))
    assert ret["changes"]["DEFAULT"]["my_ip"] == {"old": None, "new": "192.0.2.7"}
    second = cli.run("state.apply", "initest_master", minion_tgt=salt_minion.id)
    assert next(iter(second.data.values()))["changes"] == {}
    assert REPO  # the master serves this repo's nova/ and _modules/_states
