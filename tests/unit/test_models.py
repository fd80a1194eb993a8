"""Models of the lab format: validation, immutability, format versions, schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from repx.lab import models
from repx.lab.models import Job, JobInput, LabMetadata, RevisionMetadata, RunEntry, RunManifest
from repx.lab.schema import SCHEMA_PATH, render_schema

REPO = Path(__file__).resolve().parents[2]
SHA = "0" * 64


def lab_metadata(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "format": "repx-lab/1",
        "lab_id": "x" * 32,
        "lab_version": "0.1.0",
        "repx_version": "0.1.0",
        "git_hash": "unknown",
        "metadata": "revision/metadata.json",
        "host_tools": "host-tools/abc",
        "job_count": 0,
        "files": [{"path": "readme/README.md", "sha256": SHA}],
    }
    data.update(changes)
    return data


def job(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "stage": "simulate",
        "params": {"seed": 1, "noise": 0.1, "tags": ["a"], "nested": {"k": None}},
        "inputs": [{"name": "x", "job": "j", "output": "o", "run": "r", "gather": True}],
        "outputs": {"samples.csv": "$out/samples.csv"},
        "executables": {"main": {"path": "jobs/j/bin/simulate"}},
        "parameters_file": "jobs/j/parameters.json",
        "resources": {"cpus": 2, "mem": "1G", "time": "00:10:00"},
    }
    data.update(changes)
    return data


def test_lab_metadata_defaults_and_types():
    meta = LabMetadata.model_validate(lab_metadata())
    assert meta.store == "store"
    assert meta.container_mode == "none"
    assert meta.files[0].path == "readme/README.md"
    assert isinstance(meta.files, tuple)


def test_models_are_frozen():
    meta = LabMetadata.model_validate(lab_metadata())
    with pytest.raises(ValidationError, match="frozen"):
        meta.lab_id = "other"  # type: ignore[misc]


def test_unknown_fields_are_ignored():
    meta = LabMetadata.model_validate(lab_metadata(future_field=1))
    assert not hasattr(meta, "future_field")


@pytest.mark.parametrize(
    ("model", "data", "supported"),
    [
        (LabMetadata, lab_metadata(format="repx-lab/2"), "repx-lab/1"),
        (
            RevisionMetadata,
            {"format": "repx-revision/9", "runs": {}, "run_order": []},
            "repx-revision/1",
        ),
        (
            RunManifest,
            {"format": "x", "name": "n", "hash": "h", "stages": {}, "jobs": {}},
            "repx-run/1",
        ),
    ],
)
def test_unknown_format_names_found_and_supported_versions(model, data, supported):
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    message = str(info.value)
    assert f"unsupported format '{data['format']}'" in message
    assert f"this repx reads '{supported}'" in message


def test_run_dependency_kind_is_hard_or_soft():
    RunEntry.model_validate(
        {"manifest": "m", "hash": "h", "job_count": 0, "stages": [], "depends_on": {"a": "soft"}}
    )
    with pytest.raises(ValidationError, match=r"depends_on\.a"):
        RunEntry.model_validate(
            {
                "manifest": "m",
                "hash": "h",
                "job_count": 0,
                "stages": [],
                "depends_on": {"a": "maybe"},
            }
        )


def test_sha256_must_be_lowercase_hex():
    with pytest.raises(ValidationError, match=r"files\.0\.sha256"):
        LabMetadata.model_validate(lab_metadata(files=[{"path": "a", "sha256": "ABC"}]))


def test_job_with_gathered_inputs_and_json_params():
    parsed = Job.model_validate(job())
    assert parsed.inputs == (JobInput(name="x", job="j", output="o", run="r", gather=True),)
    assert parsed.params["nested"] == {"k": None}
    assert parsed.resources.cpus == 2


def test_job_requires_stage():
    with pytest.raises(ValidationError, match="stage"):
        Job.model_validate({k: v for k, v in job().items() if k != "stage"})


def test_job_id_pattern():
    pattern = re.compile(models.JOB_ID_PATTERN)
    match = pattern.match("0123456789abcdfghijklmnpqrsvwxyz-simulate")
    assert match is not None
    assert match.group("stage") == "simulate"
    assert pattern.match("e" * 32 + "-simulate") is None  # 'e' is not in nix base32
    assert pattern.match("0" * 31 + "-simulate") is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)


@given(params=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4))
def test_job_json_round_trip(params):
    original = Job.model_validate(job(params=params))
    again = Job.model_validate_json(original.model_dump_json())
    assert again == original


def test_committed_schema_matches_models():
    committed = (REPO / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == render_schema(), f"regenerate with: repx schema -o {SCHEMA_PATH}"


def test_schema_describes_all_file_kinds():
    schema = json.loads(render_schema())
    assert {"LabMetadata", "RevisionMetadata", "RunManifest", "Job", "FileEntry"} <= set(
        schema["$defs"]
    )
    assert schema["$defs"]["LabMetadata"]["properties"]["format"]["const"] == "repx-lab/1"
