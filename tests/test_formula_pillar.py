"""Pillar validation: bad values fail the real run with the key named and
nothing changed; pillar.example validates and documents every key; the URL
helpers encode any password. The checks of the validator itself are also
exercised in-process (fast), the run-level behaviour through salt-call."""
import functools
import os
import subprocess
import sys
import tempfile
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from formula_support import GRAINS, SECRETS, merge, pillar
from harness import REPO, load_module
from map_render import MapRenderer


schema = load_module("utils", "nova_schema")
dialects = load_module("utils", "nova_dialects")
state_utils = load_module("utils", "openstack_state")


@functools.lru_cache(maxsize=None)
def _renderer():
    """The real map.jinja (defaults, OS family, release, pillar) in-process."""
    return MapRenderer(tempfile.mkdtemp(prefix="nova-map-"), "debian12", minion_id="ctl1")


def errors(raw):
    return _renderer()({"nova": raw})["plan"]["errors"]


BAD = [
    # (what the operator got wrong, pillar change, key named in the message)
    ("missing password", {"database": {"password": None}}, "nova:database:password"),
    ("malformed URL", {"identity": {"auth_url": "controller:5000"}}, "nova:identity:auth_url"),
    ("unknown role", {"roles": ["api", "compute", "cert"]}, "nova:roles"),
    ("non-numeric ratio", {"compute": {"cpu_allocation_ratio": "lots"}},
     "nova:compute:cpu_allocation_ratio"),
    ("port out of range", {"messaging": {"port": 70000}}, "nova:messaging:port"),
    ("unknown release", {"release": "queens"}, "nova:release"),
]


def test_valid_pillar_has_no_errors():
    assert errors(pillar()["nova"]) == []
    assert errors(pillar("icehouse")["nova"]) == []


@pytest.mark.parametrize("what,change,key", BAD, ids=[b[0] for b in BAD])
def test_each_bad_value_is_named(what, change, key):
    raw = merge(pillar()["nova"], change)
    errs = errors(raw)
    assert len(errs) == 1, errs
    assert errs[0].startswith(key + ":"), errs


@pytest.mark.parametrize("change,key", [
    ({"messaging": {"password": None}}, "nova:messaging:password"),
    ({"identity": {"password": None}}, "nova:identity:password"),
    ({"placement": {"password": None}}, "nova:placement:password"),
    ({"network": {"neutron": {"password": None}}}, "nova:network:neutron:password"),
    ({"network": {"neutron": {"metadata_secret": None}}}, "nova:network:neutron:metadata_secret"),
    ({"network": {"neutron": {"url": "http://bad host:9696/"}}}, "nova:network:neutron:url"),
    ({"identity": {"endpoints": {"public": "http://h:99999/v2.1"}}},
     "nova:identity:endpoints:public"),
    ({"glance": {"api_servers": ["ftp://glance"]}}, "nova:glance:api_servers"),
    ({"compute": {"ram_allocation_ratio": True}}, "nova:compute:ram_allocation_ratio"),
    ({"compute": {"reserved_host_memory_mb": -1}}, "nova:compute:reserved_host_memory_mb"),
    ({"database": {"port": 0}}, "nova:database:port"),
    ({"firewall": {"vnc_ports": "5999:5900"}}, "nova:firewall:vnc_ports"),
    ({"firewall": {"api_port": "http"}}, "nova:firewall:api_port"),
    ({"network": {"plugin": "calico"}}, "nova:network:plugin"),
    ({"network": {"type": "nova-network"}}, "nova:network:type"),
    ({"roles": "compute"}, "nova:roles"),
    ({"database": {"paswsord": "x"}}, "nova:database:paswsord"),
    ({"role": ["compute"]}, "nova:role"),
    ({"config": {"nova.cfg": {}}}, "nova:config"),
    ({"api": {"ssl": {"enabled": True}}}, "nova:api:ssl:cert_file"),
    ({"fleet": {"sync_conductor": "ctl1"}, "roles": ["api"]}, "nova:fleet:sync_conductor"),
    ({"manage": {"services": "no"}}, "nova:manage:services"),
])
def test_more_bad_values_are_named(change, key):
    errs = errors(merge(pillar()["nova"], change))
    assert errs and errs[0].split(": ")[0] == key, errs


