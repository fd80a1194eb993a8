"""``lab/job-index.tsv``: where each job's record lies in its run manifest.

The lab builder writes every run manifest with one job per line and this index of them::

    repx-job-index/1
    <job id>\\t<manifest path>\\t<byte offset>\\t<byte length>\\t<upstream job ids>

one line per job and manifest (a job shared by several runs has a line in each); the
upstream ids are the jobs of the job's ``inputs``, space-separated, sorted, once each. With it a
lab is opened without parsing its jobs: :class:`ManifestJobs` is a mapping whose values are
validated one by one when they are first looked up (``repx show job`` on a 100,000-job lab
reads a few records, not 50 MB). A lab without the index (built by an older repx) is read
whole, as before.

Nothing here is trusted blindly: the bytes at a range must start right after the job's own
key (``"<id>":``) and validate as a :class:`~repx.lab.models.Job`; an index that does not
match its manifests is refused with a one-line :class:`~repx.errors.LabError`, as any other
damaged lab file. ``repx verify`` checks the file's hash like every file of the lab.
"""

# ruff: noqa: PTH123 (the manifest is mapped: open() gives the descriptor mmap needs)

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from pydantic import ValidationError

from repx.errors import LabError, one_line
from repx.lab.models import Job, JobFacts, JobOutline

#: The index, relative to the lab root.
JOB_INDEX: Final = "lab/job-index.tsv"
INDEX_FORMAT: Final = "repx-job-index/1"
#: What the first line of an indexed manifest ends with (the jobs follow, one per line).
JOBS_OPENER: Final = b',"jobs":{'
#: ... and its last line (after the last job's).
JOBS_CLOSER: Final = b"\n}}\n"

_Record = TypeVar("_Record", Job, JobFacts)

#: manifest path -> {job id: the rest of its line ("offset\tlength\tupstream")}, in the
#: order of the index (parsed when the job is looked up: reading 10^5 lines stays cheap)
Rows = dict[str, dict[str, str]]


@dataclass(frozen=True)
class JobIndex:
    """What ``lab/job-index.tsv`` says."""

    rows: Rows

    def upstream(self) -> Mapping[str, tuple[str, ...]]:
        """job id -> the jobs whose outputs it reads (sorted, once each)."""
        return _Upstream(self.rows)

    def readers_of(self, job_id: str) -> tuple[str, ...]:
        """The jobs that read ``job_id``'s outputs, in the order of the index (one scan
        of the raw lines: no line is parsed but those naming it)."""
        found: dict[str, None] = {}
        for per in self.rows.values():
            for reader, rest in per.items():
                if job_id in rest and job_id in _fields(reader, rest)[2]:
                    found[reader] = None
        return tuple(found)


def read_index(root: Path) -> JobIndex | None:
    """``root``'s job index, or None when the lab has none."""
    try:
        data = (root / JOB_INDEX).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LabError(f"{JOB_INDEX}: cannot read: {exc.strerror}") from None
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[0] != INDEX_FORMAT:
        raise LabError(one_line(f"{JOB_INDEX}: line 1: '{lines[0][:40]}' is not '{INDEX_FORMAT}'"))
    rows: Rows = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        try:
            job, manifest, rest = line.split("\t", 2)
        except ValueError:
            raise LabError(f"{JOB_INDEX}: line {number}: not {_ROW}") from None
        per = rows.get(manifest)
        if per is None:
            per = rows[manifest] = {}
        if job in per:
            raise LabError(one_line(f"{JOB_INDEX}: line {number}: job {job} listed twice"))
        per[job] = rest
    return JobIndex(rows)


_ROW: Final = "'job<TAB>manifest<TAB>offset<TAB>length<TAB>upstream jobs'"


def _fields(job_id: str, rest: str) -> tuple[int, int, tuple[str, ...]]:
    """(offset, length, upstream jobs) of a job's line."""
    try:
        offset, length, reads = rest.split("\t")
        return int(offset), int(length), tuple(reads.split(" ")) if reads else ()
    except ValueError:
        raise LabError(one_line(f"{JOB_INDEX}: the line of job {job_id} is not {_ROW}")) from None


class _Upstream(Mapping[str, tuple[str, ...]]):
    """job id -> its upstream jobs, parsed from the index line when looked up (the first
    manifest listing the job; the lines of a shared job agree: the loader checks it)."""

    def __init__(self, rows: Rows) -> None:
        self._rows = list(rows.values())

    def __getitem__(self, job_id: str) -> tuple[str, ...]:
        for per in self._rows:
            rest = per.get(job_id)
            if rest is not None:
                return _fields(job_id, rest)[2]
        raise KeyError(job_id)

    def __iter__(self) -> Iterator[str]:
        if len(self._rows) == 1:
            return iter(self._rows[0])
        return iter(dict.fromkeys(job for per in self._rows for job in per))

    def __len__(self) -> int:
        if len(self._rows) == 1:
            return len(self._rows[0])
        return len(set().union(*self._rows))

    def __contains__(self, job_id: object) -> bool:
        return any(job_id in per for per in self._rows)


