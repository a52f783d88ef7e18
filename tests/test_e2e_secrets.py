"""Secrets audit of the whole all-in-one deploy, with a server boot.

Runs after tests/test_e2e.py (which leaves the all-in-one deployed; if it is
not, aio.sh deploys it). The Keystone password of the nova user and the
metadata secret become sentinels holding every URL, shell, SQL and JSON
special character (``@ : / % # & ' " \\`` and a space); the database and
RabbitMQ passwords stay the deploy's random hex ones (tests/test_e2e.py
checks argv and output for those; other tests keep copies of that pillar
under /tmp): Zed itself breaks on such characters inside those two URLs
(README, "Known limits"). A full ``aio.sh`` (apply, services, a server to ACTIVE) runs under
an argv sampler, then everything a local user could read is searched.
"""
import os
import stat
import subprocess

from harness import REPO
from secret_audit import ArgvSampler, audit, describe, sentinel

STATE_DIR = "/var/lib/nova-formula-tests"
AIO_DIR = os.path.join(STATE_DIR, "aio")
AIO = os.path.join(REPO, "tests", "support", "aio.sh")
ROTATED = {"aio-keystone-nova": "keystone-nova", "aio-metadata-secret": "metadata"}
CONFIG_FILES = ("/etc/nova/nova.conf", "/etc/nova/api-paste.ini", "/etc/nova/nova-compute.conf")


def _password_file(name):
    return os.path.join(STATE_DIR, f"{name}.password")


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


def _token(password):
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(auth_url="http://127.0.0.1:5000/v3", username="nova", password=password,
                       project_name="service", user_domain_name="Default",
                       project_domain_name="Default")
    return session.Session(auth=auth).get_token()


def test_full_deploy_with_sentinel_passwords_leaks_nothing_and_boots_a_server():
    secrets = {name: sentinel(label) for name, label in ROTATED.items()}
    try:
        for name, value in secrets.items():
            _write_private(_password_file(name), value)
        with ArgvSampler() as argv:
            proc = subprocess.run(["bash", AIO], capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        assert "server: ACTIVE" in proc.stdout, proc.stdout[-3000:]
        assert _token(secrets["aio-keystone-nova"])  # the sentinel password works

        for path in CONFIG_FILES:
            if os.path.exists(path):
                st = os.stat(path)
                assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0, path

        cachedir = os.path.join(AIO_DIR, "cache")
        hits = audit(list(secrets.values()),
                     outputs={"aio.sh:stdout": proc.stdout, "aio.sh:stderr": proc.stderr},
                     paths=["/var/log", "/tmp", AIO_DIR], argv=argv,
                     exclude=[os.path.join(AIO_DIR, "pillar"),
                              os.path.join(cachedir, "highstate.cache.p")])
        assert not hits, describe(hits)
    finally:
        # The next deploy makes fresh random passwords (and puts them in place).
        for name in secrets:
            try:
                os.unlink(_password_file(name))
            except FileNotFoundError:
                pass
