#!/usr/bin/env bash
# Demo of the INI engine: apply a small state to a copy of Debian's real nova.conf
# through the real salt-call, print what changed, then show that a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
exec .venv/bin/python - <<'PY'
import os, sys, tempfile, shutil, subprocess, json
sys.path.insert(0, "tests")
from conftest import _debian_nova_common
from harness import SaltCall
work = tempfile.mkdtemp(prefix="nova-ini-demo-")
conf = os.path.join(work, "nova.conf")
shutil.copy(os.path.join(_debian_nova_common(), "nova.conf"), conf)
minion = SaltCall(os.path.join(work, "minion"))
minion.set_pillar({"demo": {"path": conf}})
minion.write_sls("demo", """
    nova-conf:
      openstack_ini.options_present:
        - name: {{ pillar.demo.path }}
        - sections:
            DEFAULT:
              cpu_allocation_ratio: 16.0
              ram_allocation_ratio: 1.5
              reserved_host_memory_mb: 512
              transport_url: rabbit://nova:demo-secret@127.0.0.1:5672/
            database:
              connection: mysql+pymysql://nova:demo-secret@127.0.0.1/nova
            placement:
              username: placement
    """)
for label in ("first apply", "second apply"):
    run = minion.apply("demo").assert_ok()
    state = run["nova-conf"]
    print(f"== {label}: {state['comment']}")
    print(json.dumps(state["changes"], indent=2))
print("== git diff of Debian's nova.conf and the result:")
subprocess.run(["git", "diff", "--no-index", "--stat", os.path.join(_debian_nova_common(), "nova.conf"), conf])
shutil.rmtree(work)
PY