class JobRuns(Mapping[str, list[str]]):
    """job id -> the runs listing it (in the lab's run order), from the index's manifests."""

    def __init__(self, runs: Mapping[str, Mapping[str, object]]) -> None:
        self._runs = runs  # run -> its jobs (any mapping keyed by job id)
        #: the jobs of a lab's only run (the common case: a membership test is one lookup)
        self._only = next(iter(runs.values())) if len(runs) == 1 else None

    def __getitem__(self, job_id: str) -> list[str]:
        found = [run for run, jobs in self._runs.items() if job_id in jobs]
        if not found:
            raise KeyError(job_id)
        return found

    def __iter__(self) -> Iterator[str]:
        if len(self._runs) == 1:
            return iter(next(iter(self._runs.values())))
        return iter(dict.fromkeys(job for jobs in self._runs.values() for job in jobs))

    def __len__(self) -> int:
        if len(self._runs) == 1:
            return len(next(iter(self._runs.values())))
        return len(set().union(*(jobs.keys() for jobs in self._runs.values())))

    def __contains__(self, job_id: object) -> bool:
        if self._only is not None:
            return job_id in self._only
        return any(job_id in jobs for jobs in self._runs.values())


class ManifestJobs(Mapping[str, Job]):
    """The jobs of one run manifest, each validated when first looked up.

    ``check(job_id, job)`` runs once per validated job (the loader's confinement check).
    """

    def __init__(
        self,
        root: Path,
        manifest: str,
        rows: Mapping[str, str],
        check: Callable[[str, Job], None],
        check_facts: Callable[[str, JobFacts], None] | None = None,
    ) -> None:
        self._file = root / manifest
        self._manifest = manifest
        self._rows = rows
        self._check = check
        self._check_facts = check_facts
        self._jobs: dict[str, Job] = {}
        self._facts: dict[str, JobFacts] = {}
        self._map: mmap.mmap | bytes | None = None

    def __getitem__(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            if job_id not in self._rows:
                raise KeyError(job_id)
            job = self._jobs[job_id] = self._read(job_id)
        return job

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._rows

    def facts(self, job_id: str) -> JobOutline:
        """The job's stage and declared outputs: its record when that was read, else its
        bytes validated as :class:`JobFacts` alone (a fifth of a whole record's cost; the
        rest is validated when looked up)."""
        job = self._jobs.get(job_id)
        if job is not None:
            return job
        found = self._facts.get(job_id)
        if found is None:
            if job_id not in self._rows:
                raise KeyError(job_id)
            found = self._facts[job_id] = self._validate(job_id, JobFacts)
            if self._check_facts is not None:
                self._check_facts(job_id, found)
        return found

    def raw(self, job_id: str) -> bytes:
        """The bytes of the job's record (checked to follow the job's own key)."""
        offset, length, _ = _fields(job_id, self._rows[job_id])
        key = b'"' + job_id.encode() + b'":'
        start = offset - len(key)
        content = self._content()
        data = content[start : offset + length] if start >= 0 else b""
        if not data.startswith(key) or len(data) != len(key) + length:
            raise LabError(
                one_line(
                    f"{JOB_INDEX}: the range of job {job_id} is not its record in"
                    f" {self._manifest} (the lab is damaged: rebuild it, or repx verify)"
                )
            )
        return data[len(key) :]

    def _content(self) -> mmap.mmap | bytes:
        """The manifest, mapped once (pages are read as records are looked up)."""
        if self._map is None:
            try:
                with open(self._file, "rb") as f:
                    self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # an empty file cannot be mapped
                self._map = b""
            except OSError as exc:
                raise LabError(f"{self._manifest}: cannot read: {exc.strerror}") from None
        return self._map

    def _read(self, job_id: str) -> Job:
        job = self._validate(job_id, Job)
        self._check(job_id, job)
        return job

    def _validate(self, job_id: str, model: type[_Record]) -> _Record:
        try:
            return model.model_validate_json(self.raw(job_id))
        except ValidationError as exc:
            from repx.lab.loader import describe_validation_error  # noqa: PLC0415 (cycle)

            detail = describe_validation_error(exc)
            sep = ": " if detail.startswith("invalid JSON") else "."
            raise LabError(one_line(f"{self._manifest}: jobs.{job_id}{sep}{detail}")) from None


def manifest_top(root: Path, manifest: str) -> bytes | None:
    """The manifest's JSON without its jobs (``{…}``), when it is laid out as indexed
    (first line ending with :data:`JOBS_OPENER`, last line ``}}``); None otherwise."""
    try:
        with open(root / manifest, "rb") as f:
            first = f.readline()
            f.seek(-len(JOBS_CLOSER), os.SEEK_END)
            last = f.read()
    except OSError:
        return None
    first = first.rstrip(b"\n")
    if not first.endswith(JOBS_OPENER) or last != JOBS_CLOSER:
        return None
    return first[: -len(JOBS_OPENER)] + b"}"