# Values a later engine (openstack_db, openstack_ini, Keystone, oslo.config)
# would refuse: refused up front, one message naming the key.
REFUSED = [
    ({"database": {"grant_hosts": []}}, "nova:database:grant_hosts"),
    ({"database": {"grant_hosts": ["%", "h'; --"]}}, "nova:database:grant_hosts"),
    ({"identity": {"user": "nova\nx"}}, "nova:identity:user"),
    ({"identity": {"password": "pw\rx"}}, "nova:identity:password"),
    ({"messaging": {"user": "mq\n"}}, "nova:messaging:user"),
    ({"glance": {"api_servers": ["http://g:9292", "http://h:9292\n"]}}, "nova:glance:api_servers"),
    ({"compute": {"driver": "fake.FakeDriver\nx"}}, "nova:compute:driver"),
    ({"config": {"nova.conf": {"DEFAULT": {"debug": "a\nb"}}}}, "nova:config"),
    ({"config": {"nova.conf": {" DEFAULT": {"debug": True}}}}, "nova:config"),
    ({"config": {"nova.conf": {"a=b": {}}}}, "nova:config"),
    ({"config": {"nova.conf": {"DEFAULT": {"a:b": 1}}}}, "nova:config"),
    ({"config": {"nova.conf": {"DEFAULT": {";x": 1}}}}, "nova:config"),
    ({"config": {"nova.conf": {"DEFAULT": {"x": {"nested": 1}}}}}, "nova:config"),
    ({"database": {"user": "u" * 33}}, "nova:database:user"),
    ({"database": {"user": "a b"}}, "nova:database:user"),
    ({"database": {"name": "n" * 59}}, "nova:database:name"),
    ({"identity": {"user": "u" * 256}}, "nova:identity:user"),
    ({"identity": {"project": "p" * 65}}, "nova:identity:project"),
    ({"identity": {"auth_url": "http://k:5000/v2.0/"}}, "nova:identity:auth_url"),
    ({"placement": {"auth_url": "http://k:5000/v2.0"}}, "nova:placement:auth_url"),
    ({"my_ip": "controller"}, "nova:my_ip"),
    ({"database": {"admin": {"user": "root", "usr": "x"}}}, "nova:database:admin"),
    ({"identity": {"admin": {"auth_url": "http://k/v3", "usernme": "a"}}}, "nova:identity:admin"),
    ({"fleet": {"discover": {"expect": -1}}}, "nova:fleet:discover:expect"),
    ({"fleet": {"discover": {"expect": ["cmp1", ""]}}}, "nova:fleet:discover:expect"),
    ({"messaging": {"password": "pw/x"}}, "nova:messaging:password"),
    ({"messaging": {"user": "mq/u"}}, "nova:messaging:user"),
    ({"database": {"password": "pw-é"}}, "nova:database:password"),
]


@pytest.mark.parametrize("change,key", REFUSED, ids=[k + "-" + str(i) for i, (_, k)
                                                     in enumerate(REFUSED)])
def test_values_later_engines_refuse_are_refused_first(change, key):
    errs = errors(merge(pillar()["nova"], change))
    assert len(errs) == 1 and errs[0].startswith(key + ": "), errs
    assert "\n" not in errs[0].split(": ", 1)[1] and "\r" not in errs[0]
    assert "pw" not in errs[0]  # the password is never quoted


