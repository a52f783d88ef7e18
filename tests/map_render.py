"""The real ``nova/map.jinja`` rendered by Salt's own loader, file client,
Jinja renderer and the formula's modules, with the grains of a platform and
any pillar: a fraction of a salt-call's cost per case, so the validator's
corpus and the per-platform map snapshots go through the real merge instead
of a copy of it.

    render = MapRenderer(tmp_path, "debian12", minion_id="ctl1")
    nova = render({"nova": {...}})         # the merged map, "plan" included

Salt's loader runs in a process of its own (this file, as a script, serving
one JSON line per render): loaded in pytest's process, it re-imports
libraries the tests hold (pymysql's exception classes stop matching).
"""
import atexit
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = '{%- from "nova/map.jinja" import nova with context %}{{ nova|json }}'
# the heavy client libraries a render may import (a compute's needs none of them)
LIBRARIES = ("keystoneauth1", "pymysql")


class MapRenderer:
    def __init__(self, root, platform="debian12", minion_id="ctl1", grains=None):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), str(root), platform, minion_id,
             json.dumps(grains or {})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE)
        atexit.register(self.close)

    def __call__(self, pillar):
        """The merged ``nova`` map (with its ``plan``) for ``pillar``."""
        self.proc.stdin.write(json.dumps(pillar) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the map renderer died (exit {self.proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        self.imported = answer["imported"]  # which of LIBRARIES the render process holds
        return answer["map"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def _serve(root, platform, minion_id, grains):
    import logging

    import salt.config
    from saltfactories.utils.functional import Loaders

    from formula_support import GRAINS
    from harness import REPO, formula_roots, host_minion_opts

    # Salt logs the rendered text at debug level: it holds the pillar's secrets.
    logging.getLogger("salt").setLevel(logging.WARNING)
    opts = salt.config.minion_config(None)
    opts.update({
        "id": minion_id, "file_client": "local", "root_dir": root,
        "cachedir": os.path.join(root, "cache"), "pki_dir": os.path.join(root, "pki"),
        # set with cachedir: minion_config derived it from the default one
        # (/var/cache/salt/minion), where a sync would leave our modules
        "extension_modules": os.path.join(root, "cache", "extmods"),
        "sock_dir": os.path.join(root, "sock"), "log_file": os.path.join(root, "minion.log"),
        "file_roots": {"base": [formula_roots()]}, "module_dirs": [REPO],
        "grains": dict(GRAINS[platform], id=minion_id, **grains), "pillar": {},
        "enable_fqdns_grains": False, "grains_cache": False,
    })
    opts.update(host_minion_opts())
    loaders = Loaders(opts)
    # the loaders compute this machine's grains: the platform's win, for the
    # modules (__grains__) and for the renderers (__opts__["grains"])
    for seen in (loaders.modules.pack["__grains__"], loaders.modules.opts["grains"]):
        seen.update(opts["grains"])
    live = loaders.modules.pack["__pillar__"]  # what pillar.get reads
    render = loaders.modules["slsutil.renderer"]
    for line in sys.stdin:
        live.clear()
        live.update(json.loads(line))
        try:
            answer = {"map": render(string=TEMPLATE, default_renderer="jinja|json",
                                    tpldir="nova")}
        except Exception as exc:  # noqa: BLE001 - reported to the test
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answer["imported"] = [m for m in LIBRARIES if m in sys.modules]
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    _serve(sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
