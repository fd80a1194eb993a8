"""A loaded lab with what inspection derives from it, each part computed on first use."""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Final

from repx.inspect.params import ParamIndex, run_value_positions, value_key
from repx.inspect.status import StatusView, find_base, output_dir, read_status
from repx.lab.loader import LoadedLab, open_lab
from repx.lab.models import Job, JobInput

#: Shortest short id (hash characters); longer when needed to keep short ids unique.
SHORT_ID_MIN: Final = 8


@dataclass(frozen=True)
class Consumer:
    """A job that reads an output of another job (one input entry)."""

    job: str
    run: str
    input: JobInput


class JobIds:
    """A set of job ids sorted for prefix search, and the short ids that tell them apart.

    Shared by the lab (:class:`LabView`) and by an output store read without its lab
    (``repx log``), so that every command resolves a pasted id the same way.
    """

    def __init__(self, ids: Iterable[str]) -> None:
        self.sorted = sorted(ids)
        self._set = frozenset(self.sorted)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._set

    def __len__(self) -> int:
        return len(self.sorted)

    @cached_property
    def short_length(self) -> int:
        """Hash characters that tell every job apart (at least :data:`SHORT_ID_MIN`)."""
        hashes = {job.partition("-")[0] for job in self.sorted}
        length = SHORT_ID_MIN
        while len({h[:length] for h in hashes}) < len(hashes):
            length += 1  # some prefix of this length names two jobs
        return length

    def with_prefix(self, prefix: str, limit: int | None = None) -> list[str]:
        """Job ids that start with ``prefix`` (at most ``limit``), sorted."""
        ids = self.sorted
        found: list[str] = []
        for job in ids[bisect.bisect_left(ids, prefix) :]:
            if not job.startswith(prefix) or (limit is not None and len(found) >= limit):
                break
            found.append(job)
        return found

    def neighbours(self, token: str, count: int) -> list[str]:
        """Job ids sorted next to ``token`` (the closest candidates for a wrong id)."""
        ids = self.sorted
        start = max(0, min(bisect.bisect_left(ids, token) - count // 2, len(ids) - count))
        return ids[start : start + count]


class LabView:
    """A lab, its output store, and the derived facts the inspection commands share."""

    def __init__(self, lab: LoadedLab, base: Path | None = None) -> None:
        self.lab = lab
        #: the output store directory (None: statuses are not looked up)
        self.base = base

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        base: Path | None = None,
        target: str | None = None,
        lazy: bool = True,
    ) -> LabView:
        """Open the lab at ``path``; find the output store like ``repx run`` does.
        ``lazy``: each job's record is read when looked up (see :func:`open_lab`)."""
        lab = open_lab(path, lazy=lazy)
        return cls(lab, base if base is not None else find_base(None, target))

    # -- names ------------------------------------------------------------------------

    @cached_property
    def run_names(self) -> list[str]:
        """Runs in ``run_order``, then any it does not list."""
        order = dict.fromkeys(r for r in self.lab.revision.run_order if r in self.lab.runs)
        return [*order, *(r for r in self.lab.runs if r not in order)]

    def stages(self, run: str) -> list[str]:
        """Stages of ``run`` in topological order (as listed in revision/metadata.json)."""
        entry = self.lab.revision.runs.get(run)
        listed = list(entry.stages) if entry is not None else []
        manifest = self.lab.runs[run]
        return [s for s in listed if s in manifest.stages] + [
            s for s in manifest.stages if s not in listed
        ]

    def all_stages(self) -> list[str]:
        """Every stage name of the lab (first occurrence, in run order)."""
        return list(dict.fromkeys(s for run in self.run_names for s in self.stages(run)))

    def job(self, job_id: str) -> Job:
        """The job called ``job_id`` (an exact id)."""
        return self.lab.jobs[job_id]

    @cached_property
    def _run_position(self) -> dict[str, int]:
        return {r: i for i, r in enumerate(self.run_names)}

    def run_of(self, job_id: str) -> str:
        """The first run (in run order) that lists ``job_id``."""
        runs = self.lab.job_runs.get(job_id) or ["?"]
        if len(runs) == 1:
            return runs[0]
        return self.runs_of(job_id)[0]

    def runs_of(self, job_id: str) -> list[str]:
        """Every run that lists ``job_id``, in run order."""
        runs = self.lab.job_runs.get(job_id, [])
        if len(runs) < 2:
            return list(runs)
        position = self._run_position
        return sorted(runs, key=lambda r: position.get(r, len(position)))

    def stage_of(self, job_id: str) -> str:
        """The stage of a job; for an id the lab does not hold, the stage its id names."""
        job = self.lab.jobs.get(job_id)
        return job.stage if job is not None else job_id.partition("-")[2] or "?"

    # -- ids --------------------------------------------------------------------------

    @cached_property
    def ids(self) -> JobIds:
        """The lab's job ids, sorted for prefix search."""
        return JobIds(self.lab.jobs)

    @property
    def sorted_ids(self) -> list[str]:
        """Every job id, sorted (for prefix search)."""
        return self.ids.sorted

    @property
    def short_length(self) -> int:
        """Hash characters that tell every job apart (at least :data:`SHORT_ID_MIN`)."""
        return self.ids.short_length

    def short_id(self, job_id: str) -> str:
        """The job's short id: the first characters of its hash (a unique prefix)."""
        return job_id[: self.short_length]

    def with_prefix(self, prefix: str, limit: int | None = None) -> list[str]:
        """Job ids that start with ``prefix`` (at most ``limit``), sorted."""
        return self.ids.with_prefix(prefix, limit)

    def describe_job(self, job_id: str) -> str:
        """``<short id>-<stage> (<run>)``: pasteable into any command that takes a job."""
        return f"{self.short_id(job_id)}-{self.stage_of(job_id)} ({self.run_of(job_id)})"

    def run_label(self, job_id: str) -> str:
        """``run NAME``: the job's first run."""
        return f"run {self.run_of(job_id)}"

    def neighbours(self, token: str, count: int) -> list[str]:
        """Job ids sorted next to ``token`` (the closest candidates for a wrong id)."""
        return self.ids.neighbours(token, count)

    # -- order and relations ----------------------------------------------------------

    @cached_property
    def params(self) -> ParamIndex:
        """Effective parameters, computed on demand."""
        return ParamIndex(self.lab)

    def jobs_of(self, run: str, stage: str | None = None) -> list[str]:
        """Jobs of ``run`` (of one stage) in display order: stage order, then parameters."""
        by_stage = self._stage_jobs[run]
        if stage is not None:
            return list(by_stage.get(stage, []))
        stages = self.stages(run)
        stages += [s for s in by_stage if s not in stages]  # jobs of undeclared stages
        return [job for s in stages for job in by_stage.get(s, [])]

    def all_jobs(self, stage: str | None = None) -> Iterator[tuple[str, str]]:
        """(run, job) for every job once, in display order (a shared job in its first run)."""
        seen: set[str] = set()
        for run in self.run_names:
            for job in self.jobs_of(run, stage):
                if job not in seen:
                    seen.add(job)
                    yield run, job

    @cached_property
    def _stage_jobs(self) -> dict[str, dict[str, list[str]]]:
        """run -> stage -> jobs, each list sorted by the run's parameter values."""
        lab = self.lab
        result: dict[str, dict[str, list[str]]] = {}
        for run in self.run_names:
            manifest = lab.runs[run]
            groups: dict[str, list[str]] = {}
            for job_id, job in manifest.jobs.items():
                groups.setdefault(job.stage, []).append(job_id)
            positions = run_value_positions(lab, run)
            for jobs in groups.values():
                jobs.sort(key=lambda j: (self._sort_key(j, positions), j))
            result[run] = groups
        return result

    def _sort_key(
        self, job_id: str, positions: Mapping[str, dict[Hashable, int]]
    ) -> tuple[int, ...]:
        job = self.lab.jobs[job_id]
        values = job.params if not job.inputs else self.params.effective(job_id).values
        return tuple(
            places.get(value_key(values[name]), len(places)) if name in values else -1
            for name, places in positions.items()
        )

    @cached_property
    def consumers(self) -> dict[str, list[Consumer]]:
        """upstream job -> the jobs (and runs) that read its outputs."""
        found: dict[str, list[Consumer]] = {}
        for run in self.run_names:
            for job_id, job in self.lab.runs[run].jobs.items():
                for inp in job.inputs:
                    found.setdefault(inp.job, []).append(Consumer(job_id, run, inp))
        return found

    def consumers_of(self, job_id: str) -> list[Consumer]:
        """:attr:`consumers` of one job; reads only the records of the jobs that read it
        (the lab's job index says which)."""
        if "consumers" in self.__dict__:
            return self.consumers.get(job_id, [])
        readers = self.lab.readers_of(job_id)
        found: list[Consumer] = []
        for run in self.run_names:
            members = self.lab.runs[run].jobs
            for reader in readers:
                if reader in members:
                    found.extend(
                        Consumer(reader, run, inp)
                        for inp in members[reader].inputs
                        if inp.job == job_id
                    )
        return found

    # -- output store -----------------------------------------------------------------

    @cached_property
    def status(self) -> StatusView:
        """Job states in the output store (all pending when there is none)."""
        return read_status(self.lab, self.base)

    def status_of(self, jobs: Iterable[str]) -> StatusView:
        """The states of ``jobs`` (and of what they need) only: :attr:`status` when it is
        read already, else a snapshot scoped to them (``show job`` on a large lab)."""
        if "status" in self.__dict__:
            return self.status
        return read_status(self.lab, self.base, only=jobs)

    def output_dir(self, job_id: str) -> Path | None:
        """``<base>/outputs/<job>/out``, or None without a base directory."""
        return output_dir(self.base, job_id)

    def output_path(self, job_id: str, output: str) -> Path | None:
        """Where a declared output of a job lives in the output store."""
        out = self.output_dir(job_id)
        if out is None:
            return None
        declared = self.lab.jobs[job_id].outputs.get(output, f"$out/{output}")
        return out / declared.removeprefix("$out/").removeprefix("$out")
