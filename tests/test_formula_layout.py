"""The shape of the code, checked (docs/architecture.md says why):

- the SLS files only loop: no role, option dialect, network plugin or OS is
  named outside their comments (those decisions live in the plan);
- modules share code through ``__utils__``, never by loading a sibling file;
- no module over 800 lines, and the plan's module well under half of the 706
  it had before the split;
- every public function of an execution module documents a ``CLI Example:``;
- salt-lint and yamllint (the ecosystem's linters) find nothing;
- the README opens with the two commands and stays short; the change guide
  names files that exist.
"""
import ast
import glob
import os
import re
import subprocess
import sys

import pytest

from harness import REPO

SLS = sorted(glob.glob(os.path.join(REPO, "nova", "**", "*.sls"), recursive=True))
PYTHON = sorted(glob.glob(os.path.join(REPO, "_modules", "*.py"))
                + glob.glob(os.path.join(REPO, "_states", "*.py"))
                + glob.glob(os.path.join(REPO, "_utils", "*.py")))
# What an SLS must not decide: roles, dialects, plugins, OS names and grains.
DECISIONS = re.compile(
    r"\b(api|scheduler|conductor|compute|legacy|current|dialect|generic|ovs|linuxbridge|"
    r"Debian|RedHat|Ubuntu|Rocky|CentOS|os_family|osfinger|grains)\b")
BIN = os.path.dirname(sys.executable)


def _code(path):
    """An SLS without its Jinja and YAML comments."""
    with open(path) as fh:
        text = re.sub(r"\{#.*?#\}", "", fh.read(), flags=re.S)
    return "\n".join(line.split(" #")[0] for line in text.splitlines()
                     if not line.lstrip().startswith("#"))


def test_there_are_sls_files_to_check():
    names = {os.path.relpath(p, REPO) for p in SLS}
    assert {"nova/init.sls", "nova/clean.sls", "nova/service/init.sls",
            "nova/orch/deploy.sls"} <= names


@pytest.mark.parametrize("path", SLS, ids=lambda p: os.path.relpath(p, REPO))
def test_sls_names_no_role_dialect_plugin_or_os(path):
    found = sorted({m.group(0) for m in DECISIONS.finditer(_code(path))})
    assert not found, f"{os.path.relpath(path, REPO)} decides on {found}: move it to the plan"


def test_the_check_would_catch_a_decision(tmp_path):
    sls = tmp_path / "bad.sls"
    sls.write_text("{#- compute nodes -#}\n# legacy\n{%- if 'compute' in nova.plan.roles %}\n")
    assert DECISIONS.findall(_code(sls)) == ["compute"]


@pytest.mark.parametrize("path", PYTHON, ids=lambda p: os.path.relpath(p, REPO))
def test_no_module_loads_a_sibling_by_path(path):
    with open(path) as fh:
        text = fh.read()
    assert "spec_from_file_location" not in text and "_sibling" not in text


@pytest.mark.parametrize("path", PYTHON, ids=lambda p: os.path.relpath(p, REPO))
def test_modules_stay_small(path):
    with open(path) as fh:
        lines = len(fh.readlines())
    assert lines <= 800, f"{lines} lines"
    if path.endswith("_modules/nova_formula.py"):
        assert lines <= 300, f"the plan's module has {lines} lines (it had 706 before the split)"


def _public_functions(path):
    with open(path) as fh:
        tree = ast.parse(fh.read())
    return [node for node in tree.body if isinstance(node, ast.FunctionDef)
            and not node.name.startswith("_")]


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "_modules", "*.py"))),
                         ids=lambda p: os.path.basename(p))
def test_every_public_function_has_a_cli_example(path):
    missing = [f.name for f in _public_functions(path)
               if "CLI Example:" not in (ast.get_docstring(f) or "")]
    assert not missing, f"{os.path.basename(path)}: no CLI Example in {missing}"


def test_salt_lint_finds_nothing():
    proc = subprocess.run([os.path.join(BIN, "salt-lint"), "-c", os.path.join(REPO, ".salt-lint"),
                           *SLS], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_yamllint_finds_nothing():
    proc = subprocess.run([os.path.join(BIN, "yamllint"), "-c", os.path.join(REPO, ".yamllint"),
                           "pillar.example", "nova", ".yamllint", ".salt-lint"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_nothing_is_stopped_by_name():
    """This machine's PID namespace sees the processes of every fleet host and
    container: stop by PID or pidfile only, never by name, anywhere."""
    pattern = re.compile(r"\b(pkill|killall)\b|\bkill\s+\$\(\s*pgrep")
    found = []
    for path in glob.glob(os.path.join(REPO, "**", "*"), recursive=True):
        rel = os.path.relpath(path, REPO)
        if rel.startswith((".venv", ".cache", ".git", "tests/snapshots")) or not os.path.isfile(path):
            continue
        with open(path, errors="replace") as fh:
            script = path.endswith((".py", ".sh", ".sls", ".jinja")) or fh.read(2) == "#!"
            fh.seek(0)
            if not script:
                continue
            for number, line in enumerate(fh, 1):
                if pattern.search(line) and "pattern = re.compile" not in line:
                    found.append(f"{rel}:{number}: {line.strip()}")
    assert not found, found


def test_the_test_command_runs_every_fleet_test_module_once():
    """tests/run-all.sh names the fleet's modules (two sessions, each on a
    fleet of its own): a new module must join one of them, never be left out."""
    with open(os.path.join(REPO, "tests", "run-all.sh")) as fh:
        named = re.findall(r"tests/fleet/(test_\w+\.py)", fh.read())
    present = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "tests", "fleet",
                                                                         "test_*.py")))
    assert sorted(named) == present, (named, present)


def test_readme_opens_with_the_two_commands_and_stays_short():
    """The README a newcomer reads: the main job and the test command first
    (the ones CI runs), short enough to read in five minutes, every link to
    a file of the repository alive."""
    with open(os.path.join(REPO, "README.md")) as fh:
        text = fh.read()
    commands = re.findall(r"^bash (\S+)", text, re.M)
    assert commands[:2] == ["tests/support/aio.sh", "tests/run-all.sh"], commands
    assert text.index("bash tests/support/aio.sh") < text.index("## ")
    with open(os.path.join(REPO, ".ci", "run")) as fh:
        assert "tests/run-all.sh" in fh.read()
    assert len(text.split()) <= 1000, len(text.split())
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    assert links and [link for link in links if not os.path.exists(os.path.join(REPO, link))] == []


def test_the_change_guide_names_files_that_exist():
    """docs/architecture.md's "Where a change goes": every file it sends a
    newcomer to exists."""
    with open(os.path.join(REPO, "docs", "architecture.md")) as fh:
        guide = fh.read().split("## Where a change goes", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`((?:_utils|_modules|_states|nova|tests|tools)/[\w/.-]+\.\w+)`",
                           guide))
    assert len(named) >= 6, named
    assert sorted(p for p in named if not os.path.exists(os.path.join(REPO, p))) == []
