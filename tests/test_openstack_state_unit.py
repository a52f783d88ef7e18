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


def _chunk(sid, sls, **requisites):
    return {"__id__": sid, "name": sid, "__sls__": sls, "state": "test", "fun": "nop",
            **requisites}


def _pending(sid, num):
    return {f"test_|-{sid}_|-{sid}_|-nop": {"result": None, "__id__": sid, "__run_num__": num}}


def test_only_pending_states_it_depends_on_make_a_dry_run_check_pending():
    """The check requires nova.config (an SLS), whose state requires the
    grant: a pending grant makes it pending; a pending state elsewhere in
    the run does not hide its real failure."""
    chunks = [_chunk("grant", "nova.database"),
              _chunk("conf", "nova.config", require=[{"test": "grant"}]),
              _chunk("elsewhere", "nova.firewall"),
              _chunk("sync", "nova.db_sync", require=[{"sls": "nova.config"}])]
    low = chunks[-1]
    ret = state.new_ret("sync")
    both = {**_pending("grant", 1), **_pending("elsewhere", 2)}
    with state.guard(ret, test=True, running=both,
                     low=low, chunks=chunks):
        raise Invalid("Access denied")
    assert ret["result"] is None and "(grant)" in ret["comment"], ret
    ret = state.new_ret("sync")
    with state.guard(ret, test=True, running=_pending("elsewhere", 2), low=low, chunks=chunks):
        raise Invalid("Access denied")
    assert ret["result"] is False and ret["comment"].endswith("Access denied"), ret


def test_guard_state_reads_the_state_modules_dunders():
    chunks = [_chunk("pkg", "nova.packages"), _chunk("check", "nova.x", require=["pkg"]),
              _chunk("hold", "nova.packages", prereq_in=[{"test": "check"}])]
    dunders = {"__running__": _pending("pkg", 1), "__low__": chunks[1], "__lowstate__": chunks}

    def check(test):
        ret = state.new_ret("check")
        with state.guard_state(ret, test, dunders, invalid=(Invalid,)):
            raise Invalid("nova-manage is not installed")
        return ret

    ret = check(True)
    assert ret["result"] is None and "(pkg)" in ret["comment"], ret
    dunders["__running__"] = _pending("hold", 1)  # named by its prereq_in
    ret = check(True)
    assert ret["result"] is None and "(hold)" in ret["comment"], ret
    assert check(False)["result"] is False


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
