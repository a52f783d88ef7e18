"""A corpus of bad pillars, each refused before anything changes.

Every case is pillar.example (all-in-one, see reliability_support.example_pillar)
plus ONE defect, applied through the real ``salt-call --local state.apply nova``
with the database and Keystone states live (shared MariaDB, shared Keystone)
and the config files in a sandbox folder. Each must give:

- a failed run in which only the validation state ran,
- exactly one message, naming the pillar key (and never quoting a secret),
- nothing changed: the sandbox folder (content, mode, owner, no stray file),
  no database or DB user with the case's names, no Keystone user, project
  or service with them.

A valid control pillar goes through the same machinery and must change all
three, so the checks can see a change when there is one. The salt-calls run
three at a time (one salt-call per case); everything created is removed at
the end, whatever happened.

Cases marked xfail(strict=True) (see ``_bug``) would be formula bugs found
by this corpus; the ones it found (values the validator let through until a
later state refused or wrote them, after databases and Keystone records were
created) are fixed in the validator (_utils/nova_schema.py, _modules/nova_formula.py) and now pass unmarked.
"""
import concurrent.futures
import os
import time

import pytest

from formula_support import GRAINS
from harness import SaltCall
from reliability_support import (SOCKET, Db, Keystone, Sandbox, admin_cloud, example_pillar,
                                 merge, new_tag)

DROP = object()  # marks a key to delete from the example pillar


def _change(data, change):
    out = merge(data, {k: v for k, v in change.items()
                       if v is not DROP and not isinstance(v, dict)})
    for key, value in change.items():
        if value is DROP:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = _change(out.get(key) if isinstance(out.get(key), dict) else {}, value)
    return out


def _bug(why):
    return pytest.mark.xfail(strict=True, reason="formula bug (validator): " + why)


