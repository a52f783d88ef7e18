"""The install guide's step list, checked off: every row of STEPS.md maps to
the tests that verify it (against the real thing where it can be shown on
this machine), or to a clear reason it cannot be shown here.

A row added to STEPS.md without an entry fails; an entry naming a test that
does not exist fails; a row with neither live evidence nor a reason fails.
docs/testing.md carries the same table.
"""
import ast
import os
import re

from harness import REPO

# Where the guide's restatement lives: the repo's docs/ when copied there,
# else beside the repo (the project's shared seed).
STEPS_MD = [os.path.join(REPO, "docs", "STEPS.md"),
            os.path.join(os.path.dirname(REPO), "shared", "seed", "STEPS.md")]

E2E = "tests/test_e2e.py"
FW = "tests/test_e2e_firewall.py"
RENDER = "tests/test_formula_render.py"
ORCH = "tests/test_orchestrate.py"
CLEAN = "tests/test_e2e_clean.py"

# § -> (live evidence: tests against real services, rendered/unit evidence,
#       reason it is not (fully) shown live here, or None)
CHECKLIST = {
    "8.2.1": ([f"{E2E}::test_fresh_deploy_with_salt_call"],
              [f"{RENDER}::test_all_in_one"],
              None),
    "8.2.2": ([f"{E2E}::test_compute_user_token_and_db_user_login",
               "tests/test_openstack_db.py::test_first_apply_usable_then_noop_only_reads"],
              [], None),
    "8.2.3": ([f"{E2E}::test_compute_services_hypervisor_and_server",
               f"{ORCH}::test_rollout_order_and_db_sync_once"],
              [f"{RENDER}::test_compute_only_holds_no_database_url"], None),
    "8.2.4": ([f"{E2E}::test_compute_services_hypervisor_and_server",
               f"{E2E}::test_compute_user_token_and_db_user_login",
               "tests/test_openstack_keystone.py::test_guide_records_idempotent_repaired_and_no_password_logged"],
              [], None),
    "8.2.5": ([f"{E2E}::test_compute_user_token_and_db_user_login"],
              [f"{RENDER}::test_all_in_one"], None),
    "8.2.6": ([f"{FW}::test_firewall_rules_before_reject_persisted_and_idempotent"],
              [f"{RENDER}::test_firewall_rules_before_reject_saved_and_never_duplicated"], None),
    "8.2.7": ([], [f"{RENDER}::test_api_ssl_options"],
              "no certificates here: the all-in-one serves the API over plain HTTP; "
              "the TLS options are checked as rendered"),
    "8.2.8": ([f"{E2E}::test_compute_services_hypervisor_and_server"],
              [f"{RENDER}::test_vhost_and_query_in_urls"], None),
    "8.2.9": ([], [f"{RENDER}::test_api_ssl_options"],
              "the test RabbitMQ has no TLS listener; the broker SSL options are "
              "checked as rendered"),
    "8.2.10": ([f"{E2E}::test_drift_reported_by_test_mode_then_corrected"],
               [f"{RENDER}::test_all_in_one"], None),
    "8.2.11": ([f"{E2E}::test_fresh_deploy_with_salt_call"],
               [f"{RENDER}::test_all_in_one"], None),
    "8.2.12.1": ([], [f"{RENDER}::test_all_in_one"],
                 "Zed has no nova-network and Debian 12 packages no legacy release; "
                 "its removal is checked as rendered for the legacy dialect"),
    "8.2.12.2": ([f"{E2E}::test_compute_services_hypervisor_and_server",
                  f"{E2E}::test_fresh_deploy_with_salt_call"],
                 [f"{RENDER}::test_all_in_one"], None),
    "8.2.12.3": ([], [],
                 "out of scope for a Nova formula: the L2 agent belongs to the "
                 "Networking formula (documented hand-off)"),
    "8.2.12.4": ([], [f"{RENDER}::test_vif_driver_and_qemu_conf_follow_the_plugin"],
                 "needs the libvirt driver on a real hypervisor (KVM); the all-in-one "
                 "uses fake.FakeDriver"),
    "8.2.13": ([f"{E2E}::test_compute_user_token_and_db_user_login",
                f"{E2E}::test_second_run_changes_nothing_and_restarts_nothing",
                f"{ORCH}::test_rollout_order_and_db_sync_once"], [], None),
    "8.2.14": ([f"{E2E}::test_compute_services_hypervisor_and_server",
                f"{CLEAN}::test_deploy_again_through_a_master_boots_a_server",
                f"{ORCH}::test_rollout_order_and_db_sync_once"], [],
               "libvirtd is started only for the libvirt driver: not shown without a "
               "hypervisor"),
}


def steps_md():
    for path in STEPS_MD:
        if os.path.exists(path):
            with open(path) as fh:
                return fh.read()
    raise AssertionError(f"STEPS.md not found (looked in {', '.join(STEPS_MD)})")


def guide_rows():
    return re.findall(r"^\|\s*(8\.2(?:\.\d+)+)\s*\|", steps_md(), re.M)


def defined_tests(path):
    with open(os.path.join(REPO, path)) as fh:
        tree = ast.parse(fh.read())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_guide_step_is_checked_off():
    rows = guide_rows()
    assert len(rows) == len(set(rows)) >= 17, rows
    assert sorted(CHECKLIST) == sorted(rows), (
        f"STEPS.md rows without an entry: {sorted(set(rows) - set(CHECKLIST))}; "
        f"entries without a row: {sorted(set(CHECKLIST) - set(rows))}")
    for step, (live, rendered, reason) in CHECKLIST.items():
        assert live or reason, f"{step}: neither live evidence nor a reason"
        # only what is out of this formula's scope goes without any test
        assert live or rendered or reason.startswith("out of scope"), \
            f"{step}: not verified by any test"
        if reason:
            assert len(reason) > 30, f"{step}: say why, clearly"


def test_every_named_test_exists():
    missing = []
    for step, (live, rendered, _) in CHECKLIST.items():
        for node in live + rendered:
            path, name = node.split("::")
            if name not in defined_tests(path):
                missing.append(f"{step}: {node}")
    assert not missing, missing


def test_docs_table_lists_every_step():
    with open(os.path.join(REPO, "docs", "testing.md")) as fh:
        doc = fh.read()
    missing = [s for s in CHECKLIST if not re.search(rf"^\|\s*{re.escape(s)}\s*\|", doc, re.M)]
    assert not missing, missing