@pytest.mark.parametrize("change", [
    {"database": {"name": "n" * 58, "user": "a.b$c-d_" + "e" * 24}},
    {"database": {"grant_hosts": ["%", "10.0.0.0/255.255.255.0", "ctl1.example.org"]}},
    {"my_ip": "2001:db8::1"},
    {"my_ip": None},
    {"identity": {"auth_url": "http://k:5000/v3"}},
    {"fleet": {"discover": {"expect": ["cmp1", "cmp2.example.org"]}}},
    {"fleet": {"discover": {"expect": 3}}},
    {"messaging": {"password": "@:%#&'\" \\?[]é"}, "database": {"password": "@:/%#&'\" \\"}},
    {"config": {"nova.conf": {"DEFAULT": {"debug": True, "x": None, "l": ["a", 1]}}}},
], ids=lambda c: next(iter(c)))
def test_edge_values_still_accepted(change):
    assert errors(merge(pillar()["nova"], change)) == []


def test_identity_v2_url_accepted_on_legacy_releases():
    legacy = merge(pillar("icehouse")["nova"],
                   {"identity": {"auth_url": "http://k:35357/v2.0"}, "database": {"name": "n" * 64}})
    assert errors(legacy) == []


def test_secret_values_never_quoted_in_messages():
    errs = errors(merge(pillar()["nova"], {"database": {"password": 123456789},
                                           "messaging": {"password": ["hunter2"]}}))
    assert len(errs) == 2
    assert not any("123456789" in e or "hunter2" in e for e in errs)


def test_required_secrets_depend_on_roles():
    compute_only = merge(pillar(roles=["compute"])["nova"], {"fleet": {"controllers": ["ctl9"]}})
    compute_only["database"]["password"] = None
    assert errors(compute_only) == []
    nothing = {"release": "zed", "roles": [], "fleet": {"controllers": ["ctl9"]}}
    assert errors(nothing) == []


def test_a_loopback_database_address_is_refused_where_other_hosts_read_the_cells():
    """The sync conductor writes its database URL into the cell mappings that
    every API, scheduler and conductor host reads: 127.0.0.1 there sends the
    others to their own machine (found on the fleet: a second conductor's
    builds hung). Alone (an all-in-one), loopback is fine."""
    alone = merge(pillar()["nova"], {"database": {"host": "127.0.0.1"},
                                     "fleet": {"controllers": ["ctl1"], "computes": ["cmp1"]}})
    assert errors(alone) == []
    split = merge(alone, {"fleet": {"conductors": ["ctl1", "cond1"], "sync_conductor": "ctl1"}})
    (err,) = errors(split)
    assert err.startswith("nova:database:host: 127.0.0.1 is written into the cell mappings"), err
    assert "cond1" in err
    assert errors(merge(split, {"database": {"host": "10.0.0.5"}})) == []
    # another conductor of that fleet does not write the cell mappings
    assert errors(merge(split, {"fleet": {"sync_conductor": "cond1"}})) == []


def _leaves(data, prefix="nova"):
    """The schema keys a pillar-shaped mapping sets (a mapping that is not a
    schema key is walked into; anything else is named as it is)."""
    keys = schema.schema()
    for key, value in data.items():
        path = f"{prefix}:{key}"
        if isinstance(value, dict) and path not in keys:
            yield from _leaves(value, path)
        else:
            yield path


def test_pillar_example_validates_and_documents_every_key():
    with open(os.path.join(REPO, "pillar.example")) as fh:
        example = yaml.safe_load(fh)["nova"]
    assert errors(example) == []
    assert set(_leaves(example)) == set(schema.schema())
    # every key is commented: on its line, just above it, or at its parent
    lines = open(os.path.join(REPO, "pillar.example")).read().splitlines()
    stack = []  # (indent, commented) of the enclosing mapping headers
    undocumented = []
    for i, line in enumerate(lines):
        body = line.split("#")[0].rstrip()
        if not body.strip() or body.strip().startswith("-"):
            continue
        indent = len(body) - len(body.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        commented = "#" in line or (i and lines[i - 1].strip().startswith("#"))
        if not (commented or any(c for _, c in stack)):
            undocumented.append(line.strip())
        if body.endswith(":"):
            stack.append((indent, commented and indent > 0))
    assert not undocumented, undocumented


def test_defaults_set_exactly_the_schema_keys():
    with open(os.path.join(REPO, "nova", "parameters", "defaults.yaml")) as fh:
        defaults = yaml.safe_load(fh)
    assert set(_leaves(defaults)) == set(schema.schema())


def test_docs_pillar_reference_is_generated_from_the_schema():
    """docs/pillar.md is tools/pillar_doc.py's output for today's schema and
    defaults, and names every key."""
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "pillar_doc.py"),
                           "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(REPO, "docs", "pillar.md")) as fh:
        doc = fh.read()
    missing = [key for key in schema.schema() if f"`{key}`" not in doc]
    assert not missing, f"docs/pillar.md lacks: {missing}"