# (id, defect, pillar key named, marks). "T" in a value is replaced by the case's tag.
CASES = [
    # -- missing required keys
    ("missing-db-password", {"database": {"password": DROP}}, "nova:database:password", ()),
    ("missing-mq-password", {"messaging": {"password": DROP}}, "nova:messaging:password", ()),
    ("missing-ks-password", {"identity": {"password": DROP}}, "nova:identity:password", ()),
    ("missing-metadata-secret", {"network": {"neutron": {"metadata_secret": DROP}}},
     "nova:network:neutron:metadata_secret", ()),
    ("missing-api-ssl-cert", {"api": {"ssl": {"enabled": True, "key_file": "/etc/ssl/k.pem"}}},
     "nova:api:ssl:cert_file", ()),
    ("empty-grant-hosts", {"database": {"grant_hosts": []}}, "nova:database:grant_hosts",
     ()),
    # -- wrong types
    ("roles-not-a-list", {"roles": "compute"}, "nova:roles", ()),
    ("ratio-not-a-number", {"compute": {"cpu_allocation_ratio": "lots"}},
     "nova:compute:cpu_allocation_ratio", ()),
    ("manage-flag-string", {"manage": {"database": "yes"}}, "nova:manage:database", ()),
    ("ssl-flag-string-false", {"messaging": {"ssl": {"enabled": "false"}}},
     "nova:messaging:ssl:enabled", ()),
    ("grant-hosts-not-a-list", {"database": {"grant_hosts": "%"}}, "nova:database:grant_hosts", ()),
    ("query-not-a-map", {"database": {"query": ["charset=utf8"]}}, "nova:database:query", ()),
    ("password-a-number", {"identity": {"password": 12345678}}, "nova:identity:password", ()),
    ("batch-not-a-number", {"fleet": {"batch": "two"}}, "nova:fleet:batch", ()),
    # -- empty strings
    ("empty-db-user", {"database": {"user": ""}}, "nova:database:user", ()),
    ("empty-mq-host", {"messaging": {"host": ""}}, "nova:messaging:host", ()),
    ("empty-ks-project", {"identity": {"project": ""}}, "nova:identity:project", ()),
    # -- a newline or ] in a value
    ("newline-in-mq-host", {"messaging": {"host": "mq\nevil"}}, "nova:messaging:host", ()),
    ("newline-in-endpoint", {"identity": {"endpoints": {"public": "http://h:8774/v2.1\n"}}},
     "nova:identity:endpoints:public", ()),
    ("newline-in-ks-user", {"identity": {"user": "T_u\nx"}}, "nova:identity:user",
     ()),
    ("newline-in-ks-password", {"identity": {"password": "pw\ninjected = 1"}},
     "nova:identity:password",
     ()),
    ("newline-in-compute-driver", {"compute": {"driver": "fake.FakeDriver\nx"}},
     "nova:compute:driver",
     ()),
    ("newline-in-config-value", {"config": {"nova.conf": {"DEFAULT": {
        "debug": "true\n[database]\nconnection = sqlite://"}}}}, "nova:config",
     ()),
    ("bracket-in-config-section", {"config": {"nova.conf": {"DEFAULT]": {"debug": True}}}},
     "nova:config",
     ()),
    ("bracket-in-config-key", {"config": {"nova.conf": {"DEFAULT": {"deb]ug": True}}}},
     "nova:config",
     ()),
    # -- SQL and shell metacharacters in names
    ("sql-in-db-name", {"database": {"name": "nova'; DROP DATABASE mysql; --"}},
     "nova:database:name", ()),
    ("sql-in-db-user", {"database": {"user": "T' OR '1'='1"}}, "nova:database:user",
     ()),
    ("sql-in-grant-host", {"database": {"grant_hosts": ["%'; DROP USER root; --"]}},
     "nova:database:grant_hosts",
     ()),
    ("shell-in-db-user", {"database": {"user": "T$(reboot)"}}, "nova:database:user",
     ()),
    ("shell-in-my-ip", {"my_ip": "10.0.0.1;reboot"}, "nova:my_ip", ()),
    ("shell-in-api-db-name", {"database": {"api_name": "nova_api`reboot`"}},
     "nova:database:api_name", ()),
    # -- overlong values
    ("overlong-db-name", {"database": {"name": "n" * 65}}, "nova:database:name", ()),
    ("db-name-too-long-for-cell0", {"database": {"name": "T" + "n" * 50}},
     "nova:database:name",
     ()),
    ("overlong-db-user", {"database": {"user": "T" + "u" * 40}}, "nova:database:user",
     ()),
    ("overlong-ks-user", {"identity": {"user": "T" + "x" * 300}}, "nova:identity:user",
     ()),
    ("overlong-ks-project", {"identity": {"project": "T" + "p" * 70}}, "nova:identity:project",
     ()),
    # -- unknown keys with a likely typo
    ("typo-top-level", {"rolse": ["compute"]}, "nova:rolse", ()),
    ("typo-db-pasword", {"database": {"pasword": "x"}}, "nova:database:pasword", ()),
    ("typo-identity-endpoint", {"identity": {"endpoint": {"public": "http://h/"}}},
     "nova:identity:endpoint", ()),
    # -- ports
    ("port-0", {"database": {"port": 0}}, "nova:database:port", ()),
    ("port-70000", {"messaging": {"port": 70000}}, "nova:messaging:port", ()),
    ("url-port-99999", {"placement": {"auth_url": "http://127.0.0.1:99999"}},
     "nova:placement:auth_url", ()),
    # -- invalid URLs
    ("url-without-scheme", {"identity": {"auth_url": "controller:5000"}},
     "nova:identity:auth_url", ()),
    ("url-with-space", {"network": {"neutron": {"url": "http://bad host:9696/"}}},
     "nova:network:neutron:url", ()),
    ("url-ftp-glance", {"glance": {"api_servers": ["ftp://glance:9292"]}},
     "nova:glance:api_servers", ()),
    ("url-identity-v2-on-zed", {"identity": {"auth_url": "http://127.0.0.1:5000/v2.0"}},
     "nova:identity:auth_url",
     ()),
    # -- values the components would refuse later
    ("my-ip-not-an-address", {"my_ip": "controller"}, "nova:my_ip",
     ()),
    ("db-admin-typo", {"database": {"admin": {"unix_socket": SOCKET, "usr": "root"}}},
     "nova:database:admin",
     ()),
    ("unknown-release", {"release": "queens"}, "nova:release", ()),
    ("hash-in-config-key", {"config": {"nova.conf": {"DEFAULT": {"#debug": True}}}},
     "nova:config", ()),
    ("cr-in-placement-password", {"placement": {"password": "pw\rx"}},
     "nova:placement:password", ()),
    ("slash-in-mq-password", {"messaging": {"password": "pw/x"}},
     "nova:messaging:password", ()),
    ("ks-admin-typo", {"identity": {"admin": {"auth_url": "http://127.0.0.1:5000/v3",
                                              "usernam": "admin"}}},
     "nova:identity:admin", ()),
]

assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


