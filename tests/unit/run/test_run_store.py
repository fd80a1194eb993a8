"""The output store: layout, atomic commit, index, torn lines, recovery, stale attempts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repx.run.store import MIN_FREE_BYTES, Store, StoreError
from repx.run.store_models import JobResult, JobStatus

JOB = "0" * 32 + "-simulate"
OTHER = "1" * 32 + "-simulate"


def result(job=JOB, status=JobStatus.SUCCEEDED, attempt="a1"):
    return JobResult(
        job=job,
        status=status,
        exit_code=0 if status is JobStatus.SUCCEEDED else 2,
        start=1.0,
        end=2.0,
        host="h",
        runtime="native",
        lab_id="lab",
        attempt=attempt,
    )


def attempt(store, job=JOB, status=JobStatus.SUCCEEDED, content=b"x"):
    lock = store.try_lock(job)
    assert lock is not None
    work, nonce = store.new_attempt(job)
    (work / "out" / "data").write_bytes(content)
    try:
        return store.commit(job, work, result(job, status, nonce))
    finally:
        lock.release()


def test_open_creates_layout(tmp_path):
    store = Store.open(tmp_path / "base")
    for sub in ("outputs", ".work", "locks"):
        assert (tmp_path / "base" / sub).is_dir()
    info = json.loads((tmp_path / "base" / "repx-store.json").read_text())
    assert info == {"format": "repx-store/1"}
    store.close()


def test_open_refuses_foreign_directory_and_other_format(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(StoreError, match="not a repx output store"):
        Store.open(tmp_path / "mine")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "repx-store.json").write_text('{"format": "repx-store/9"}')
    with pytest.raises(StoreError, match="unsupported output store format"):
        Store.open(tmp_path / "new")
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="not a directory"):
        Store.open(tmp_path / "file")


def test_open_refuses_unusable_directory(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="not usable"):
        Store.open(tmp_path / "file" / "base")


def test_open_refuses_full_disk(tmp_path, monkeypatch):
    class Stat:
        f_bavail = 1
        f_frsize = 1024

    monkeypatch.setattr(os, "statvfs", lambda _: Stat())
    with pytest.raises(StoreError, match="is full"):
        Store.open(tmp_path / "base")
    assert not (tmp_path / "base" / "outputs").exists()
    assert MIN_FREE_BYTES > 1024


def test_success_commit_is_atomic_and_indexed(tmp_path):
    store = Store.open(tmp_path)
    final = attempt(store)
    assert final == tmp_path / "outputs" / JOB
    assert (final / "out" / "data").read_bytes() == b"x"
    assert (final / "repx" / "SUCCESS").exists()
    assert json.loads((final / "repx" / "result.json").read_text())["status"] == "succeeded"
    assert os.listdir(tmp_path / ".work") == []
    index = store.read_index()
    assert index.succeeded(JOB) and not index.succeeded(OTHER)
    assert index.last_status(JOB) is JobStatus.SUCCEEDED


def test_failure_is_committed_without_visible_output(tmp_path):
    store = Store.open(tmp_path)
    final = attempt(store, status=JobStatus.FAILED)
    assert not (final / "out").exists()
    assert (final / "failed-out" / "data").exists()
    assert (final / "repx" / "FAIL").exists()
    index = store.read_index()
    assert not index.succeeded(JOB)
    assert index.last_status(JOB) is JobStatus.FAILED
    # a later success replaces the failed attempt
    attempt(store, content=b"y")
    assert (final / "out" / "data").read_bytes() == b"y"
    assert not (final / "failed-out").exists()
    assert not (final / "repx" / "FAIL").exists()
    assert store.read_index().succeeded(JOB)
    assert os.listdir(tmp_path / ".work") == []


def test_torn_lines_are_skipped_and_next_append_starts_fresh(tmp_path):
    store = Store.open(tmp_path)
    attempt(store)
    store.close()
    with (tmp_path / "completions.jsonl").open("ab") as f:
        f.write(b'{"job": "' + OTHER.encode() + b'", "stat')  # a crash mid-line
    store = Store.open(tmp_path)  # repairs the tail
    index = store.read_index()
    assert index.torn_lines == 1 and index.succeeded(JOB)
    attempt(store, job=OTHER)
    index = store.read_index()
    assert index.torn_lines == 1
    assert index.succeeded(OTHER)
    garbage = tmp_path / "completions.jsonl"
    garbage.write_bytes(garbage.read_bytes() + b"\x00\xff not json\n[1,2]\n")
    assert store.read_index().succeeded(OTHER)


def test_lost_record_is_recovered_from_result_json(tmp_path):
    """A crash between the rename and the append: the output is there, the line is not."""
    store = Store.open(tmp_path)
    attempt(store)
    (tmp_path / "completions.jsonl").write_text("")
    index = store.read_index()
    assert index.succeeded(JOB)
    assert [r.job for r in index.recovered] == [JOB]
    store.recover(index.recovered)
    assert Store.open(tmp_path).read_index().recovered == []


def test_lost_record_of_a_committed_failure_is_recovered(tmp_path):
    """The same crash after a failed attempt: recovered too (the docstring's promise)."""
    store = Store.open(tmp_path)
    attempt(store, status=JobStatus.FAILED)
    (tmp_path / "completions.jsonl").write_text("")
    index = store.read_index()
    assert index.last_status(JOB) is JobStatus.FAILED
    assert [(r.job, r.status) for r in index.recovered] == [(JOB, JobStatus.FAILED)]
    store.recover(index.recovered)
    assert Store.open(tmp_path).read_index().recovered == []


def test_damage_tells_why_a_committed_success_cannot_be_used(tmp_path):
    store = Store.open(tmp_path)
    final = attempt(store)
    assert store.damage(JOB, ["data"]) is None and store.committed_success(JOB, ["data"])
    assert store.damage(JOB, ["data", "sub/more.csv"]) == "missing output sub/more.csv"
    assert not store.committed_success(JOB, ["sub/more.csv"])
    store.distrust([JOB])
    assert not store.committed_success(JOB)  # until an attempt is committed
    (final / "repx" / "FAIL").touch()
    assert store.damage(JOB) == "its committed attempt is marked FAIL"
    (final / "repx" / "FAIL").unlink()
    (final / "out").rename(final / "moved")
    (final / "out").symlink_to(final / "moved")
    assert store.damage(JOB) == "out/ is a symlink"
    (final / "out").unlink()
    assert store.damage(JOB) == "out/ is missing"
    (final / "out").write_text("")
    assert store.damage(JOB) == "out/ is not a directory"
    attempt(store, content=b"new")  # the commit replaces the damaged directory whole
    assert store.committed_success(JOB) and (final / "out" / "data").read_bytes() == b"new"
    assert not (final / "moved").exists()


def test_commit_replaces_whatever_took_the_job_directory(tmp_path):
    store = Store.open(tmp_path)
    (tmp_path / "outputs" / JOB).write_text("not a directory")
    attempt(store)
    assert store.committed_success(JOB)


def test_deleted_output_is_not_done(tmp_path):
    store = Store.open(tmp_path)
    final = attempt(store)
    shutil.rmtree(final)
    index = store.read_index()
    assert not index.succeeded(JOB)
    assert index.last_status(JOB) is None


HOLD = """
import sys, time
from pathlib import Path
from repx.run.store import Store
lock = Store(Path(sys.argv[1])).lock(sys.argv[2])
print("held", flush=True)
time.sleep(60)
"""


def test_locks_and_stale_attempts(tmp_path):
    store = Store.open(tmp_path)
    # a dead process's attempt (nobody holds the lock) and a live one
    stale, _ = store.new_attempt(JOB)
    live, _ = store.new_attempt(OTHER)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path), OTHER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert store.is_locked(OTHER) and not store.is_locked(JOB)
        assert store.try_lock(OTHER) is None
        assert store.clean_stale() == [JOB]
        assert not stale.exists() and live.exists()
        assert set(store.attempts_in_progress()) == {OTHER}
    finally:
        holder.kill()
        holder.wait()
    lock = store.try_lock(OTHER)
    assert lock is not None
    assert "pid" in store.lock_holder(OTHER)
    store.discard_leftovers(OTHER)  # remembered while busy: deleted once we hold the lock
    assert not live.exists()
    lock.release()


def test_a_second_run_joins_a_store_another_run_is_initialising(tmp_path: Path) -> None:
    # What a concurrent `repx run` may have created before writing repx-store.json.
    base = tmp_path / "base"
    for sub in ("outputs", ".work", "locks"):
        (base / sub).mkdir(parents=True)
    (base / ".probe-123-abcd").write_bytes(b"repx")
    store = Store.open(base)
    assert (base / "repx-store.json").is_file()
    assert store.outputs == base / "outputs"


def test_a_directory_with_foreign_files_is_still_refused(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "outputs").mkdir(parents=True)
    (base / "thesis.tex").write_text("x")
    with pytest.raises(StoreError, match="not a repx output store"):
        Store.open(base)
