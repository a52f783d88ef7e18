"""Secrets audit: sentinel passwords never show, and they work.

The database, identity and config parts of the formula (``state.apply nova``,
all-in-one, packages/services/... switched off by nova:manage) are applied
with unique sentinel passwords for the database, RabbitMQ, the Keystone user,
placement, neutron and the metadata secret. Each sentinel holds
``@ : / % # & ' " \\`` and a space around a random core.

- ``test=True`` in the highstate, json and yaml outputters (everything would
  be created), then a real apply that creates everything in each of the
  three outputters (the records are dropped between them), then a no-op;
  console log at debug, minion log file at debug, Salt's job cache on.
- Searched (tests/secret_audit.py): every stdout/stderr, the minion folder
  (log, cache, job cache), /var/log, /tmp and the argv of every process
  sampled every 20 ms during the whole test. The pillar file (the input),
  the managed config files (0640 root:nova, checked) and Salt's own compiled
  state cache (highstate.cache.p, 0600 root, checked) are the only places
  the secrets may be. Zero hits.
- The same passwords work: the DB login with the URL read back from
  nova.conf, the broker login with transport_url decoded the way
  oslo.messaging does, both again through Debian's oslo.messaging, kombu and
  SQLAlchemy themselves, a Keystone token for the user with the credentials
  of [keystone_authtoken]. The RabbitMQ sentinel has no "/" (refused by the
  validator: oslo.messaging cannot carry it).
"""
import grp
import json
import os
import re
import stat
import subprocess
import sys
from urllib.parse import unquote, urlparse

import amqp
import pymysql
import pytest

from formula_support import GRAINS
from harness import SALT_CALL, SaltCall
from reliability_support import (Db, Keystone, Sandbox, admin_cloud, example_pillar, group,
                                 ini_value, new_tag, oslo_login)
from secret_audit import ArgvSampler, audit, describe, forms, sentinel

OUTPUTTERS = ("highstate", "json", "yaml")


def oslo_transport_url(url):
    """Decode ``rabbit://user:pass@host:port/vhost`` like oslo.messaging's
    TransportURL.parse: hosts split on ',', user/password on the last '@'
    and the first ':', each percent-decoded; the vhost is the decoded path."""
    parts = urlparse(url)
    host = parts.netloc.split(",")[0]
    username = password = None
    if "@" in host:
        username, host = host.rsplit("@", 1)
        if ":" in username:
            username, password = username.split(":", 1)
            password = unquote(password)
        username = unquote(username)
    if host.startswith("[") and host.endswith("]"):  # IPv6 literal, no port
        hostname, port = host, ""
    else:
        hostname, _, port = host.rpartition(":") if ":" in host else (None, None, host)
        hostname, port = (hostname, port) if hostname is not None else (port, "")
    return {"transport": parts.scheme, "username": username, "password": password,
            "hostname": hostname.strip("[]"), "port": int(port) if port else None,
            "virtual_host": unquote(parts.path[1:]) if parts.path else None}


def sqlalchemy_url(url):
    """Decode a SQLAlchemy URL the way sqlalchemy.engine.url.make_url does."""
    match = re.match(r"(?P<name>[\w+]+)://(?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?"
                     r"(?:\[(?P<ipv6>[^/?]+)\]|(?P<host>[^/?:]+))?(?::(?P<port>[^/?]*))?"
                     r"(?:/(?P<database>[^?]*))?(?:\?(?P<query>.*))?$", url)
    out = match.groupdict()
    return {"user": unquote(out["username"]), "password": unquote(out["password"]),
            "host": out["ipv6"] or out["host"], "port": int(out["port"] or 3306),
            "database": out["database"]}


# ------------------------------------------------------------ the auditor itself

def test_auditor_finds_each_form_everywhere(tmp_path):
    """The auditor can fail: a planted sentinel is found in every encoding, in
    an output, a file, a nested folder and a live process's argv."""
    secret = sentinel("plant")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    kinds = sorted(forms(secret))
    assert {"raw", "url", "json", "repr", "core", "base64"} <= set(kinds)
    for kind in kinds:
        (tmp_path / "deep" / "er" / f"{kind}.log").write_bytes(
            b"\x00binary\xff" + forms(secret)[kind].encode() + b"\n")
    clean = sentinel("clean")
    with ArgvSampler() as argv:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)",
                                 forms(secret)["url"]])
        proc.wait()
    hits = audit([clean, secret], outputs={"out": "x" + json.dumps(secret)},
                 paths=[tmp_path], argv=argv)
    where = {h.where.split("@")[0] for h in hits}
    assert {h.sentinel for h in hits} == {1}, describe(hits)
    assert "output:out" in where
    for kind in kinds:
        assert f"file:{tmp_path}/deep/er/{kind}.log" in where, (kind, describe(hits))
    assert any(w.startswith("cmdline:") and "python" in w for w in where), describe(hits)
    assert argv.samples >= 10
    # a hit never holds the secret itself
    assert not any(forms(secret)["core"] in str(h) for h in hits)
    # excluded paths are not searched
    assert not audit([secret], paths=[tmp_path], exclude=[tmp_path / "deep"])


