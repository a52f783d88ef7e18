"""_utils/openstack_state.guard: the one way every state module turns an
error into a failed state (masked, never a traceback), and partial writes."""
import pytest

from harness import load_module

state = load_module("utils", "openstack_state")


class Invalid(Exception):
    pass


def test_an_error_in_the_block_is_a_masked_failed_state():
    ret = state.new_ret("x")
    with state.guard(ret, secrets=["s3cret"]):
        ret["changes"] = {"half": "made"}
        raise RuntimeError("boom with s3cret and mysql://u:pw@db/nova")
    assert ret["result"] is False and ret["changes"] == {}
    assert "s3cret" not in ret["comment"] and "pw@" not in ret["comment"]
    assert ret["comment"].startswith("unexpected error: RuntimeError")


def test_bad_input_is_shown_as_it_is():
    ret = state.new_ret("x")
    with state.guard(ret, invalid=(Invalid,)):
        raise Invalid("hosts must be a list")
    assert ret == {"name": "x", "result": False, "changes": {},
                   "comment": "hosts must be a list"}


def test_a_check_behind_pending_states_is_pending_in_a_test_run():
    running = {"pkg_|-nova-packages_|-nova_|-installed": {
        "result": None, "__id__": "nova-packages", "__run_num__": 3}}
    ret = state.new_ret("x")
    with state.guard(ret, test=True, running=running):
        raise Invalid("nova-manage is not installed")
    assert ret["result"] is None
    assert "1 earlier pending state(s) change (nova-packages)" in ret["comment"]


def test_a_partial_failure_lists_what_was_done():
    ret = state.new_ret("x")
    with state.guard(ret, invalid=(Invalid,)):
        raise state.partial(Invalid("the third write was refused"), ["disabled", "migrated"])
    assert ret["result"] is False and ret["comment"] == "the third write was refused"
    assert ret["changes"] == {"done before the failure": ["disabled", "migrated"]}


def test_no_error_leaves_the_return_alone_and_interrupts_pass():
    ret = state.new_ret("x")
    with state.guard(ret):
        ret["comment"] = "fine"
    assert ret == {"name": "x", "result": True, "changes": {}, "comment": "fine"}
    with pytest.raises(KeyboardInterrupt):
        with state.guard(state.new_ret("y")):
            raise KeyboardInterrupt
