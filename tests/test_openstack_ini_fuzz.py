"""Fuzzing the INI engine against a simple model (10,000 examples each in CI).

INI_FUZZ_EXAMPLES sets the number of examples (default 10000).
"""
import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import load_module  # noqa: E402
from test_openstack_ini_unit import ini_text, names, sections_st, values  # noqa: E402

ini = load_module("modules", "openstack_ini")
inifile = load_module("utils", "openstack_inifile")

EXAMPLES = int(os.environ.get("INI_FUZZ_EXAMPLES", "10000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

ops = st.lists(st.tuples(st.sampled_from(["set", "remove"]), sections_st, names,
                         values | st.integers() | st.booleans() | st.lists(values, min_size=2, max_size=3)),
               min_size=1, max_size=6)


@FUZZ
@given(data=st.binary(max_size=300) | ini_text.map(str.encode))
def test_arbitrary_files_round_trip_byte_for_byte(tmp_path_factory, data):
    text = data.decode("utf-8", "surrogateescape")
    assert inifile.apply_edits(text, []) == text
    path = tmp_path_factory.getbasetemp() / "rt.ini"
    path.write_bytes(data)
    assert ini.set_options(str(path), {}) == {}
    assert ini.remove_options(str(path), {"nosuchsection": ["k"]}) == {}
    assert path.read_bytes() == data


@FUZZ
@given(text=ini_text, operations=ops)
def test_random_set_remove_sequences_agree_with_a_model(tmp_path_factory, text, operations):
    path = tmp_path_factory.getbasetemp() / "model.ini"
    path.write_text(text)
    doc = inifile.IniDocument(text)
    model = {sk: [o.value for o in opts] for sk, opts in doc.options.items()}
    untouched = dict(model)
    for op, section, key, value in operations:
        untouched.pop((section, key), None)
        if op == "set":
            ini.set_options(str(path), {section: {key: value}})
            # Typed values compare the way oslo.config reads them ("0" is false).
            model[(section, key)] = value if isinstance(value, list) else [value]
        else:
            ini.remove_options(str(path), {section: [key]})
            model[(section, key)] = []
    after = inifile.IniDocument(path.read_text())
    for (section, key), want in model.items():
        if (section, key) in untouched or any(s == section and k == key for _, s, k, _ in operations):
            got = after.get(section, key)
            assert len(got) == len(want) and all(map(inifile.same, got, want)), (section, key, got, want)
    # Every comment line of the original is still there, in order.
    comments = [line for line in text.splitlines() if line.startswith(("#", ";"))]
    kept = [line for line in path.read_text().splitlines() if line.startswith(("#", ";"))]
    assert kept == comments
