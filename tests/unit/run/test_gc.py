"""`repx gc`: what is kept (pins, the current lab, recent labs), what goes, and safety."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labfactory import RunSpec, StageSpec, write_lab
from repx.cli import app
from repx.config import RuntimeKind
from repx.errors import RepxError
from repx.run.reporter import RecordingReporter
from repx.run.store import Store
from repx.run.store_usage import StoreBusyError, shared_use
from repx.services import gc
from repx.services.location import Location
from repx.services.run import RunOptions, run_lab
from repx.services.status import lab_status


def run(lab: Path, base: Path) -> int:
    options = RunOptions(where=Location(lab=lab, base=base), runtime=RuntimeKind.NATIVE, jobs=2)
    return run_lab(options, RecordingReporter()).exit_code


def seeds_lab(root: Path, seeds: list[int]):
    runs = (
        RunSpec(
            name="sweep",
            parameters={"seed": seeds},
            stages=(StageSpec("simulate", params=("seed",)),),
        ),
    )
    return write_lab(root, runs)


def outputs(base: Path) -> set[str]:
    return {p.name for p in (base / "outputs").iterdir()}


@pytest.fixture
def two_labs(tmp_path):
    """Lab `old` (seeds 0-3) then lab `new` (seeds 2-5) run into one store."""
    old = seeds_lab(tmp_path / "old", [0, 1, 2, 3])
    new = seeds_lab(tmp_path / "new", [2, 3, 4, 5])
    base = tmp_path / "base"
    assert run(old.root, base) == 0
    assert run(new.root, base) == 0
    assert len(outputs(base)) == 6  # seeds 2 and 3 are the same jobs in both labs
    return old, new, base


def test_outputs_of_labs_not_kept_go_and_rerun_exactly(two_labs):
    old, new, base = two_labs
    only_old = set(old.job_ids) - set(new.job_ids)
    dry = gc.collect(base, current=new.root, keep_recent=0, dry_run=True)
    assert {r.job for r in dry.removed} == only_old and outputs(base) == set(old.job_ids) | set(
        new.job_ids
    )  # a dry run removes nothing
    report = gc.collect(base, current=new.root, keep_recent=0)
    assert {r.job for r in report.removed if r.kind == "output"} == only_old
    assert report.bytes > 0
    assert [(k.lab_id, k.why) for k in report.kept] == [(new.lab_id, "current")]
    assert outputs(base) == set(new.job_ids)
    statuses = {e.id: e.status.value for e in lab_status(Location(lab=old.root, base=base)).jobs}
    assert {j for j, s in statuses.items() if s != "succeeded"} == only_old
    assert run(old.root, base) == 0  # the old lab reruns exactly what gc removed
    assert outputs(base) == set(old.job_ids) | set(new.job_ids)


def test_recent_labs_are_kept_by_default(two_labs):
    old, new, base = two_labs
    report = gc.collect(base, current=None)  # keep_recent=5: both labs ran recently
    assert report.removed == ()
    assert {k.lab_id: k.why for k in report.kept} == {old.lab_id: "recent", new.lab_id: "recent"}
    report = gc.collect(base, current=None, keep_recent=1)  # the most recent: `new`
    assert {r.job for r in report.removed} == set(old.job_ids) - set(new.job_ids)


def test_a_pinned_lab_keeps_its_outputs_until_unpinned(two_labs):
    old, new, base = two_labs
    entry = gc.pin(base, old.root, "paper")
    assert entry.lab_id == old.lab_id and (base / "pins" / "paper.lab").resolve() == old.root
    report = gc.collect(base, current=new.root, keep_recent=0)
    assert report.removed == () and {k.pin for k in report.kept} == {"paper", None}
    listing = gc.list_labs(base, current=new.root, keep_recent=0, sizes=True)
    kinds = {row.lab_id: (row.kind, row.name) for row in listing.labs}
    assert kinds == {old.lab_id: ("pinned", "paper"), new.lab_id: ("current", None)}
    assert all(row.bytes and row.bytes > 0 for row in listing.labs)
    gc.unpin(base, "paper")
    with pytest.raises(RepxError, match=r"no pin named 'paper' .*\(pins: none\)"):
        gc.unpin(base, "paper")
    report = gc.collect(base, current=new.root, keep_recent=0)
    assert {r.job for r in report.removed} == set(old.job_ids) - set(new.job_ids)


def test_a_pinned_lab_that_is_gone_stops_gc_before_anything_is_removed(two_labs, tmp_path):
    old, new, base = two_labs
    gc.pin(base, old.root, "paper")
    old.root.rename(tmp_path / "moved")
    before = outputs(base)
    with pytest.raises(
        RepxError, match=r"pinned lab 'paper' cannot be read .*'repx gc unpin paper'"
    ):
        gc.collect(base, current=new.root, keep_recent=0)
    assert outputs(base) == before


def test_a_lab_that_is_gone_is_forgotten_and_its_outputs_collected(two_labs, tmp_path):
    old, new, base = two_labs
    old.root.rename(tmp_path / "moved")
    report = gc.collect(base, current=None)  # only `new` is left to keep
    assert report.forgotten_labs == (old.lab_id,)
    assert outputs(base) == set(new.job_ids)
    assert not (base / "labs" / f"{old.lab_id}.json").exists()


def test_gc_removes_nothing_while_a_run_uses_the_store(two_labs):
    _old, new, base = two_labs
    with shared_use(base), pytest.raises(StoreBusyError, match="a repx run is using"):
        gc.collect(base, current=new.root, keep_recent=0)
    assert gc.collect(base, current=new.root, keep_recent=0).removed  # once it has ended


def test_a_job_whose_lock_is_held_is_skipped(two_labs):
    old, new, base = two_labs
    victim = sorted(set(old.job_ids) - set(new.job_ids))[0]
    holder = Store.open(base)
    lock = holder.try_lock(victim)
    assert lock is not None
    try:
        report = gc.collect(base, current=new.root, keep_recent=0)
    finally:
        lock.release()
        holder.close()
    assert report.skipped_in_use == (victim,)
    assert victim in outputs(base)


def test_failed_partial_outputs_and_stale_work_go_the_record_stays(tmp_path):
    runs = (RunSpec(name="r", stages=(StageSpec("boom", script='echo partial > "$1/x"; exit 3'),)),)
    lab = write_lab(tmp_path / "lab", runs)
    base = tmp_path / "base"
    assert run(lab.root, base) == 1
    [job] = lab.job_ids
    assert (base / "outputs" / job / "failed-out" / "x").is_file()
    stale = base / ".work" / f"{job}.abcdef"
    (stale / "out").mkdir(parents=True)
    report = gc.collect(base, current=lab.root)
    assert sorted(r.kind for r in report.removed) == ["failed-out", "work"]
    assert not (base / "outputs" / job / "failed-out").exists() and not stale.exists()
    [entry] = lab_status(Location(lab=lab.root, base=base)).jobs
    assert entry.status.value == "failed"  # status still tells why


def test_a_store_no_run_used_has_nothing_to_collect(tmp_path):
    report = gc.collect(tmp_path / "never", current=None)
    assert report.removed == () and not (tmp_path / "never").exists()


def test_cli_asks_before_removing_and_prints_json(two_labs, monkeypatch):
    old, new, base = two_labs
    monkeypatch.chdir(base.parent)
    runner = CliRunner()
    common = ["--lab", str(new.root), "--base", str(base), "--keep-recent", "0"]
    asked = runner.invoke(app, ["gc", *common])
    assert asked.exit_code == 2 and "pass -y" in asked.output
    assert outputs(base) == set(old.job_ids) | set(new.job_ids)
    done = runner.invoke(app, ["gc", *common, "-y", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert {r["job"] for r in report["removed"]} == set(old.job_ids) - set(new.job_ids)
    assert set(report) >= {"base", "kept", "removed", "bytes", "dry_run"}
    pinned = runner.invoke(app, ["gc", "pin", str(new.root), "--name", "v2", "--base", str(base)])
    assert pinned.exit_code == 0 and "pinned lab" in pinned.output
    listed = runner.invoke(app, ["gc", "list", "--base", str(base), "--json"])
    assert [row["name"] for row in json.loads(listed.stdout)["labs"]] == ["v2", None]
    bad = runner.invoke(app, ["gc", "pin", str(new.root), "--name", "../x", "--base", str(base)])
    assert bad.exit_code == 2 and "invalid pin name" in bad.output
    assert os.path.islink(base / "pins" / "v2.lab")
