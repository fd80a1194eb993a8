"""``repx run --dry-run``: stage counts and, for every job that would run, why — from the
store's facts (failed, outputs missing, forced) and from the previous build (script,
upstream, new parameter value)."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from labfactory import RunSpec, StageSpec, write_lab
from repx.build_history import record_build
from repx.cli import app
from repx.config import RuntimeKind
from repx.run.reporter import RecordingReporter, format_summary
from repx.services.location import Location
from repx.services.run import RunOptions, run_lab

#: Fails for seed 2 (parameters.json is canonical JSON: sorted keys, no spaces).
FAIL_SEED_2 = """\
case "$(cat "$params")" in *'"seed":2'*) echo "bad seed" >&2; exit 3 ;; esac
cat "$params" > "$out/result.json"
"""


def pipeline(seeds, *, script=None):
    return (
        RunSpec(
            name="sim",
            parameters={"seed": list(seeds)},
            stages=(
                StageSpec("simulate", params=("seed",), script=script),
                StageSpec("stats", after=("simulate",)),
                StageSpec("aggregate", gather=("stats",)),
            ),
        ),
    )


def options(lab, base, **kwargs):
    return RunOptions(
        where=Location(lab=lab, base=base), runtime=RuntimeKind.NATIVE, jobs=2, **kwargs
    )


def causes(summary):
    found = {}
    for job in summary.plan:
        seed = job.effective_params.get("seed")
        found[(job.stage, None if isinstance(seed, list) else seed)] = (job.cause, job.reason)
    return found


def test_a_fresh_store_runs_everything_as_new(tmp_path):
    lab = write_lab(tmp_path / "lab", pipeline([1, 2]))
    summary = run_lab(options(lab.root, tmp_path / "base", dry_run=True), RecordingReporter())
    assert {c for c, _ in causes(summary).values()} == {"new"}
    assert [(s.stage, s.selected, s.to_run, s.cached) for s in summary.stages] == [
        ("simulate", 2, 2, 0),
        ("stats", 2, 2, 0),
        ("aggregate", 1, 1, 0),
    ]
    [first] = [j for j in summary.plan if j.stage == "simulate" and j.params == {"seed": 1}]
    assert first.run == "sim" and first.id.startswith(first.short_id)
    assert first.reason == "new job: never run in this store"


def test_store_facts_failed_missing_and_forced(tmp_path):
    lab = write_lab(tmp_path / "lab", pipeline([1, 2, 3], script=FAIL_SEED_2))
    base = tmp_path / "base"
    first = run_lab(options(lab.root, base, continue_on_failure=True), RecordingReporter())
    assert len(first.failed) == 1
    # the outputs of one finished job deleted by hand, another one's out/ damaged
    simulate = lab.stage_jobs[("sim", "simulate")]
    by_seed = {
        json.loads((lab.root / "jobs" / j / "parameters.json").read_text())["seed"]: j
        for j in simulate
    }
    shutil.rmtree(base / "outputs" / by_seed[1])
    shutil.rmtree(base / "outputs" / by_seed[3] / "out")
    summary = run_lab(options(lab.root, base, dry_run=True), RecordingReporter())
    got = causes(summary)
    assert got[("simulate", 1)] == (
        "output-missing",
        f"outputs/{by_seed[1]} is missing (it succeeded before)",
    )
    assert got[("simulate", 3)] == ("output-missing", "its outputs were damaged: out/ is missing")
    assert got[("simulate", 2)][0] == "previous-failed"
    assert got[("simulate", 2)][1].startswith("previous attempt failed (exit 3")
    # stats of seed 2 never ran (blocked): new; the others' outputs are intact: not rerun
    assert got[("stats", 2)] == ("new", "new job: never run in this store")
    assert ("stats", 1) not in got and ("stats", 3) not in got
    # --force of a job whose outputs are intact
    [stats_job] = [j for j in summary.plan if j.stage == "stats"]
    done_stats = [j for j in lab.stage_jobs[("sim", "stats")] if j != stats_job.id]
    forced = run_lab(
        options(lab.root, base, dry_run=True, force=True, selectors=(done_stats[0],)),
        RecordingReporter(),
    )
    [entry] = [j for j in forced.plan if j.id == done_stats[0]]
    assert (entry.cause, entry.reason) == ("forced", "forced (--force): its outputs are intact")
    assert not (base / "outputs" / by_seed[1]).exists()  # a dry run changes nothing


def test_reasons_from_the_previous_build(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    link = tmp_path / "result"
    old = write_lab(tmp_path / "a", pipeline([1, 2], script='echo 1 > "$out/result.json"'))
    link.symlink_to(old.root)
    record_build(link, old.root, old.lab_id)
    base = tmp_path / "base"
    assert run_lab(options(link, base), RecordingReporter()).exit_code == 0
    new = write_lab(tmp_path / "b", pipeline([1, 2, 3], script='echo 2 > "$out/result.json"'))
    link.unlink()
    link.symlink_to(new.root)
    record_build(link, new.root, new.lab_id)
    summary = run_lab(options(link, base, dry_run=True), RecordingReporter())
    got = causes(summary)
    assert got[("simulate", 1)][0] == "script-changed"
    assert got[("simulate", 1)][1].startswith("script changed (")
    assert old.lab_id[:12] in got[("simulate", 1)][1]
    assert got[("stats", 2)][0] == "upstream-changed"
    assert got[("simulate", 3)][0] == "new-parameter"
    assert got[("simulate", 3)][1].startswith("new parameter value seed=3")
    assert got[("aggregate", None)][0] == "upstream-changed"
    text = format_summary(summary)
    assert "dry run: 7 of 7 selected job(s) would run, 0 already done" in text
    assert "sim/simulate: 3 to run, 0 done" in text
    assert "simulate seed=3  [new-parameter] new parameter value seed=3" in text


def test_cli_dry_run_json_carries_the_plan(tmp_path):
    lab = write_lab(tmp_path / "lab", pipeline([1]))
    result = CliRunner().invoke(
        app,
        ["run", "--lab", str(lab.root), "--base", str(tmp_path / "b"), "--dry-run", "--json"],
    )
    assert result.exit_code == 0, result.output
    [summary] = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert summary["dry_run"] and len(summary["plan"]) == 3
    job = summary["plan"][0]
    assert set(job) == {
        "id",
        "short_id",
        "run",
        "stage",
        "params",
        "effective_params",
        "cause",
        "reason",
    }
    assert summary["stages"][0] == {
        "run": "sim",
        "stage": "simulate",
        "selected": 1,
        "cached": 0,
        "to_run": 1,
    }


def test_a_gather_jobs_values_are_shortened_in_the_text(tmp_path):
    lab = write_lab(tmp_path / "lab", pipeline([1, 2, 3, 4, 5]))
    summary = run_lab(options(lab.root, tmp_path / "base", dry_run=True), RecordingReporter())
    text = format_summary(summary)
    assert "aggregate seed={1,2,3,…}  [new] new job: never run in this store" in text
    [aggregate] = [j for j in summary.plan if j.stage == "aggregate"]
    assert aggregate.effective_params["seed"] == [1, 2, 3, 4, 5]  # --json has them all
