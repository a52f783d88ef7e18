"""A no-op apply on the real all-in-one starts no Python interpreter and no
nova-manage (issue 17): every process the run starts is seen with
``strace -f -e trace=execve``, beside the same salt-call applying one
``test.nop`` (Salt's own floor: its grains run a few commands of their own,
e.g. Debian's ``lsb_release``, a Python script). What the no-op starts beyond
that floor must be neither a Python interpreter (by name, or a script whose
``#!`` names one) nor nova-manage.

Needs the deployed all-in-one (aio.sh, run first if it is not converged);
changes nothing on it.
"""
import json
import os
import re
import subprocess
import tempfile

import pytest
import yaml

from test_e2e import AIO_DIR, apply, nova_pids

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SALT_CALL = os.path.join(REPO, ".venv", "bin", "salt-call")
EXECVE = re.compile(r'^(\d+)\s+execve\("([^"]+)",.*\)\s*=\s*0\s*$')
PYTHON = re.compile(r"(^|/)(python[\d.]*|nova-manage)$")


def started(log_path):
    """The programs a traced run started (successful execve, all processes),
    but the traced command itself."""
    with open(log_path) as fh:
        found = [m.group(2) for m in map(EXECVE.match, fh) if m]
    return found[1:]


def pythonic(path):
    """True for a Python interpreter or nova-manage, by name or by its ``#!``."""
    if PYTHON.search(path):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(128)
    except OSError:
        return False
    return head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]


def traced(args, tmp_path, name):
    """(programs started, parsed state run) of a salt-call under strace; the
    run is bounded in time (a traced daemon restart would keep strace alive:
    a no-op restarts none)."""
    log = tmp_path / f"{name}.strace"
    cmd = ["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", str(log),
           SALT_CALL, "--local", "-c", os.path.join(AIO_DIR, "conf"), "--out=json",
           "-l", "quiet"] + args
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()  # strace itself (our child); it detaches from the tracees
        proc.communicate()
        pytest.fail(f"{name}: the traced apply did not end in 300 s (a daemon restarted?)")
    assert proc.returncode == 0, err[-2000:]
    return started(log), json.loads(out)["local"]


@pytest.fixture(scope="module")
def floor_sls():
    """An SLS holding one test.nop, in a file root of its own."""
    with tempfile.TemporaryDirectory() as root:
        with open(os.path.join(root, "nova_noop_floor.sls"), "w") as fh:
            fh.write("floor:\n  test.nop: []\n")
        yield root


def test_detector_sees_python_and_nova_manage(tmp_path):
    """The check can fail: a shell starting python3 is caught by name, a
    script with a python ``#!`` by its first line."""
    script = tmp_path / "nova-tool"
    script.write_text("#!/usr/bin/python3\nprint('x')\n")
    script.chmod(0o755)
    log = tmp_path / "t.strace"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o",
                    str(log), "sh", "-c", f"python3 -c pass; {script}; true"],
                   check=True, timeout=60, capture_output=True)
    progs = started(log)
    assert any(pythonic(p) for p in progs if p.endswith("python3")), progs
    assert pythonic(str(script))
    assert not pythonic("/usr/sbin/runlevel") and not pythonic("/bin/sh")
    assert pythonic("/usr/bin/nova-manage")


def test_noop_apply_starts_no_python_and_no_nova_manage(tmp_path, floor_sls):
    run = apply()  # converged first (another run may have left something to do)
    assert run.returncode == 0, run.proc.stderr[-2000:]
    before = nova_pids()

    progs, data = traced(["state.apply", "nova"], tmp_path, "nova")
    changed = [r.get("__id__", k) for k, r in data.items() if r.get("changes")]
    assert not changed, f"not a no-op: {changed}"
    assert all(r["result"] is True for r in data.values())
    assert nova_pids() == before, "a no-op restarted a daemon"

    conf = tmp_path / "conf"
    conf.mkdir()
    with open(os.path.join(AIO_DIR, "conf", "minion")) as fh:
        text = fh.read()
    # the same minion config, the floor SLS's root added
    opts = yaml.safe_load(text)
    opts["file_roots"] = {"base": list(opts["file_roots"]["base"]) + [floor_sls]}
    (conf / "minion").write_text(yaml.safe_dump(opts))
    log = tmp_path / "floor.strace"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o",
                    str(log), SALT_CALL, "--local", "-c", str(conf), "--out=quiet", "-l",
                    "quiet", "state.apply", "nova_noop_floor"], check=True, timeout=300,
                   capture_output=True)
    floor = started(log)

    extra = list(progs)
    for prog in floor:  # what Salt starts anyway, once each time it does
        if prog in extra:
            extra.remove(prog)
    bad = sorted({p for p in extra if pythonic(p)})
    assert not bad, f"the no-op started {bad} (beyond Salt's own floor)"
    assert not any("nova-manage" in p for p in progs)