@settings(max_examples=300, deadline=None)
@given(user=st.text(min_size=1, max_size=20), password=st.text(min_size=1, max_size=40),
       vhost=st.text(max_size=10))
def test_url_round_trips_any_credentials(user, password, vhost):
    nova = {"messaging": {"host": "mq", "port": 5672, "user": user, "password": password,
                          "virtual_host": vhost or "/"}}
    parts = urlsplit(dialects.transport_url(nova))
    assert parts.scheme == "rabbit" and parts.hostname == "mq" and parts.port == 5672
    assert unquote(parts.username) == user and unquote(parts.password) == password
    path = unquote(parts.path[1:])
    assert path == ("" if (vhost or "/") == "/" else vhost)


def test_db_url_ipv6_and_query():
    nova = {"database": {"driver": "mysql+pymysql", "host": "fd00::5", "port": 3306,
                         "user": "nova", "password": "a b", "name": "nova",
                         "api_name": "nova_api", "query": {"charset": "utf8"}}}
    assert dialects.db_url(nova, "api") == "mysql+pymysql://nova:a%20b@[fd00::5]:3306/nova_api?charset=utf8"


def test_mask_hides_secrets_and_url_passwords():
    text = "failed: mysql+pymysql://nova:p%40ss@db/nova and p@ss and rabbit://u:x@h/"
    out = state_utils.mask(text, ["p@ss"])
    assert "p@ss" not in out and "p%40ss" not in out and ":x@" not in out
    assert "********" in out


# ------------------------------------------------------------ the real run

@pytest.fixture
def nova_conf(tmp_path):
    path = tmp_path / "nova.conf"
    path.write_text("[DEFAULT]\nmy_ip = 192.0.2.2\n[database]\n")
    return path


@pytest.mark.parametrize("what,change,key", BAD, ids=[b[0] for b in BAD])
def test_bad_pillar_fails_the_run_and_changes_nothing(make_salt_call, nova_conf, what, change, key):
    sc = make_salt_call(minion_id="ctl1", grains=GRAINS["debian12"])
    # Everything real would run on a valid pillar (modulo the config path).
    data = pillar(lookup={"files": {"nova_conf": str(nova_conf), "api_paste": None,
                                    "compute_conf": None}, "group": "root"})
    data["nova"] = merge(data["nova"], change)
    sc.set_pillar(data)
    before = nova_conf.read_bytes(), os.stat(nova_conf).st_mode
    run = sc.apply("nova")
    assert run.returncode != 0
    assert list(run.states) == ["nova-pillar-valid"], list(run.states)
    comment = run["nova-pillar-valid"]["comment"]
    assert run["nova-pillar-valid"]["result"] is False
    assert f"\n{key}: " in comment, comment
    assert "Traceback" not in comment and SECRETS["database"] not in comment
    assert (nova_conf.read_bytes(), os.stat(nova_conf).st_mode) == before


def test_pillar_example_renders_through_salt(make_salt_call):
    sc = make_salt_call(minion_id="ctl1", grains=GRAINS["rocky9"])
    with open(os.path.join(REPO, "pillar.example")) as fh:
        sc.set_pillar(yaml.safe_load(fh))
    code, data, proc = sc.run("state.show_sls", "nova")
    assert code == 0 and isinstance(data, dict), proc.stdout + proc.stderr
    valid = data["nova-pillar-valid"]["test"]
    assert "succeed_without_changes" in valid
