"""The remote runner's own encoders, against the Python code they stand in for."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repx.remote import RUNNER

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("jq") is None, reason="needs bash and jq"
)

#: what the local orchestrator writes in branch-N/work_item.json (repx.run.scatter)
TRICKY = [
    {"index": 0, "b": [1.0, -0, -0.0, 1e5, 12345678901234567890, 0.1, 1e-7, True, None]},
    'é\u0001/"\\\U0001f600\u007f\n\t\u2028',
    {},
    [],
    {"z": 1, "a": {"é": 2, "e": 3}},
    3,
    -12.5,
    1e16,
    1e15,
    5e-324,
    "tab\there \\",
]


def _items(tmp_path, text: str) -> list[str]:
    path = tmp_path / "work_items.json"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run(
        ["bash", str(RUNNER), "work-items", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


@pytest.mark.parametrize("indent", [None, 2])
def test_work_items_are_written_as_the_local_orchestrator_writes_them(tmp_path, indent):
    text = json.dumps(TRICKY, indent=indent, ensure_ascii=False)
    # a literal 1.0 and 1E5 as a scatter script may write them (json.dumps never does)
    text = text.replace("100000.0", "1E5", 1)
    expected = [json.dumps(item, sort_keys=True) for item in json.loads(text)]
    assert _items(tmp_path, text) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None)
@given(items=st.lists(json_values, max_size=5))
def test_any_work_items_are_written_as_python_writes_them(tmp_path_factory, items):
    tmp_path = tmp_path_factory.mktemp("items")
    text = json.dumps(items, ensure_ascii=False)
    assert _items(tmp_path, text) == [json.dumps(i, sort_keys=True) for i in items]
