"""Unit tests of the INI engine (in-process, on temporary files)."""
import multiprocessing
import os
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import load_module  # noqa: E402

ini = load_module("modules", "openstack_ini")
inifile = load_module("utils", "openstack_inifile")

Err = ini.CommandExecutionError
FUZZ = settings(max_examples=int(os.environ.get("INI_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def write(tmp_path, data, name="f.ini"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


# --- hypothesis -------------------------------------------------------------

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789.-/", min_size=1, max_size=12)
sections_st = st.sampled_from(["DEFAULT", "database", "default", "filter:authtoken", "neutron"]) | names
values = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30).map(str.strip)
# Values as pillar may give them: edge spaces and quotes included.
raw_values = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30) | st.sampled_from(
    ['"pw"', "'pw'", '"', "' x '", ' lead', 'trail ', '"a" b "c"'])
line_st = st.one_of(
    st.builds(lambda s: f"[{s}]", sections_st),
    st.builds(lambda k, v: f"{k} = {v}", names, values),
    st.builds(lambda k, v: f"{k}:{v}", names, values),
    st.builds(lambda k, v: f"#{k} = {v}", names, values),
    st.builds(lambda c: f"# {c}", values),
    st.just(""), st.just("   "), st.just(";x"),
)
ini_text = st.tuples(st.lists(line_st, max_size=25), st.sampled_from(["\n", "\r\n"]), st.booleans()).map(
    lambda t: t[1].join(t[0]) + (t[1] if t[2] and t[0] else ""))


@FUZZ
@given(data=st.binary(max_size=400) | ini_text.map(str.encode))
def test_any_file_round_trips_byte_for_byte(tmp_path_factory, data):
    doc = inifile.IniDocument(data.decode("utf-8", "surrogateescape"))
    assert inifile.apply_edits(doc.text, []).encode("utf-8", "surrogateescape") == data
    path = write(tmp_path_factory.mktemp("rt"), data)
    # Setting every option to the value it already has changes nothing.
    current = {}
    for (section, key), opts in doc.options.items():
        if "\n" in "".join(o.value for o in opts):
            continue
        try:
            inifile.check_name(path, section, key)
        except Err:
            continue
        current.setdefault(section, {})[key] = [o.value for o in opts] if len(opts) > 1 else opts[0].value
    assert ini.set_options(path, current) == {}
    with open(path, "rb") as fh:
        assert fh.read() == data


@FUZZ
@given(text=ini_text, section=sections_st, key=names, value=raw_values | st.integers() | st.booleans()
       | st.lists(raw_values, min_size=2, max_size=3))
def test_set_then_get_then_idempotent(tmp_path_factory, text, section, key, value):
    path = write(tmp_path_factory.mktemp("sg"), text)
    before = open(path, "rb").read()
    changes = ini.set_options(path, {section: {key: value}})
    got = ini.get_option(path, section, key)
    want = [inifile.render(v) for v in value] if isinstance(value, list) else inifile.render(value)
    assert got == want
    middle = open(path, "rb").read()
    assert ini.set_options(path, {section: {key: value}}) == {}
    assert open(path, "rb").read() == middle
    if not changes:
        assert middle == before


# --- placement and preservation ---------------------------------------------

SAMPLE = """[DEFAULT]
# The IP address (string value)
#my_ip = <host_ipv4>

# Enable debug (boolean value)
#debug = false
state_path = /var/lib/nova

[database]
# connection string
#connection = <None>
connection = sqlite:////var/lib/nova/novadb

[placement]
username = =
"""


def test_new_key_goes_after_its_commented_default(tmp_path):
    path = write(tmp_path, SAMPLE)
    ini.set_options(path, {"DEFAULT": {"my_ip": "10.0.0.5"}})
    assert open(path).read() == SAMPLE.replace("#my_ip = <host_ipv4>\n", "#my_ip = <host_ipv4>\nmy_ip = 10.0.0.5\n")


def test_new_key_without_default_goes_to_end_of_section_and_new_section_to_end(tmp_path):
    path = write(tmp_path, SAMPLE)
    ini.set_options(path, {"DEFAULT": {"zzz": "1"}, "glance": {"api_servers": "http://g:9292"}})
    text = open(path).read()
    assert "state_path = /var/lib/nova\nzzz = 1\n\n[database]" in text
    assert text.endswith("username = =\n\n[glance]\napi_servers = http://g:9292\n")


def test_existing_value_is_replaced_in_place_placeholder_included(tmp_path):
    path = write(tmp_path, SAMPLE)
    changes = ini.set_options(path, {"placement": {"username": "placement"}, "database": {"connection": "mysql://x"}})
    text = open(path).read()
    assert text == SAMPLE.replace("username = =", "username = placement").replace(
        "connection = sqlite:////var/lib/nova/novadb", "connection = mysql://x")
    assert changes["placement"]["username"] == {"old": "=", "new": "placement"}
    assert changes["database"]["connection"] == {"old": "********", "new": "********"}


def test_crlf_and_missing_final_newline_are_kept(tmp_path):
    path = write(tmp_path, b"[a]\r\nx = 1\r\n#y = 2\r\n[b]\r\nz = 3")
    ini.set_options(path, {"a": {"y": "5"}, "b": {"z": "4", "w": "6"}})
    assert open(path, "rb").read() == b"[a]\r\nx = 1\r\n#y = 2\r\ny = 5\r\n[b]\r\nz = 4\r\nw = 6"
    ini.set_options(path, {"c": {"k": "v"}})
    assert open(path, "rb").read().endswith(b"w = 6\r\n\r\n[c]\r\nk = v")


def test_default_is_an_ordinary_case_sensitive_section(tmp_path):
    path = write(tmp_path, "stray = 1\n[default]\ndebug = false\n[DEFAULT]\ndebug = true\n")
    assert ini.get_option(path, "DEFAULT", "debug") == "true"
    assert ini.get_option(path, "default", "debug") == "false"
    assert ini.get_option(path, "DEFAULT", "stray") is None


def test_repeated_section_headers_merge(tmp_path):
    path = write(tmp_path, "[a]\nx = 1\n[b]\n[a]\ny = 2\n")
    assert ini.set_options(path, {"a": {"x": 1, "y": 2}}) == {}


def test_typed_values_compare_as_oslo_reads_them(tmp_path):
    path = write(tmp_path, "[DEFAULT]\ndebug = True\nratio = 16\nmem = 512\nflag = no\n")
    assert ini.set_options(path, {"DEFAULT": {"debug": True, "ratio": 16.0, "mem": 512, "flag": False}}) == {}
    changes = ini.set_options(path, {"DEFAULT": {"debug": False, "ratio": 1.5}})
    assert changes["DEFAULT"]["debug"] == {"old": "True", "new": "false"}
    assert "ratio = 1.5\n" in open(path).read()


def test_multi_valued_options_are_written_in_order_and_compared_as_lists(tmp_path):
    path = write(tmp_path, "[filter_scheduler]\n#enabled_filters = x\nfoo = 1\n")
    ini.set_options(path, {"filter_scheduler": {"enabled_filters": ["A", "B"]}})
    assert "#enabled_filters = x\nenabled_filters = A\nenabled_filters = B\nfoo = 1\n" in open(path).read()
    assert ini.get_option(path, "filter_scheduler", "enabled_filters") == ["A", "B"]
    assert ini.set_options(path, {"filter_scheduler": {"enabled_filters": ["A", "B"]}}) == {}
    ini.set_options(path, {"filter_scheduler": {"enabled_filters": ["B", "A", "C"]}})
    assert "enabled_filters = B\nenabled_filters = A\nenabled_filters = C\nfoo = 1\n" in open(path).read()
    ini.set_options(path, {"filter_scheduler": {"enabled_filters": "A"}})
    assert open(path).read().count("\nenabled_filters = ") == 1


def test_values_are_written_as_given(tmp_path):
    path = write(tmp_path, "[DEFAULT]\n")
    value = "rabbit://u:p%40=#;x@h:5672/ vhost ünï"
    ini.set_options(path, {"DEFAULT": {"transport_url": value, "k": "a = b"}})
    assert ini.get_option(path, "DEFAULT", "transport_url") == value
    assert ini.get_option(path, "DEFAULT", "k") == "a = b"


def test_quotes_and_edge_spaces_read_back_as_oslo_reads_them(tmp_path):
    path = write(tmp_path, "[a]\nq = \"quoted\"\n")
    assert ini.get_option(path, "a", "q") == "quoted"
    assert ini.set_options(path, {"a": {"q": "quoted"}}) == {}  # oslo reads quoted
    ini.set_options(path, {"a": {"pw": '"pw"', "sp": " x ", "mid": 'a"b'}})
    text = open(path).read()
    assert 'pw = ""pw""\n' in text and 'sp = " x "\n' in text and 'mid = a"b\n' in text
    assert [ini.get_option(path, "a", k) for k in ("pw", "sp", "mid")] == ['"pw"', " x ", 'a"b']
    assert ini.set_options(path, {"a": {"pw": '"pw"', "sp": " x ", "mid": 'a"b'}}) == {}


def test_none_and_remove_options_delete_every_occurrence(tmp_path):
    path = write(tmp_path, "[a]\nx = 1\ny = 2\nx = 3\n# keep\n")
    assert ini.set_options(path, {"a": {"x": None}})["a"]["x"] == {"old": ["1", "3"], "new": None}
    assert open(path).read() == "[a]\ny = 2\n# keep\n"
    ini.remove_options(path, {"a": ["y", "nope"]})
    assert open(path).read() == "[a]\n# keep\n"


def test_secrets_are_masked_also_by_secret_keys(tmp_path):
    path = write(tmp_path, "[a]\n")
    changes = ini.set_options(path, {"a": {"admin_password": "s3", "metadata_proxy_shared_secret": "s4",
                                           "plain": "p", "custom": "c"}}, secret_keys=["custom"])
    assert changes["a"]["admin_password"]["new"] == "********"
    assert changes["a"]["metadata_proxy_shared_secret"]["new"] == "********"
    assert changes["a"]["custom"]["new"] == "********"
    assert changes["a"]["plain"]["new"] == "p"
    assert "s3" not in repr(changes) and "s4" not in repr(changes)


def test_noop_leaves_mtime_and_test_mode_writes_nothing(tmp_path):
    path = write(tmp_path, SAMPLE)
    os.utime(path, (1000000000, 1000000000))
    assert ini.set_options(path, {"DEFAULT": {"state_path": "/var/lib/nova"}}) == {}
    assert ini.set_options(path, {"DEFAULT": {"debug": True}}, test=True)
    assert os.stat(path).st_mtime == 1000000000
    assert open(path).read() == SAMPLE


def test_mode_and_owner_survive_a_write(tmp_path):
    path = write(tmp_path, SAMPLE)
    os.chmod(path, 0o640)
    os.chown(path, 0, 65534)
    ini.set_options(path, {"DEFAULT": {"debug": True}})
    st = os.stat(path)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 0, 65534)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_set_permissions_narrows_and_reports(tmp_path):
    path = write(tmp_path, SAMPLE)
    os.chmod(path, 0o644)
    assert ini.set_permissions(path, mode="0640", group="nogroup", test=True)["mode"] == {"old": "0644", "new": "0640"}
    assert os.stat(path).st_mode & 0o777 == 0o644
    changes = ini.set_permissions(path, mode="0640", user="root", group="nogroup")
    assert set(changes) == {"mode", "group"}
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert ini.set_permissions(path, mode="0640", user="root", group="nogroup") == {}


