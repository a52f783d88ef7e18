"""The rest of a Nova control plane on the real all-in-one: the noVNC console
proxy, the metadata API and API policy from pillar (issue 16; host
aggregates are proven on the fleet, tests/fleet/test_fleet_1_rollout.py).

Runs after tests/test_e2e_clean.py (which leaves the all-in-one deployed; if
it is not, aio.sh deploys it) and leaves it deployed, with the example
pillar's policy rule back in place.
"""
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml

from test_e2e import AIO_DIR, aio, apply, nova_pids, openstack_json, secret

KEYSTONE = "http://127.0.0.1:5000/v3"
POLICY = "/etc/nova/policy.yaml"
RULE = "os_compute_api:os-hypervisors:list"  # pillar.example's rule
READER = "hypervisor_reader"                 # ... and the role it lets in
PILLAR = os.path.join(AIO_DIR, "pillar", "nova.sls")
HELPER = ["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "support", "aio_helper.py")]


def _get(url, headers=None):
    """(status, body) of a GET; bounded in time."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def _admin_session():
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    with open("/etc/openstack/clouds.yaml") as fh:
        auth = yaml.safe_load(fh)["clouds"]["nova-formula-admin"]["auth"]
    return session.Session(auth=v3.Password(**auth))


@pytest.fixture(scope="module")
def server():
    aio()  # deployed (an earlier module left it so; idempotent otherwise)
    name = "cp-" + secrets.token_hex(3)
    proc = subprocess.run(
        ["openstack", "--os-compute-api-version", "2.37", "server", "create", "--flavor",
         "aio.tiny", "--image", "cirros-fake", "--nic", "none", "--wait", name, "-f", "json"],
        env=dict(os.environ, OS_CLOUD="nova-formula-admin"), capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr
    made = json.loads(proc.stdout)
    assert made["status"] == "ACTIVE", made
    yield made
    subprocess.run(["openstack", "server", "delete", "--wait", made["id"]],
                   env=dict(os.environ, OS_CLOUD="nova-formula-admin"), timeout=600)


def test_console_url_serves_the_novnc_page(server):
    console = openstack_json("console", "url", "show", server["id"])
    url = console["url"]
    assert console["type"] == "novnc"
    assert url.startswith("http://127.0.0.1:6080/vnc_auto.html?"), url
    status, body = _get(url)
    assert status == 200 and "noVNC" in body, (status, body[:300])
    assert "nova-novncproxy" in nova_pids() and nova_pids()["nova-novncproxy"]


def test_metadata_answers_a_signed_request_and_refuses_a_wrong_one(server):
    """Signed the way Neutron's metadata agent signs: HMAC-SHA256 of the
    instance id with the shared secret the formula wrote on both sides."""
    iid, project = server["id"], server["project_id"]
    good = hmac.new(secret("aio-metadata-secret").encode(), iid.encode(),
                    hashlib.sha256).hexdigest()
    url = "http://127.0.0.1:8775/openstack/latest/meta_data.json"
    base = {"X-Instance-ID": iid, "X-Tenant-ID": project, "X-Forwarded-For": "10.0.0.5"}
    status, body = _get(url, dict(base, **{"X-Instance-ID-Signature": good}))
    assert status == 200, (status, body[:500])
    meta = json.loads(body)
    assert meta["uuid"] == iid and meta["name"] == server["name"]
    status, _ = _get(url, dict(base, **{"X-Instance-ID-Signature": "0" * 64}))
    assert status == 403


def test_metadata_listener_drift_is_reported_then_restarts_only_the_metadata_api():
    """The metadata API's own server file (where it listens, its workers)
    edited by hand: test=True names it and the one restart it implies; the
    apply fixes it and restarts nova-api-metadata alone; then nothing."""
    path = "/etc/default/nova-api-metadata"
    with open(path) as fh:
        text = fh.read()
    assert "--processes " in text, text
    with open(path, "w") as fh:
        fh.write(text.replace("--processes ", "--processes 1", 1))
    before = nova_pids()
    dry = apply("test=True")
    pending = {s for s, r in dry.states.items() if r["result"] is None}
    assert pending == {"nova-config-metadata_server", "nova-service-metadata"}, pending
    assert nova_pids() == before
    fix = apply().assert_ok()
    assert set(fix.changed) == {"nova-config-metadata_server", "nova-service-metadata"}, \
        set(fix.changed)
    with open(path) as fh:
        assert fh.read() == text
    after = nova_pids()
    assert after["nova-api-metadata"] and after["nova-api-metadata"] != before["nova-api-metadata"]
    assert {k: v for k, v in after.items() if k != "nova-api-metadata"} == \
        {k: v for k, v in before.items() if k != "nova-api-metadata"}
    assert apply().assert_ok().changed == {}


def test_console_proxy_switch_drift_restarts_only_the_proxy():
    """The console proxy's switch file (which proxy nova-consoleproxy's init
    script starts) edited by hand: test=True names it and the proxy's restart
    alone; the apply fixes it and restarts nova-novncproxy alone."""
    path = "/etc/default/nova-consoleproxy"
    with open(path) as fh:
        text = fh.read()
    assert "NOVA_CONSOLE_PROXY_TYPE=novnc" in text, text
    with open(path, "w") as fh:
        fh.write(text.replace("NOVA_SERIAL_PROXY_START=false", "NOVA_SERIAL_PROXY_START=true"))
    before = nova_pids()
    dry = apply("test=True")
    pending = {s for s, r in dry.states.items() if r["result"] is None}
    assert pending == {"nova-config-console_default", "nova-service-novncproxy"}, pending
    fix = apply().assert_ok()
    assert set(fix.changed) == {"nova-config-console_default", "nova-service-novncproxy"}, \
        set(fix.changed)
    after = nova_pids()
    assert after["nova-novncproxy"] and after["nova-novncproxy"] != before["nova-novncproxy"]
    assert {k: v for k, v in after.items() if k != "nova-novncproxy"} == \
        {k: v for k, v in before.items() if k != "nova-novncproxy"}
    assert apply().assert_ok().changed == {}


def _salt_call(*args):
    """``salt-call --local`` with the all-in-one's minion config; its JSON return."""
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "salt-call"), "--local",
                           "-c", os.path.join(AIO_DIR, "conf"), "--out=json", *args],
                          capture_output=True, text=True, timeout=300)
    return json.loads(proc.stdout or "{}").get("local"), proc


