#!/usr/bin/env python3
"""No-op apply of 3 databases x 2 host patterns: openstack_db vs saltext-mysql.

Both run in the same process image (a benchmark-only venv under
.cache/bench-venv that sees the project's .venv and adds saltext-mysql), with
``salt-call --local state.apply`` against the MariaDB on 127.0.0.1:3306, in
the same run and alternating. Time = sum of the states' own ``duration`` (so
salt-call's start-up, equal for both, is left out; wall time is printed too).
Round trips are counted inside pymysql for both tools (queries and connects).

    .venv/bin/python benchmarks/db.py [--runs 5]

Target: openstack_db's no-op <= 1/3 of saltext-mysql's time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness import SaltCall  # noqa: E402

VENV = os.path.join(REPO, ".cache", "bench-venv")
BENCH_PY = os.path.join(VENV, "bin", "python")
SALTEXT = "saltext-mysql==1.1.0"
PASSWORD = "bench'pw\\%@:/ x"

COUNTER = '''
"""Count pymysql round trips of this process into $OSDB_BENCH_COUNT (benchmark only)."""
import atexit, json, os
_path = os.environ.get("OSDB_BENCH_COUNT")
if _path:
    import pymysql.connections as _c
    _n = {"queries": 0, "connects": 0}
    _query, _connect = _c.Connection.query, _c.Connection.connect
    def query(self, *a, **k):
        _n["queries"] += 1
        return _query(self, *a, **k)
    def connect(self, *a, **k):
        _n["connects"] += 1
        return _connect(self, *a, **k)
    _c.Connection.query, _c.Connection.connect = query, connect
    @atexit.register
    def _dump():
        with open(_path, "w") as fh:
            json.dump(_n, fh)
'''

OURS = """
{%- for db in DBS %}
db_{{ loop.index }}:
  openstack_db.database_present:
    - name: {{ db }}
{%- endfor %}
{%- for host in HOSTS %}
{%- set h = loop.index %}
user_{{ h }}:
  openstack_db.user_present:
    - name: USER
    - host: '{{ host }}'
    - password: {{ pillar['pw'] | yaml_encode }}
{%- for db in DBS %}
grant_{{ h }}_{{ loop.index }}:
  openstack_db.grants_present:
    - name: USER
    - host: '{{ host }}'
    - database: {{ db }}
    - privileges: ALL
{%- endfor %}
{%- endfor %}
"""

THEIRS = """
{%- for db in DBS %}
db_{{ loop.index }}:
  mysql_database.present:
    - name: {{ db }}
    - character_set: utf8mb4
{%- endfor %}
{%- for host in HOSTS %}
{%- set h = loop.index %}
user_{{ h }}:
  mysql_user.present:
    - name: USER
    - host: '{{ host }}'
    - password: {{ pillar['pw'] | yaml_encode }}
{%- for db in DBS %}
grant_{{ h }}_{{ loop.index }}:
  mysql_grants.present:
    - grant: ALL PRIVILEGES
    - database: {{ db }}.*
    - user: USER
    - host: '{{ host }}'
{%- endfor %}
{%- endfor %}
"""


def ensure_venv():
    """The benchmark's own venv: the project's packages + saltext-mysql + a counter."""
    site = os.path.join(VENV, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}",
                        "site-packages")
    if not os.path.exists(BENCH_PY):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    import sysconfig

    with open(os.path.join(site, "main-venv.pth"), "w") as fh:
        fh.write(sysconfig.get_paths()["purelib"] + "\n")
    with open(os.path.join(site, "osdb_bench_counter.py"), "w") as fh:
        fh.write(COUNTER)
    with open(os.path.join(site, "osdb_bench_counter.pth"), "w") as fh:
        fh.write("import osdb_bench_counter\n")
    probe = subprocess.run([BENCH_PY, "-c", "import saltext.mysql"], capture_output=True)
    if probe.returncode:
        # --no-deps: salt and pymysql come from the project's venv through the .pth.
        subprocess.run([BENCH_PY, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--no-deps", SALTEXT], check=True)


class BenchCall(SaltCall):
    """salt-call run by the benchmark venv's interpreter, counting round trips."""

    def run(self, fun, *args, **kwargs):
        count_file = os.path.join(self.root, "count.json")
        cmd = [BENCH_PY, "-c", "import sys; from salt.scripts import salt_call; "
               "sys.argv[0] = 'salt-call'; salt_call()",
               "--local", "-c", self.config_dir, "--out=json", "--retcode-passthrough",
               "-l", "quiet", fun, *[str(a) for a in args]]
        env = dict(os.environ, OSDB_BENCH_COUNT=count_file)
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        wall = time.perf_counter() - start
        try:
            data = json.loads(proc.stdout)["local"]
        except (ValueError, KeyError, TypeError):
            raise SystemExit(f"{fun} failed:\n{proc.stdout}\n{proc.stderr}") from None
        with open(count_file) as fh:
            counts = json.load(fh)
        if not isinstance(data, dict):
            raise SystemExit(f"no state data: {data}")
        failed = {k: v["comment"] for k, v in data.items() if v.get("result") is False}
        if failed:
            raise SystemExit(f"states failed: {json.dumps(failed, indent=1)}")
        states_ms = sum(float(v.get("duration", 0)) for v in data.values())
        changed = sum(1 for v in data.values() if v.get("changes"))
        return {"states_ms": states_ms, "wall_s": wall, "changed": changed,
                "count": len(data), **counts}