# --- bad input ----------------------------------------------------------------

@pytest.mark.parametrize("sections, words", [
    ({"DEFAULT": {"k": "line1\nline2"}}, ["[DEFAULT] k", "newline"]),
    ({"DEFAULT": {"k": "a\rb"}}, ["[DEFAULT] k", "newline"]),
    ({"DEF]AULT": {"k": "v"}}, ["DEF]AULT"]),
    ({"DEFAULT": {"a=b": "v"}}, ["'a=b'"]),
    ({"DEFAULT": {"a]": "v"}}, ["'a]'"]),
    ({"DEFAULT": {"a\nb": "v"}}, ["'a\\nb'"]),
    ({"DEFAULT": {"": "v"}}, ["non-empty"]),
    ({"DEFAULT": {"k": {"nested": 1}}}, ["[DEFAULT] k", "dict"]),
    ({"DEFAULT": ["k"]}, ["[DEFAULT]", "list"]),
    (["DEFAULT"], ["mapping"]),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, sections, words):
    path = write(tmp_path, SAMPLE)
    with pytest.raises(Err) as exc:
        ini.set_options(path, {"DEFAULT": {"debug": True}, **sections} if isinstance(sections, dict) else sections)
    for word in [path] + words:
        assert word in str(exc.value)
    assert open(path).read() == SAMPLE


def test_missing_file_directory_and_relative_path(tmp_path):
    with pytest.raises(Err, match="does not exist"):
        ini.set_options(str(tmp_path / "nope.conf"), {"a": {"b": "c"}})
    with pytest.raises(Err, match="is a directory"):
        ini.set_options(str(tmp_path), {"a": {"b": "c"}})
    with pytest.raises(Err, match="absolute"):
        ini.get_option("nova.conf", "a", "b")


def test_secret_value_never_in_error(tmp_path):
    path = write(tmp_path, SAMPLE)
    with pytest.raises(Err) as exc:
        ini.set_options(path, {"DEFAULT": {"password": "hunter2\nx"}})
    assert "hunter2" not in str(exc.value)


# --- faults -------------------------------------------------------------------

def test_failed_rename_leaves_original_and_no_temp(tmp_path, monkeypatch):
    path = write(tmp_path, SAMPLE)

    def boom(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ini.os, "rename", boom)
    with pytest.raises(Err, match="cannot write: Input/output error"):
        ini.set_options(path, {"DEFAULT": {"debug": True}})
    assert open(path).read() == SAMPLE
    assert os.listdir(tmp_path) == ["f.ini"]


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_no_space_left_keeps_the_original(small_tmpfs):
    original = SAMPLE + "# padding\n" * 3500  # ~35 KB: a second copy does not fit in 64 KB
    path = write(small_tmpfs, original)
    with pytest.raises(Err, match="No space left on device"):
        ini.set_options(path, {"DEFAULT": {"debug": True}})
    assert open(path).read() == original
    assert os.listdir(small_tmpfs) == ["f.ini"]


def test_read_only_filesystem_is_a_clear_error(small_tmpfs):
    path = write(small_tmpfs, SAMPLE)
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    with pytest.raises(Err, match="Read-only file system"):
        ini.set_options(path, {"DEFAULT": {"debug": True}})
    assert open(path).read() == SAMPLE


def _writer(path, key, rounds):
    for i in range(rounds):
        ini.set_options(path, {"DEFAULT": {key: str(i)}})


def test_concurrent_writers_serialise_and_lose_nothing(tmp_path):
    path = write(tmp_path, SAMPLE)
    procs = [multiprocessing.Process(target=_writer, args=(path, f"key{n}", 40)) for n in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    for n in range(4):
        assert ini.get_option(path, "DEFAULT", f"key{n}") == "39"
    assert open(path).read().startswith(SAMPLE.split("state_path")[0])


def _killed_writer(path):
    big = {"DEFAULT": {f"k{i}": "x" * 200 for i in range(2000)}}
    while True:
        ini.set_options(path, big)
        ini.set_options(path, {"DEFAULT": {f"k{i}": None for i in range(2000)}})


def test_process_killed_mid_write_leaves_old_or_new_file(tmp_path):
    import signal
    import time

    path = write(tmp_path, SAMPLE)
    proc = multiprocessing.Process(target=_killed_writer, args=(path,))
    proc.start()
    time.sleep(0.7)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    text = open(path).read()
    with_keys = ini.set_options(path, {"DEFAULT": {f"k{i}": None for i in range(2000)}}, test=True)
    assert text == SAMPLE or len(with_keys["DEFAULT"]) == 2000  # wholly old or wholly new