def test_policy_rule_names_without_a_sample_come_from_the_installed_nova():
    """Where no policy sample ships (RedHat), the rule names come from
    oslopolicy-sample-generator run against the installed Nova: the same
    names Debian's sample holds; the check state refuses an unknown one."""
    generated, proc = _salt_call("nova_policy.known_rules")
    assert isinstance(generated, list) and RULE in generated, proc.stdout[-2000:] + proc.stderr
    sample, _ = _salt_call("nova_policy.known_rules", "/usr/share/nova-common/policy.yaml.example")
    assert set(sample) <= set(generated), sorted(set(sample) - set(generated))[:10]
    bad = "os_compute_api:os-hypervisors:lsit"
    ret, _ = _salt_call("state.single", "nova_policy.rules_known", POLICY,
                        f'rules=["{RULE}", "{bad}"]')
    (result,) = ret.values()
    assert result["result"] is False and bad in result["comment"], result
    ret, _ = _salt_call("state.single", "nova_policy.rules_known", POLICY, f'rules=["{RULE}"]')
    (result,) = ret.values()
    assert result["result"] is True, result


def _reader_token(session):
    """A project-scoped token of a user that holds only the custom role."""
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    tag = secrets.token_hex(3)
    password = "cp-" + secrets.token_hex(12)
    roles = session.get(f"{KEYSTONE}/roles", params={"name": READER}).json()["roles"]
    role = roles[0] if roles else session.post(
        f"{KEYSTONE}/roles", json={"role": {"name": READER}}).json()["role"]
    project = session.post(f"{KEYSTONE}/projects", json={"project": {
        "name": f"cp-proj-{tag}", "domain_id": "default"}}).json()["project"]
    user = session.post(f"{KEYSTONE}/users", json={"user": {
        "name": f"cp-user-{tag}", "domain_id": "default", "password": password}}).json()["user"]
    session.put(f"{KEYSTONE}/projects/{project['id']}/users/{user['id']}/roles/{role['id']}")
    auth = v3.Password(auth_url=KEYSTONE, username=user["name"],
                       password=password, user_domain_id="default", project_id=project["id"])
    made = {"project": project["id"], "user": user["id"]}
    return ks_session.Session(auth=auth), made


def _set_policy(rules):
    with open(PILLAR) as fh:
        data = yaml.safe_load(fh)
    data["nova"]["policy"] = rules
    with open(PILLAR, "w") as fh:
        yaml.safe_dump(data, fh)


def test_policy_rule_lets_a_custom_role_in_and_removing_it_takes_it_away():
    admin = _admin_session()
    reader, made = _reader_token(admin)
    hypervisors = "http://127.0.0.1:8774/v2.1/os-hypervisors"
    try:
        with open(POLICY) as fh:
            assert RULE in fh.read()
        assert reader.get(hypervisors, raise_exc=False).status_code == 200
        before = nova_pids()
        _set_policy({})
        dry = apply("test=True")
        assert {s for s, r in dry.states.items() if r["result"] is None} == {
            "nova-policy-file"}, {s: r["comment"] for s, r in dry.states.items()
                                  if r["result"] is None}
        run = apply().assert_ok()
        assert set(run.changed) == {"nova-policy-file"}, set(run.changed)
        with open(POLICY) as fh:
            assert RULE not in fh.read()
        assert reader.get(hypervisors, raise_exc=False).status_code == 403
        assert nova_pids() == before  # oslo.policy reloads the file: no restart
        # a rule the installed Nova does not know: refused, naming it, file untouched
        _set_policy({"os_compute_api:os-hypervisors:lsit": "role:admin"})
        bad = apply()
        assert bad.returncode != 0
        text = json.dumps({s: r["comment"] for s, r in bad.states.items() if not r["result"]})
        assert "nova:policy:os_compute_api:os-hypervisors:lsit" in text, text
        with open(POLICY) as fh:
            assert "lsit" not in fh.read()
    finally:
        subprocess.run(HELPER + ["pillar"], check=True)  # pillar.example's policy again
        for path in (f"users/{made['user']}", f"projects/{made['project']}"):
            admin.delete(f"{KEYSTONE}/{path}", raise_exc=False)
    back = apply().assert_ok()
    assert set(back.changed) == {"nova-policy-file"}, set(back.changed)
    assert apply().assert_ok().changed == {}