def make(root, text, prefix, extra_opts=None):
    call = BenchCall(root, extra_opts=extra_opts)
    dbs = [prefix, f"{prefix}_api", f"{prefix}_cell0"]
    text = text.replace("USER", prefix).replace(
        "DBS", json.dumps(dbs)).replace("HOSTS", json.dumps(["%", "localhost"]))
    call.write_sls("bench", text)
    call.set_pillar({"pw": PASSWORD})
    return call


def cleanup(prefixes):
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with conn.cursor() as cur:
        for prefix in prefixes:
            cur.execute("SELECT User, Host FROM mysql.user WHERE User = %s", (prefix,))
            for user, host in cur.fetchall():
                cur.execute("DROP USER %s@%s", (user, host))
            for db in (prefix, f"{prefix}_api", f"{prefix}_cell0"):
                cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
    conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ensure_venv()
    tag = uuid.uuid4().hex[:6]
    ours_prefix, theirs_prefix = f"bo{tag}", f"bt{tag}"
    tmp = tempfile.mkdtemp(prefix="osdb-bench-")
    ours = make(os.path.join(tmp, "ours"), OURS, ours_prefix)
    theirs = make(os.path.join(tmp, "theirs"), THEIRS, theirs_prefix, extra_opts={
        "mysql.host": "127.0.0.1", "mysql.port": 3306, "mysql.user": "root", "mysql.pass": ""})
    try:
        first = {"openstack_db": ours.run("state.apply", "bench"),
                 "saltext-mysql": theirs.run("state.apply", "bench")}
        results = {"openstack_db": [], "saltext-mysql": []}
        for _ in range(args.runs):
            results["openstack_db"].append(ours.run("state.apply", "bench"))
            results["saltext-mysql"].append(theirs.run("state.apply", "bench"))
    finally:
        cleanup([ours_prefix, theirs_prefix])

    print(f"no-op apply, 3 databases x 2 host patterns (11 states), {args.runs} runs each, "
          "median; MariaDB on 127.0.0.1:3306")
    print(f"{'tool':15} {'first apply':>12} {'states ms':>10} {'wall s':>7} {'queries':>8} "
          f"{'connects':>9} {'changed':>8}")
    medians = {}
    for tool, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("states_ms", "wall_s", "queries", "connects", "changed")}
        medians[tool] = med
        print(f"{tool:15} {first[tool]['states_ms']:10.1f}ms {med['states_ms']:10.1f} "
              f"{med['wall_s']:7.2f} {med['queries']:8.0f} {med['connects']:9.0f} "
              f"{med['changed']:8.0f}")
    ratio = medians["openstack_db"]["states_ms"] / medians["saltext-mysql"]["states_ms"]
    print(f"ratio openstack_db / saltext-mysql (state time): {ratio:.3f} "
          f"(target <= 0.333: {'met' if ratio <= 1 / 3 else 'NOT met'})")
    if medians["openstack_db"]["changed"] or medians["saltext-mysql"]["changed"]:
        print("note: a tool reported changes on a no-op run (not idempotent)")


if __name__ == "__main__":
    main()
