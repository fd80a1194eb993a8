"""completions.index: a scoped read of the store gives what the whole read gives, and an
index that does not describe the log is never believed."""

from __future__ import annotations

import os

import pytest

from repx.run import completions_index
from repx.run.store import COMPLETIONS, Store
from storefake import record_attempt

JOBS = [f"{i:032d}-stage" for i in range(6)]


def _records(base, jobs):
    index = Store.existing(base).read_index(only=jobs)
    return {job: index.records.get(job) for job in jobs}, {j for j in jobs if j in index.committed}


def _whole(base, jobs):
    index = Store.existing(base).read_index()
    return {job: index.records.get(job) for job in jobs}, {j for j in jobs if j in index.committed}


@pytest.fixture
def base(tmp_path):
    base = tmp_path / "base"
    for job in JOBS[:4]:
        record_attempt(base, "lab", job, outputs={"a": "1"})
    record_attempt(base, "lab", JOBS[1], status="failed", exit_code=2)  # a second record
    return base


def test_scoped_reads_agree_with_the_whole_read(base):
    store = Store.existing(base)
    assert _records(base, JOBS) == _whole(base, JOBS)  # no index yet: the log parsed whole
    store.index_completions()
    first = (base / completions_index.INDEX).read_text()
    assert first.splitlines()[0].split("\t")[:2] == [
        completions_index.FORMAT,
        str((base / COMPLETIONS).stat().st_size),
    ]
    assert len(first.splitlines()) == 1 + 4  # one entry per job: its last record
    assert _records(base, JOBS) == _whole(base, JOBS)
    # appended since the index was written: read from the log's tail
    record_attempt(base, "lab", JOBS[4], outputs={"a": "1"})
    record_attempt(base, "lab", JOBS[5], status="failed", exit_code=1)
    got = _records(base, JOBS)
    assert got == _whole(base, JOBS)
    assert got[0][JOBS[5]]["status"] == "failed"
    # the update adds the tail's entries; nothing appended: nothing rewritten
    store.index_completions()
    assert len((base / completions_index.INDEX).read_text().splitlines()) == 1 + 6
    mtime = (base / completions_index.INDEX).stat().st_mtime_ns
    store.index_completions()
    assert (base / completions_index.INDEX).stat().st_mtime_ns == mtime
    assert _records(base, JOBS) == _whole(base, JOBS)


def test_a_lost_record_is_recovered_in_a_scoped_read_too(base):
    Store.existing(base).index_completions()
    record_attempt(base, "lab", JOBS[4], outputs={"a": "1"})
    log = base / COMPLETIONS
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))  # committed, its record lost (a crash)
    records, committed = _records(base, [JOBS[4]])
    assert JOBS[4] in committed
    assert records[JOBS[4]] is not None and records[JOBS[4]]["status"] == "succeeded"


def test_an_index_of_another_log_is_ignored(base):
    Store.existing(base).index_completions()
    log = base / COMPLETIONS
    copy = base / "copy"
    copy.write_bytes(log.read_bytes())
    os.replace(copy, log)  # same bytes, another inode: a rewritten log
    assert completions_index.lookup(base, log, JOBS) is None
    assert _records(base, JOBS) == _whole(base, JOBS)
    Store.existing(base).index_completions()  # rebuilt from scratch for the new log
    assert completions_index.lookup(base, log, JOBS) is not None


@pytest.mark.parametrize(
    "damage",
    ["an offset into another record", "torn", "a covered part beyond the log", "garbage"],
)
def test_a_damaged_index_is_never_believed(base, damage):
    Store.existing(base).index_completions()
    path = base / completions_index.INDEX
    head, *rows = path.read_text().splitlines()
    if damage == "an offset into another record":
        job, _, _ = rows[0].split("\t")
        _, offset, length = rows[1].split("\t")
        rows[0] = f"{job}\t{offset}\t{length}"
    elif damage == "torn":
        rows[-1] = rows[-1][:-3]
    elif damage == "a covered part beyond the log":
        parts = head.split("\t")
        head = "\t".join([parts[0], str(int(parts[1]) + 10**6), parts[2]])
    else:
        head = "not an index"
    text = "\n".join([head, *rows]) + ("" if damage == "torn" else "\n")
    path.write_text(text)
    assert completions_index.lookup(base, base / COMPLETIONS, JOBS) is None
    assert _records(base, JOBS) == _whole(base, JOBS)
