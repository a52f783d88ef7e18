"""Run the real ``salt-call --local`` against this repository.

Every integration test goes through :class:`SaltCall`: it writes a throw-away
minion config whose ``file_roots`` are this repo (so ``nova/`` is the ``nova``
SLS tree) plus a per-test folder for ad-hoc SLS, whose ``module_dirs`` load
``_modules``/``_states`` straight from the repo, and whose pillar comes from
files (never from the command line, so secrets stay out of argv).
"""
import glob
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import textwrap

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
SALT_CALL = os.path.join(VENV_BIN, "salt-call")


def load_module(kind, name, as_name=None):
    """A fresh copy of ``_<kind>/<name>.py`` (kind: modules, states or utils)
    imported as a plain module, for unit tests that set its dunders
    themselves; ``__utils__`` is set as Salt's loader would (see utils())."""
    spec = importlib.util.spec_from_file_location(
        as_name or f"{kind}_{name}", os.path.join(REPO, f"_{kind}", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if kind != "utils":
        mod.__utils__ = utils()
    return mod


def utils():
    """What Salt's loader gives a module as ``__utils__``: every public
    function of ``_utils/*.py``, as ``"<module>.<function>"``."""
    funcs = {}
    for path in sorted(glob.glob(os.path.join(REPO, "_utils", "*.py"))):
        name = os.path.basename(path)[:-3]
        mod = load_module("utils", name)
        for attr, value in vars(mod).items():
            if not attr.startswith("_") and inspect.isfunction(value):
                funcs[f"{name}.{attr}"] = value
    return funcs


def formula_roots():
    """A file_roots folder holding only the formula, as an operator's master
    would serve it (nova/ and the _modules, _states, _utils a sync_all sends
    to minions), as links into this repo: with the repo itself as file root,
    Salt's file server would walk .venv and .git on every run (seconds)."""
    root = os.path.join(REPO, ".cache", "file_roots")
    os.makedirs(root, exist_ok=True)
    for name in ("nova", "_modules", "_states", "_utils"):
        link = os.path.join(root, name)
        if not os.path.islink(link):
            try:
                os.symlink(os.path.join(REPO, name), link)
            except FileExistsError:
                pass
    return root


def host_minion_opts():
    """Minion options this machine needs, as docs/operations.md says:
    systemctl is installed but systemd is not PID 1 (a container), so Salt's
    systemd module would run "offline" and do nothing; keep it out so the
    init scripts are used (the formula refuses to run otherwise)."""
    if not os.path.isdir("/run/systemd/system") and os.path.exists("/etc/debian_version"):
        return {"disable_modules": ["systemd_service"]}
    return {}


class SaltCallError(AssertionError):
    pass


class SaltCall:
    """One masterless minion, rooted in ``root`` (a temporary folder)."""

    def __init__(self, root, minion_id="test-minion", grains=None, extra_opts=None):
        self.root = str(root)
        self.config_dir = os.path.join(self.root, "conf")
        self.state_dir = os.path.join(self.root, "states")
        self.pillar_dir = os.path.join(self.root, "pillar")
        self.log_file = os.path.join(self.root, "minion.log")
        for folder in (self.config_dir, self.state_dir, self.pillar_dir):
            os.makedirs(folder, exist_ok=True)
        opts = {
            "id": minion_id,
            "file_client": "local",
            "root_dir": self.root,
            "pki_dir": os.path.join(self.root, "pki"),
            "cachedir": os.path.join(self.root, "cache"),
            "sock_dir": os.path.join(self.root, "sock"),
            "log_file": self.log_file,
            "log_level_logfile": "debug",
            "file_roots": {"base": [self.state_dir, formula_roots()]},
            "pillar_roots": {"base": [self.pillar_dir]},
            "module_dirs": [REPO],
            "state_output_diff": True,
            "enable_fqdns_grains": False,
            "grains_cache": False,
        }
        if grains:
            opts["grains"] = grains
        opts.update(host_minion_opts())
        opts.update(extra_opts or {})
        self.opts = opts
        with open(os.path.join(self.config_dir, "minion"), "w") as fh:
            yaml.safe_dump(opts, fh)
        self.set_pillar({})

    def write_sls(self, name, text):
        """Write an ad-hoc SLS ``name`` (dots become folders) and return its name."""
        path = os.path.join(self.state_dir, *name.split(".")) + ".sls"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write(textwrap.dedent(text))
        return name

    def set_pillar(self, data):
        """Make ``data`` this minion's whole pillar (through pillar_roots files)."""
        with open(os.path.join(self.pillar_dir, "top.sls"), "w") as fh:
            fh.write("base:\n  '*':\n    - data\n")
        with open(os.path.join(self.pillar_dir, "data.sls"), "w") as fh:
            yaml.safe_dump(data, fh)

    def run(self, fun, *args, out="json", check=False, timeout=900, env=None, **kwargs):
        """Run ``salt-call --local fun args kwargs``; return (returncode, parsed, raw)."""
        cmd = [SALT_CALL, "--local", "-c", self.config_dir, f"--out={out}",
               "--retcode-passthrough", "-l", "quiet", fun]
        cmd += [str(a) for a in args]
        cmd += [f"{k}={v}" for k, v in kwargs.items()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=env)
        parsed = None
        if out == "json":
            try:
                parsed = json.loads(proc.stdout)["local"]
            except (ValueError, KeyError, TypeError):
                parsed = None
        if check and proc.returncode != 0:
            raise SaltCallError(f"{cmd!r} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc.returncode, parsed, proc

    def apply(self, sls, test=False, **kwargs):
        """``state.apply sls``; return a StateRun over the parsed results."""
        args = [sls]
        if test:
            args.append("test=True")
        code, data, proc = self.run("state.apply", *args, **kwargs)
        if not isinstance(data, dict):
            raise SaltCallError(f"state.apply {sls} gave no state data ({code}):\n"
                                f"{proc.stdout}\n{proc.stderr}")
        return StateRun(code, data, proc)


class StateRun:
    """Parsed ``state.apply`` results, keyed by state id."""

    def __init__(self, returncode, data, proc):
        self.returncode = returncode
        self.raw = data
        self.proc = proc
        self.states = {}
        for key, ret in data.items():
            # key is "module_|-id_|-name_|-function"
            parts = key.split("_|-")
            ret = dict(ret)
            ret["_key"] = key
            ret["_fun"] = f"{parts[0]}.{parts[-1]}" if len(parts) >= 4 else key
            self.states[ret.get("__id__", parts[1] if len(parts) > 1 else key)] = ret

    def __getitem__(self, state_id):
        return self.states[state_id]

    @property
    def ordered(self):
        return sorted(self.states.values(), key=lambda r: r.get("__run_num__", 0))

    @property
    def changed(self):
        return {sid: r for sid, r in self.states.items() if r.get("changes")}

    @property
    def failed(self):
        return {sid: r for sid, r in self.states.items() if r.get("result") is False}

    def assert_ok(self):
        if self.failed or self.returncode != 0:
            raise SaltCallError(
                f"states failed (rc={self.returncode}): "
                + json.dumps({k: v.get("comment") for k, v in self.failed.items()}, indent=1)
                + "\n" + self.proc.stderr[-3000:])
        return self
