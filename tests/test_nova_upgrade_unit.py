"""The pure parts of a rolling update: nova-status's table read into the
failed checks, online data migrations counted and repeated until done, the
wait for every service's new service version (bounded, read again, never a
fixed sleep), a daemon older than a file it reads found by its start time.
The commands and databases themselves run on the fleet
(tests/fleet/test_fleet_2_upgrade.py)."""
import os
import subprocess
import sys
import time

from harness import load_module

CHECK_FAILED = """+-------------------------------------------------------------------+
| Upgrade Check Results                                             |
+-------------------------------------------------------------------+
| Check: Cells v2                                                   |
| Result: Failure                                                   |
| Details: No cell0 mapping found. Run command 'nova-manage         |
|   cell_v2 simple_cell_setup'                                      |
+-------------------------------------------------------------------+
| Check: Placement API                                              |
| Result: Success                                                   |
| Details: None                                                     |
+-------------------------------------------------------------------+
"""
MIGRATIONS = """Running batches of 50 until complete
+---------------------------------------------+--------------+-----------+
|                  Migration                  | Total Needed | Completed |
+---------------------------------------------+--------------+-----------+
|         fill_virtual_interface_list         |      3       |     3     |
| populate_instance_compute_id                |      0       |     0     |
+---------------------------------------------+--------------+-----------+
"""


def _manage(runs):
    mod = load_module("modules", "nova_manage")
    calls = []

    def run_all(cmd, **kwargs):
        calls.append(cmd)
        return runs.pop(0)
    mod.__salt__ = {"cmd.run_all": run_all, "config.get": lambda k, d=None: d}
    mod._binary = lambda: "/usr/bin/nova-manage"
    mod._status_binary = lambda: "/usr/bin/nova-status"
    return mod, calls


def test_a_failed_upgrade_check_names_the_check_and_its_details():
    mod, calls = _manage([{"retcode": 2, "stdout": CHECK_FAILED, "stderr": ""}])
    res = mod.upgrade_check()
    assert calls[0][-3:] == ["/usr/bin/nova-status", "upgrade", "check"]
    assert res["ok"] is False and res["retcode"] == 2
    assert res["failures"] == ["Cells v2: No cell0 mapping found. Run command 'nova-manage"]
    mod, _ = _manage([{"retcode": 1, "stdout": "| Result: Warning |", "stderr": ""}])
    assert mod.upgrade_check()["ok"] is True  # warnings pass


def test_online_migrations_count_the_rows_done():
    mod, _ = _manage([{"retcode": 1, "stdout": MIGRATIONS, "stderr": ""}])
    assert mod.online_data_migrations() == {
        "retcode": 1, "migrated": {"fill_virtual_interface_list": 3}, "why": ""}


def _states(results, test=False):
    mod = load_module("states", "nova_upgrade")
    mod.__opts__ = {"test": test}
    mod.__salt__ = {"nova_manage.service_versions": lambda config: results.pop(0),
                    "nova_manage.online_data_migrations": lambda config, max_count: results.pop(0)}
    return mod


def test_services_current_reads_again_until_all_report_the_new_version():
    behind = {"current": False, "newest": 66, "behind": ["nova-compute@cmp1 (64)"],
              "services": [{}]}
    done = {"current": True, "newest": 66, "behind": [], "services": [{}, {}]}
    mod = _states([behind, behind, done])
    ret = mod.services_current("v", interval=0)
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == "all 2 Nova services report service version 66"
    # bounded: the laggard named when the time is up
    mod = _states([])
    mod.__salt__["nova_manage.service_versions"] = lambda config: behind
    start = time.monotonic()
    ret = mod.services_current("v", timeout=1, interval=0)
    assert ret["result"] is False and "nova-compute@cmp1 (64)" in ret["comment"]
    assert time.monotonic() - start < 10
    # a dry run reads once
    ret = _states([behind], test=True).services_current("v")
    assert ret["result"] is None


def test_online_migrations_run_until_done_and_report_rows():
    mod = _states([{"retcode": 1, "migrated": {"a": 50}, "why": ""},
                   {"retcode": 0, "migrated": {"a": 7}, "why": ""}])
    ret = mod.online_migrations_done("m")
    assert ret["result"] is True and ret["changes"] == {"migrated": {"a": 57}}
    ret = _states([{"retcode": 0, "migrated": {}, "why": ""}]).online_migrations_done("m")
    assert ret["result"] is True and ret["changes"] == {}  # a rerun: nothing to report
    ret = _states([{"retcode": 2, "migrated": {}, "why": "boom"}]).online_migrations_done("m")
    assert ret["result"] is False and "boom" in ret["comment"]


def test_a_daemon_older_than_a_file_it_reads_is_stale(tmp_path):
    mod = load_module("modules", "nova_service")
    mod.__salt__ = {}
    conf = tmp_path / "nova.conf"
    conf.write_text("[DEFAULT]\n")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pidfile = tmp_path / "d.pid"
        pidfile.write_text(str(proc.pid))
        assert abs(mod.started(proc.pid) - time.time()) < 5
        old = time.time() - 3600
        os.utime(conf, (old, old))
        assert mod.stale("d", pidfile=str(pidfile), files=[str(conf)]) == []
        time.sleep(0.05)
        conf.write_text("[DEFAULT]\ndebug = true\n")
        assert mod.stale("d", pidfile=str(pidfile), files=[str(conf)]) == [str(conf)]
    finally:
        proc.kill()
        proc.wait()
    # a daemon that does not run is not stale: it starts with what is there
    assert mod.stale("d", pidfile=str(tmp_path / "d.pid"), files=[str(conf)]) == []
