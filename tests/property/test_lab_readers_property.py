"""Damaged and random lab metadata: readers raise a clean LabError, never anything else.

Each example writes the JSON files of a small valid lab (the factory's 14-job lab) into a
fresh directory, damages one of them, and then runs everything that reads a lab: the
loader, every inspection query, the graphs, the drawing, ``repx verify``, the Python API
and a few CLI commands. Errors must be :class:`~repx.errors.RepxError` (one-line messages,
exit code 2 on the command line); any other exception fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import repx
from labfactory import write_lab
from repx.cli import app
from repx.errors import LabError, RepxError
from repx.inspect import query
from repx.inspect.graph import Level, build_graph
from repx.inspect.verify import verify_lab
from repx.inspect.view import LabView
from repx.inspect.viz import VizOptions, make_dot
from repx.lab.loader import open_lab

#: Examples per test; raise it for a longer search: REPX_PROPERTY_EXAMPLES=1000 pytest …
SETTINGS = settings(
    max_examples=int(os.environ.get("REPX_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
runner = CliRunner()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The JSON files of a valid lab: lab-relative path -> content."""
    lab = write_lab(tmp_path_factory.mktemp("pristine") / "lab")
    files = {"lab/lab-metadata.json": (lab.root / "lab/lab-metadata.json").read_bytes()}
    for path in sorted((lab.root / "revision").iterdir()):
        files[f"revision/{path.name}"] = path.read_bytes()
    return files


def write_files(files: dict[str, bytes]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="repx-prop-"))
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def exercise(root: Path) -> None:
    """Run every lab reader on ``root``; only RepxError may escape each of them."""
    try:
        try:
            lab = open_lab(root)
        except LabError as exc:
            assert "\n" not in exc.message
            lab = None
        if lab is not None:
            _inspect(LabView(lab, root / "runs"))
        _clean(lambda: verify_lab(root))
        _clean(lambda: repx.Lab.open(root, base=root / "runs").jobs_frame())
        for args in (["list", "jobs", "--json"], ["list", "runs"], ["show", "run", "report"]):
            result = runner.invoke(app, [*args, "--lab", str(root), "--base", str(root / "runs")])
            assert result.exit_code in (0, 2), (args, result.output)
            assert "Traceback" not in result.output and "internal error" not in result.output
            if result.exit_code == 2:
                assert result.stderr.startswith("error: ")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _inspect(view: LabView) -> None:
    _clean(lambda: query.list_runs(view))
    _clean(lambda: query.list_groups(view))
    _clean(lambda: query.list_jobs(view, query.JobQuery(columns=["seed"], output_paths=True)))
    for run in list(view.lab.runs)[:3]:
        _clean(lambda run=run: query.show_run(view, run))
    for job in list(view.lab.jobs)[:4]:
        _clean(lambda job=job: query.show_job(view, job))
        _clean(lambda job=job: query.job_deps(view, job))
        _clean(lambda job=job: query.trace(view, job))
    for level in Level:
        _clean(lambda level=level: build_graph(view, level))
        _clean(lambda level=level: make_dot(view, VizOptions(level=level, show_params=True)))


def _clean(call: Any) -> None:
    try:
        call()
    except RepxError as exc:
        assert exc.message and "\n" not in exc.message


# -- damage -----------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON document (keys and list indexes)."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value[:3]):  # lists can be long (files): a few suffice
            yield from _paths(child, (*prefix, i))


def _replace(doc: Any, path: tuple[Any, ...], change: Any) -> Any:
    if not path:
        return change(doc)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = change(parent[path[-1]])
    return doc


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return {}
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return doc


@SETTINGS
@given(data=st.data())
def test_truncated_json(pristine, data):
    rel = data.draw(st.sampled_from(sorted(pristine)))
    cut = data.draw(st.integers(min_value=0, max_value=len(pristine[rel]) - 1))
    exercise(write_files({**pristine, rel: pristine[rel][:cut]}))


@SETTINGS
@given(data=st.data(), junk=st.binary(max_size=200))
def test_random_bytes(pristine, data, junk):
    rel = data.draw(st.sampled_from(sorted(pristine)))
    exercise(write_files({**pristine, rel: junk}))


@SETTINGS
@given(data=st.data(), value=json_values, delete=st.booleans())
def test_wrong_types_and_missing_keys(pristine, data, value, delete):
    rel = data.draw(st.sampled_from(sorted(pristine)))
    doc = json.loads(pristine[rel])
    path = data.draw(st.sampled_from(list(_paths(doc))))
    doc = _delete(doc, path) if delete else _replace(doc, path, lambda _old: value)
    exercise(write_files({**pristine, rel: json.dumps(doc).encode()}))


@SETTINGS
@given(data=st.data(), version=st.text(max_size=20) | json_values)
def test_unknown_format_versions(pristine, data, version):
    rel = data.draw(st.sampled_from(sorted(pristine)))
    doc = json.loads(pristine[rel])
    doc["format"] = version
    root = write_files({**pristine, rel: json.dumps(doc).encode()})
    if version not in ("repx-lab/1", "repx-revision/1", "repx-run/1"):
        with pytest.raises(LabError, match=rf"{rel}: format: "):
            open_lab(root)
    exercise(root)


@SETTINGS
@given(data=st.data(), doc=json_values)
def test_random_documents(pristine, data, doc):
    rel = data.draw(st.sampled_from(sorted(pristine)))
    exercise(write_files({**pristine, rel: json.dumps(doc).encode()}))


@SETTINGS
@given(data=st.data())
def test_references_to_other_jobs_and_runs(pristine, data):
    """Valid JSON with broken references: inputs naming unknown jobs or runs, cycles."""
    manifests = sorted(
        rel for rel in pristine if rel != "revision/metadata.json" and "revision/" in rel
    )
    rel = data.draw(st.sampled_from(manifests))
    doc = json.loads(pristine[rel])
    all_jobs = [j for m in manifests for j in json.loads(pristine[m])["jobs"]]
    jobs = list(doc["jobs"])
    job = data.draw(st.sampled_from(jobs))
    target = data.draw(st.sampled_from([*all_jobs, "0" * 32 + "-ghost", "nodash"]))
    run = data.draw(st.sampled_from(["simulation", "report", "ghost"]))
    doc["jobs"][job]["inputs"].append(
        {"name": "x", "job": target, "output": "samples.csv", "run": run, "gather": True}
    )
    if data.draw(st.booleans()):
        doc["jobs"][job]["stage"] = data.draw(st.sampled_from(["ghost", "simulate", "plot"]))
    exercise(write_files({**pristine, rel: json.dumps(doc).encode()}))


def test_the_pristine_lab_reads_cleanly(pristine):
    root = write_files(pristine)
    try:
        view = LabView(open_lab(root), root / "runs")
        assert len(query.list_jobs(view, query.JobQuery()).jobs) == 14
    finally:
        shutil.rmtree(root)
    exercise(write_files(pristine))
