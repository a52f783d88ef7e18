"""Unit tests of the canary of new computes (openstack_canary module and
state) against the fake Nova of tests/compute_fake.py, with the real
openstack_compute engine beside it. On real hosts: tests/fleet/test_fleet_3_day2.py."""
import uuid

import pytest

from compute_fake import Cloud, serve
from harness import load_module
from test_openstack_compute_unit import Env

NEW = "New compute service disabled due to config option."  # Nova 26.2.2, on the fleet


class CanaryEnv(Env):
    def __init__(self, cloud):
        super().__init__(cloud)
        tag = uuid.uuid4().hex
        self.canary = load_module("modules", "openstack_canary", f"ocn_modules_{tag}")
        self.cstates = load_module("states", "openstack_canary", f"ocn_states_{tag}")
        self.canary.__salt__ = dict(self.mod.__salt__, **self.states.__salt__)
        self.canary.__context__ = self.mod.__context__
        self.canary.__opts__ = self.opts
        self.cstates.__salt__ = dict(self.states.__salt__, **{
            f"openstack_canary.{n}": getattr(self.canary, n) for n in ("prove", "waiting")})
        self.cstates.__opts__ = self.opts

    def proven(self, host, test=False, **kwargs):
        self.opts["test"] = test
        ret = self.cstates.host_proven(host, "m1.tiny", "cirros", **kwargs)
        self.returns.append(ret)
        return ret


@pytest.fixture
def cloud():
    fake = Cloud()
    server = serve(fake)
    fake.add_compute("cmp1")
    fake.add_compute("cmp3", status="disabled", reason=NEW)
    fake.add_compute("cmp4", status="disabled", reason="disk swap")
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(cloud, monkeypatch):
    e = CanaryEnv(cloud)
    # the fake moves one step per poll: no need to wait (undone after the test)
    monkeypatch.setattr(e.canary.time, "sleep", lambda s: None)
    return e


def _status(cloud, host):
    (svc,) = [s for s in cloud.services.values() if s["host"] == host]
    return svc["status"], svc["disabled_reason"]


def test_a_new_compute_is_enabled_after_its_canary(env, cloud):
    dry = env.proven("cmp3", test=True)
    assert dry["result"] is None and dry["changes"]["service"]["new"] == "enabled"
    assert cloud.writes() == []
    ret = env.proven("cmp3")
    assert ret["result"] is True, ret
    assert "ACTIVE on cmp3" in ret["changes"]["canary"]
    assert _status(cloud, "cmp3") == ("enabled", None)
    assert not cloud.servers  # the test server is gone
    posts = [w for w in cloud.writes() if w[0] == "POST"]
    assert len(posts) == 1 and posts[0][2].endswith("/servers")
    again = env.proven("cmp3")  # enabled: nothing to prove, nothing sent
    assert again["result"] is True and again["changes"] == {}


@pytest.mark.parametrize("outcome, why", [("error", "went to ERROR: Failed to spawn"),
                                          ("hang", "still BUILD after 0 s")])
def test_a_failed_canary_leaves_the_host_disabled_and_says_why(env, cloud, outcome, why):
    cloud.canary_outcome["cmp3"] = outcome
    ret = env.proven("cmp3", timeout=0 if outcome == "hang" else 30)
    assert ret["result"] is False
    assert "cmp3" in ret["comment"] and why in ret["comment"], ret["comment"]
    status, reason = _status(cloud, "cmp3")
    assert status == "disabled" and reason.startswith("nova-formula canary failed: ")
    assert not cloud.servers
    # the next rollout tries again (the reason says the canary disabled it)
    cloud.canary_outcome["cmp3"] = "ok"
    assert env.proven("cmp3")["result"] is True
    assert _status(cloud, "cmp3") == ("enabled", None)


def test_operator_disabled_and_enabled_hosts_are_left_alone(env, cloud):
    ret = env.proven("cmp4")
    assert ret["result"] is True and ret["changes"] == {} and "left alone" in ret["comment"]
    assert env.proven("cmp1")["changes"] == {}
    assert cloud.writes() == []
    missing = env.proven("cmp9")
    assert missing["result"] is False and "no nova-compute service" in missing["comment"]


def test_secrets_stay_out_of_returns(env, cloud):
    from compute_fake import ADMIN_PW
    cloud.canary_outcome["cmp3"] = "error"
    env.proven("cmp3")
    assert ADMIN_PW not in repr(env.returns)
