"""aio.sh's progress on a fresh machine (issue 12): the long phases print a
line per 20 pip packages and per 25 Debian packages set up, never a flood,
and apt's whole output still reaches the log. The filters are aio.sh's own
functions (sourced with AIO_FUNCTIONS_ONLY=1), fed output in pip's and apt's
format."""
import os
import subprocess

AIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "support", "aio.sh")


def _filter(call, text, tmp_path):
    script = f'AIO_FUNCTIONS_ONLY=1 source "{AIO}"\n{call}\n'
    proc = subprocess.run(["bash", "-c", script], input=text, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_pip_phase_prints_a_line_per_20_packages_and_its_errors(tmp_path):
    text = "".join(f"Collecting pkg{i}==1.{i}\n  Downloading pkg{i}.whl\n" for i in range(30))
    text += "".join(f"Requirement already satisfied: old{i}==2\n" for i in range(15))
    text += "ERROR: No matching distribution found for broken==9\n"
    out = _filter("pip_progress 45", text, tmp_path)
    assert out.splitlines() == ["    pip: 20/45 packages", "    pip: 40/45 packages",
                                "ERROR: No matching distribution found for broken==9"], out


def test_apt_phase_prints_the_total_then_a_line_per_25_set_up(tmp_path):
    log = tmp_path / "install.log"
    text = "0 upgraded, 60 newly installed, 0 to remove and 3 not upgraded.\n"
    text += "".join(f"Unpacking pkg{i} (1.0) ...\nSetting up pkg{i} (1.0) ...\n" for i in range(60))
    out = _filter(f'packages_progress "{log}"', text, tmp_path)
    assert out.splitlines() == ["    apt: 60 packages to install", "    apt: 25/60 set up",
                                "    apt: 50/60 set up"], out
    assert log.read_text() == text