def _fill(value, tag):
    if isinstance(value, str):
        return tag + value[1:] if value.startswith("T") else value
    if isinstance(value, dict):
        return {k: _fill(v, tag) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, tag) for v in value]
    return value


class Case:
    def __init__(self, root, tag, change):
        self.tag = tag
        self.sandbox = Sandbox(os.path.join(root, "etc"))
        self.salt = SaltCall(os.path.join(root, "minion"), minion_id="ctl1",
                             grains=GRAINS["debian12"])
        data = example_pillar(tag, self.sandbox)
        data["nova"] = _change(data["nova"], _fill(change, tag))
        self.pillar = data
        self.salt.set_pillar(data)
        self.before = self.sandbox.fingerprint()

    def run(self):
        start = time.monotonic()
        self.code, self.data, self.proc = self.salt.run("state.apply", "nova", timeout=600)
        self.seconds = time.monotonic() - start
        self.after = self.sandbox.fingerprint()
        return self


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Run every case (and a valid control) through salt-call, 3 at a time."""
    keystone = Keystone(admin_cloud())
    db = Db()
    run = new_tag("rbp")
    root = tmp_path_factory.mktemp("bad-pillar")
    cases = {"control": Case(str(root / "control"), f"{run}c00", {})}
    for i, (cid, change, _key, _marks) in enumerate(CASES, 1):
        cases[cid] = Case(str(root / cid), f"{run}c{i:02d}", change)
    start = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(Case.run, cases.values()))
        dbs, users = db.databases(run), db.users(run)
        records = keystone.named(run)
        for case in cases.values():
            case.dbs = [d for d in dbs if d.startswith(case.tag)]
            case.db_users = [u for u in users if u[0].startswith(case.tag)]
            case.records = {k: [n for n in v if n.startswith(case.tag)]
                            for k, v in records.items()}
            case.records = {k: v for k, v in case.records.items() if v}
        cases["_seconds"] = time.monotonic() - start
        yield cases
    finally:
        db.cleanup(run)
        keystone.cleanup(run)
        assert not db.databases(run) and not db.users(run) and not keystone.named(run)


def test_control_valid_pillar_changes_disk_db_and_keystone(corpus):
    case = corpus["control"]
    assert case.code == 0 and isinstance(case.data, dict), case.proc.stdout[-3000:]
    assert all(r["result"] is True for r in case.data.values())
    assert case.after != case.before
    assert case.dbs == sorted([case.tag, case.tag + "_api", case.tag + "_cell0"])
    assert {u for u, _ in case.db_users} == {case.tag}
    assert case.records["users"] == [case.tag + "_u"]
    assert case.records["projects"] == [case.tag + "_p"]
    assert case.records["services"] == [case.tag + "_s"]


@pytest.mark.parametrize("cid,key", [
    pytest.param(cid, key, id=cid, marks=list(marks)) for cid, _change, key, marks in CASES])
def test_bad_pillar_is_refused_before_anything_changes(corpus, cid, key):
    case = corpus[cid]
    assert case.code != 0, f"the run succeeded (rc 0) with a bad {key}"
    assert isinstance(case.data, dict), f"no state data (render error?):\n{case.proc.stdout[-2000:]}"
    assert list(case.data) and all("nova-pillar-valid" in k for k in case.data), (
        f"states other than the validation ran: {sorted(case.data)[:8]}")
    ret = next(iter(case.data.values()))
    assert ret["result"] is False and not ret["changes"]
    header, *messages = ret["comment"].split("\n")
    assert header == "Invalid pillar, nothing was changed:", ret["comment"]
    assert len(messages) == 1, messages
    assert messages[0].startswith(key + ": "), messages
    assert "Traceback" not in ret["comment"] + case.proc.stderr
    nova = case.pillar["nova"]
    for secret in (nova["database"].get("password"), nova["messaging"].get("password"),
                   nova["identity"].get("password"), nova["placement"]["password"]):
        if isinstance(secret, str):
            assert secret not in ret["comment"]
    # nothing changed on disk, in the DB, in Keystone
    assert case.after == case.before
    assert case.dbs == [] and case.db_users == []
    assert case.records == {}


def test_corpus_size_and_speed(corpus):
    """Figures for docs/reliability.md; the bound is generous (2 cores, shared)."""
    seconds = corpus["_seconds"]
    print(f"\nbad-pillar corpus: {len(CASES)} cases + 1 control in {seconds:.0f} s")
    assert len(CASES) >= 30
    assert seconds < 600
