"""One job-id resolver for every command: what a table prints works everywhere."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from repx.cli import app
from storefake import record_attempt

runner = CliRunner()


@pytest.fixture
def lab(factory_lab, tmp_path):
    return ["--lab", str(factory_lab.root), "--base", str(tmp_path / "runs")]


def _short_forms(factory_lab, job: str) -> list[str]:
    """The forms a user pastes: the short id a table prints, and ``<short>-<stage>``."""
    rows = runner.invoke(app, ["list", "jobs", "--lab", str(factory_lab.root)]).stdout
    short = next(line.split("\t")[0] for line in rows.splitlines() if job.startswith(line[:8]))
    stage = job.partition("-")[2]
    return [short, f"{short}-{stage}", job]


def test_run_accepts_every_form_a_table_prints(lab, factory_lab):
    job = factory_lab.stage_jobs[("simulation", "simulate")][0]
    for form in _short_forms(factory_lab, job):
        result = runner.invoke(app, ["run", "--dry-run", "--json", form, *lab])
        assert result.exit_code == 0, (form, result.stderr)
        assert job in result.stdout, form


def test_log_accepts_every_form_a_table_prints(lab, factory_lab, tmp_path):
    job = factory_lab.stage_jobs[("simulation", "simulate")][0]
    record_attempt(tmp_path / "runs", factory_lab.lab_id, job, stdout="hello from the job\n")
    for form in _short_forms(factory_lab, job):
        result = runner.invoke(app, ["log", form, *lab])
        assert (result.exit_code, result.stdout) == (0, "hello from the job\n"), (
            form,
            result.stderr,
        )


def test_log_names_a_job_of_the_lab_that_has_not_run(lab, factory_lab):
    job = factory_lab.stage_jobs[("simulation", "simulate")][0]
    result = runner.invoke(app, ["log", job[:10], *lab])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: job {job} has not run")


def test_an_ambiguous_prefix_is_one_line_listing_the_candidates(lab, factory_lab):
    ids = sorted(factory_lab.job_ids)
    prefix = next(j[0] for j in ids if sum(i.startswith(j[0]) for i in ids) > 1)
    matching = [j for j in ids if j.startswith(prefix)]
    for command in (["run", "--dry-run"], ["log"], ["show", "job"], ["list", "deps"]):
        result = runner.invoke(app, [*command, prefix, *lab])
        assert result.exit_code == 2, command
        assert result.stderr.count("\n") == 1, (command, result.stderr)
        assert f"job id '{prefix}' is ambiguous" in result.stderr, command
        for job in matching[:10]:
            assert job[:8] in result.stderr, (command, job)


def test_log_short_id_is_that_of_the_lab_even_in_a_shared_store(lab, factory_lab, tmp_path):
    """A base shared by several labs (or revisions) holds other jobs: a short id unique in
    the lab may start other ids of the store (log matched the store's names: ambiguous)."""
    job = factory_lab.stage_jobs[("simulation", "simulate")][0]
    base = tmp_path / "runs"
    record_attempt(base, factory_lab.lab_id, job, stdout="mine\n")
    record_attempt(base, "another-lab", job[:8] + "0" * 24 + "-other", stdout="theirs\n")
    result = runner.invoke(app, ["log", job[:8], *lab])
    assert (result.exit_code, result.stdout) == (0, "mine\n"), result.stderr