# ------------------------------------------------------------ the deployment

@pytest.fixture(scope="module")
def rabbit():
    """A RabbitMQ vhost and user for the sentinel; the password goes on stdin."""
    tag = new_tag("rsq")
    # no "/" in a RabbitMQ password: oslo.messaging cannot carry it (the
    # validator refuses it; tests/test_oslo_url_limits.py shows why)
    user, vhost, password = tag + "_mq", tag + "/vh", sentinel("mq", without="/")

    def ctl(*args, stdin=None):
        proc = subprocess.run(["rabbitmqctl", "-q", *args], input=stdin, text=True,
                              capture_output=True, timeout=120)
        return proc.returncode, proc.stdout + proc.stderr

    code, out = ctl("status")
    assert code == 0, f"RabbitMQ is not running (rabbitmqctl status): {out[-500:]}"
    try:
        assert ctl("add_vhost", vhost)[0] == 0
        code, out = ctl("add_user", user, stdin=password + "\n")
        assert code == 0, out
        assert ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")[0] == 0
        yield {"user": user, "vhost": vhost, "password": password}
    finally:
        ctl("delete_user", user)
        ctl("delete_vhost", vhost)


def _salt(sc, out, test=False):
    cmd = [SALT_CALL, "--local", "-c", sc.config_dir, f"--out={out}", "--retcode-passthrough",
           "-l", "debug", "state.apply", "nova"] + (["test=True"] if test else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return proc


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, rabbit, debian_nova_common):
    tag = new_tag("rsc")
    root = tmp_path_factory.mktemp("secrets")
    with open(os.path.join(debian_nova_common, "nova.conf")) as fh:
        sandbox = Sandbox(root / "etc", nova_conf=fh.read(), mode=0o644)
    secrets = {"database": sentinel("db"), "messaging": rabbit["password"],
               "identity": sentinel("ks"), "placement": sentinel("pl"),
               "neutron": sentinel("neu"), "metadata": sentinel("meta")}
    data = example_pillar(tag, sandbox, **{
        "database": {"password": secrets["database"]},
        "messaging": {"user": rabbit["user"], "password": secrets["messaging"],
                      "virtual_host": rabbit["vhost"]},
        "identity": {"password": secrets["identity"]},
        "placement": {"password": secrets["placement"]},
        "network": {"neutron": {"password": secrets["neutron"],
                                "metadata_secret": secrets["metadata"]}},
        "compute": {"driver": "fake.FakeDriver"},  # nova-compute.conf is managed too
    })
    sc = SaltCall(root / "minion", minion_id="ctl1", grains=GRAINS["debian12"],
                  extra_opts={"cache_jobs": True})
    sc.set_pillar(data)
    keystone, db = Keystone(admin_cloud()), Db()
    try:
        with group("nova"):
            runs, argv = _deploy(sc, sandbox, db, keystone, tag)
            yield {"tag": tag, "sc": sc, "sandbox": sandbox, "secrets": secrets, "runs": runs,
                   "argv": argv, "pillar": data, "keystone": keystone, "rabbit": rabbit}
    finally:
        db.cleanup(tag)
        keystone.cleanup(tag)


def _deploy(sc, sandbox, db, keystone, tag):
    """dry runs in each outputter, a creating run in each, then a no-op."""
    runs = {}
    with ArgvSampler() as argv:
        for out in OUTPUTTERS:
            runs[f"dry-{out}"] = _salt(sc, out, test=True)
        for i, out in enumerate(OUTPUTTERS):
            if i:  # start from scratch, so each outputter shows the creation
                db.cleanup(tag)
                keystone.cleanup(tag)
                sandbox.restore()
            runs[f"apply-{out}"] = _salt(sc, out)
        runs["noop-json"] = _salt(sc, "json")
    return runs, argv


def test_every_run_did_its_job(deployed):
    runs = deployed["runs"]
    for name, proc in runs.items():
        assert proc.returncode == 0, f"{name}: rc {proc.returncode}\n{proc.stdout[-2000:]}"
        assert "Traceback" not in proc.stdout + proc.stderr, name
    assert re.search(r"\nFailed: +0\n", runs["apply-highstate"].stdout)
    dry = json.loads(runs["dry-json"].stdout)["local"]
    assert [r["__id__"] for r in dry.values() if r["result"] is None and r["changes"]], \
        "test=True should report the records and files it would create"
    noop = json.loads(runs["noop-json"].stdout)["local"]
    assert not [r["__id__"] for r in noop.values() if r["changes"]]
    assert all(r["result"] is True for r in noop.values())
    # the creation was shown in every outputter (the masks are there)
    for out in OUTPUTTERS:
        assert "********" in runs[f"apply-{out}"].stdout, out


def test_no_secret_anywhere_a_user_could_see(deployed):
    sc, sandbox = deployed["sc"], deployed["sandbox"]
    jobs = os.path.join(sc.opts["cachedir"], "minion_jobs")
    assert os.path.isdir(jobs) and os.listdir(jobs), "the job cache was not written"
    with open(sc.log_file) as fh:
        assert "[DEBUG   ]" in fh.read(), "the minion log is not at debug level"
    outputs = {}
    for name, proc in deployed["runs"].items():
        outputs[name + ":stdout"] = proc.stdout
        outputs[name + ":stderr"] = proc.stderr
    paths = ["/var/log", "/tmp"]
    if not os.path.realpath(sc.root).startswith("/tmp/"):
        paths.append(sc.root)

    # Salt itself writes the compiled states (the SLS arguments, so the
    # passwords, like the pillar they come from) to <cachedir>/highstate.cache.p
    # on every state.apply, for `state.apply cache=True`. Root-only, like the
    # pillar: checked for that, then left out of the search.
    compiled = os.path.join(sc.opts["cachedir"], "highstate.cache.p")
    st = os.stat(compiled)
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o600, 0)

    class Stats:
        pass

    stats = Stats()
    hits = audit(list(deployed["secrets"].values()), outputs=outputs, paths=paths,
                 argv=deployed["argv"], stats=stats,
                 exclude=[sc.pillar_dir, compiled, *sandbox.files.values()])
    argv = deployed["argv"]
    print(f"\nsecrets audit: {len(deployed['secrets'])} sentinels x "
          f"{len(forms(deployed['secrets']['database']))} forms; {len(outputs)} outputs, "
          f"{stats.files} files ({stats.bytes >> 20} MiB), {argv.samples} argv sweeps of "
          f"{len(argv.seen)} distinct processes; {len(hits)} hits")
    assert argv.samples > 100
    assert not hits, describe(hits)


def test_secret_files_are_0640_root_nova(deployed):
    nova_gid = grp.getgrnam("nova").gr_gid
    sandbox = deployed["sandbox"]
    for fid in ("nova_conf", "compute_conf"):
        st = os.stat(sandbox.files[fid])
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, nova_gid), fid
    # they were 0644 root:root: the first real apply narrowed them and said so
    first = json.loads(deployed["runs"]["apply-json"].stdout)["local"]
    conf = next(r for r in first.values() if r["__id__"] == "nova-config-nova_conf-permissions")
    assert conf["changes"]["permissions"]["mode"] == {"old": "0644", "new": "0640"}
    assert conf["changes"]["permissions"]["group"] == {"old": "root", "new": "nova"}
    assert "mode" in conf["comment"]


def test_database_password_works_from_the_written_url(deployed):
    text = deployed["sandbox"].read()
    for section, database in (("database", deployed["tag"]),
                              ("api_database", deployed["tag"] + "_api")):
        url = sqlalchemy_url(ini_value(text, section, "connection"))
        assert url["password"] == deployed["secrets"]["database"]
        assert url["database"] == database
        conn = pymysql.connect(host=url["host"], port=url["port"], user=url["user"],
                               password=url["password"].encode(), database=url["database"])
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT DATABASE(), CURRENT_USER()")
                name, user = cur.fetchone()
        finally:
            conn.close()
        assert name == database and user.startswith(deployed["tag"] + "@")


def test_nova_libraries_log_in_with_the_written_urls(deployed):
    """oslo.messaging + kombu and SQLAlchemy, as installed for Nova, read the
    sentinel passwords back out of the written URLs and log in with them."""
    text = deployed["sandbox"].read()
    for section in ("database", "api_database"):
        got = oslo_login(transport_url=ini_value(text, "DEFAULT", "transport_url"),
                         database_connection=ini_value(text, section, "connection"))
        assert got == {"transport_url": {"ok": True},
                       "database_connection": {"ok": True}}, (section, got)


def test_broker_password_works_from_transport_url(deployed):
    url = oslo_transport_url(ini_value(deployed["sandbox"].read(), "DEFAULT", "transport_url"))
    rabbit = deployed["rabbit"]
    assert (url["username"], url["password"], url["virtual_host"]) == (
        rabbit["user"], rabbit["password"], rabbit["vhost"])
    conn = amqp.Connection(host=f"{url['hostname']}:{url['port']}", userid=url["username"],
                           password=url["password"], virtual_host=url["virtual_host"],
                           connect_timeout=10)
    conn.connect()
    try:
        assert conn.connected
    finally:
        conn.close()
    # and a wrong password is refused, so the login above proves something
    bad = amqp.Connection(host=f"{url['hostname']}:{url['port']}", userid=url["username"],
                          password=url["password"] + "x", virtual_host=url["virtual_host"],
                          connect_timeout=10)
    with pytest.raises(Exception):
        bad.connect()


def test_keystone_password_works_from_keystone_authtoken(deployed):
    text = deployed["sandbox"].read()
    get = lambda key: ini_value(text, "keystone_authtoken", key)  # noqa: E731
    assert get("password") == deployed["secrets"]["identity"]
    token = deployed["keystone"].token_for(get("auth_url") + "/v3", get("username"),
                                           get("password"), get("project_name"))
    assert token
    # metadata secret written verbatim (oslo reads the value as is)
    assert ini_value(text, "neutron", "metadata_proxy_shared_secret") == deployed["secrets"]["metadata"]
