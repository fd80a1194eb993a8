"""Open a lab directory and read all of its JSON files through the models.

The integrity list of ``lab/lab-metadata.json`` (``files``, ``symlinks``, ``empty_dirs``:
most of the file, 37 MB for 100,000 jobs) is read only when something needs it
(:meth:`LoadedLab.integrity_list`: ``repx verify``, ``repx run``'s check, the remote delta).
The rest of that file (:class:`LabHeader`) comes from a per-lab cache (:mod:`repx.lab.cache`)
when the file is the one the cache was written from, else from the file (then cached).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from pydantic import BaseModel, ValidationError

from repx.errors import LabError, one_line
from repx.lab import cache, job_index
from repx.lab.models import (
    Job,
    JobFacts,
    JobOutline,
    LabHeader,
    LabMetadata,
    RevisionMetadata,
    RunManifest,
    RunManifestTop,
)

#: The entry point of every lab, relative to its root.
LAB_METADATA: Final = "lab/lab-metadata.json"

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class LoadedLab:
    """A lab read into memory: its metadata, every run manifest and every job."""

    root: Path
    meta: LabHeader
    revision: RevisionMetadata
    runs: dict[str, RunManifest]
    #: every job; in an indexed lab each record is validated when first looked up
    jobs: Mapping[str, Job]
    #: job -> the runs listing it
    job_runs: Mapping[str, list[str]]
    #: the lab's job index (None: a lab without one, read whole)
    index: job_index.JobIndex | None = None
    #: the integrity list once read (see :meth:`integrity_list`)
    _listing: list[LabMetadata] = dataclasses.field(default_factory=list, compare=False, repr=False)

    def path(self, rel: str) -> Path:
        """Absolute path of a lab-relative path (as found in the JSON files)."""
        return self.root / rel

    @functools.cached_property
    def upstream(self) -> Mapping[str, tuple[str, ...]]:
        """job -> the jobs whose outputs it reads (sorted, once each): from the job index
        without reading any record when the lab has one."""
        if self.index is not None:
            return self.index.upstream()
        return {
            job_id: tuple(sorted({i.job for i in job.inputs})) for job_id, job in self.jobs.items()
        }

    @functools.cached_property
    def facts(self) -> Mapping[str, JobOutline]:
        """job -> its stage and declared outputs (what reading job states needs): the
        records, or in a lab opened lazily what those fields validate to alone."""
        if isinstance(self.jobs, _LabJobs):
            return _Facts(self.jobs)
        return self.jobs

    def readers_of(self, job_id: str) -> tuple[str, ...]:
        """The jobs that read ``job_id``'s outputs (in the order of the lab's runs)."""
        if self.index is not None:
            return self.index.readers_of(job_id)
        return tuple(job for job, reads in self.upstream.items() if job_id in reads)

    def integrity_list(self) -> LabMetadata:
        """The whole of ``lab/lab-metadata.json``, integrity list included (read once).

        Refused (:class:`LabError`) when the file is no longer the one the lab was opened
        from, or lists a path outside the lab.
        """
        if not self._listing:
            if isinstance(self.meta, LabMetadata):
                full = self.meta
            else:
                with _gc_paused():
                    full = read_model(self.root, LAB_METADATA, LabMetadata)
                    _check_listed_paths(full)
                if header_of(full) != self.meta:
                    raise LabError(
                        f"{LAB_METADATA}: changed since the lab was opened ({self.root})"
                    )
            self._listing.append(full)
        return self._listing[0]


#: The members of lab-metadata.json that :class:`LabHeader` keeps.
_HEADER_FIELDS: Final = set(LabHeader.model_fields)


def open_lab(path: Path, *, lazy: bool = False) -> LoadedLab:
    """Read the lab at ``path`` (a directory or a ``result`` symlink to one).

    Every problem (missing file, bad JSON, invalid content, unsupported format version)
    raises a one-line :class:`LabError` naming the lab file and the field. ``lazy``: in a
    lab with a job index (:mod:`repx.lab.job_index`), each job's record is read, validated
    and checked when first looked up, raising then (inspection reads a few of 10^5 jobs);
    otherwise all of them now.
    """
    root = resolve_root(path)
    with _gc_paused():
        return _read_lab(root, lazy=lazy)


def _read_lab(root: Path, *, lazy: bool) -> LoadedLab:
    key = cache.key_of(root / LAB_METADATA)
    meta: LabHeader | None = cache.read_header(key) if key is not None else None
    if meta is None:
        full = read_model(root, LAB_METADATA, LabMetadata)
        _check_listed_paths(full)
        meta = full
        if key is not None and key.lab_id == full.lab_id:
            cache.write_header(key, header_of(full))
    revision = read_model(root, meta.metadata, RevisionMetadata)
    index = job_index.read_index(root)
    if index is not None:
        indexed = _read_indexed(root, meta, revision, index)
        if indexed is not None:
            if lazy:
                return indexed
            # every record now (each validated on its own: faster than the whole file)
            jobs, job_runs = _every_job(revision, indexed.runs, checked=True)
            return dataclasses.replace(indexed, jobs=jobs, job_runs=job_runs)
    runs: dict[str, RunManifest] = {}
    for name, entry in revision.runs.items():
        manifest = read_model(root, entry.manifest, RunManifest)
        if manifest.name != name:
            raise LabError(
                one_line(
                    f"{entry.manifest}: name: '{manifest.name}' but "
                    f"{meta.metadata} lists it as run '{name}'"
                )
            )
        runs[name] = manifest
    jobs, job_runs = _every_job(revision, runs, checked=False)
    return LoadedLab(root, meta, revision, runs, jobs, job_runs)


def _every_job(
    revision: RevisionMetadata, runs: Mapping[str, RunManifest], *, checked: bool
) -> tuple[dict[str, Job], dict[str, list[str]]]:
    """(job -> its record, job -> the runs listing it) of every run; ``checked``: the
    records were confined when read (an indexed lab's)."""
    jobs: dict[str, Job] = {}
    job_runs: dict[str, list[str]] = {}
    for name, manifest in runs.items():
        where = revision.runs[name].manifest
        for job_id, job in manifest.jobs.items():
            if not checked:
                _check_confined(where, job_id, job)
            # a job shared by several runs is listed in each manifest: identical, or refused
            first = jobs.setdefault(job_id, job)
            if first is not job and first != job:
                other = revision.runs[job_runs[job_id][0]].manifest
                raise LabError(
                    one_line(
                        f"{where}: jobs.{job_id}: differs from the job of the same "
                        f"id in {other} (a job id names one content; rebuild the lab)"
                    )
                )
            job_runs.setdefault(job_id, []).append(name)
    return jobs, job_runs


def _read_indexed(
    root: Path, meta: LabHeader, revision: RevisionMetadata, index: job_index.JobIndex
) -> LoadedLab | None:
    """An indexed lab: each manifest's top validated now, its jobs when looked up (None: a
    manifest is not laid out as the index says)."""
    ranges = index.rows
    runs: dict[str, RunManifest] = {}
    per_run: dict[str, job_index.ManifestJobs] = {}
    for name, entry in revision.runs.items():
        top_bytes = job_index.manifest_top(root, entry.manifest)
        if top_bytes is None:
            return None  # not laid out as indexed (edited?): read whole, it is the truth
        try:
            top = RunManifestTop.model_validate_json(top_bytes)
        except ValidationError as exc:
            raise LabError(
                f"{one_line(entry.manifest)}: {one_line(describe_validation_error(exc))}"
            ) from None
        if top.name != name:
            raise LabError(
                one_line(
                    f"{entry.manifest}: name: '{top.name}' but "
                    f"{meta.metadata} lists it as run '{name}'"
                )
            )
        manifest_path = entry.manifest
        jobs_of_run = job_index.ManifestJobs(
            root,
            manifest_path,
            ranges.get(manifest_path, {}),
            functools.partial(_check_confined, manifest_path),
            functools.partial(_check_facts, manifest_path),
        )
        per_run[name] = jobs_of_run
        runs[name] = RunManifest.model_construct(**dict(top), jobs=jobs_of_run)
        for job_id in jobs_of_run:
            if not _safe_name(job_id):  # refused before anything names a path after it
                raise LabError(
                    one_line(
                        f"{manifest_path}: jobs.{job_id}: job id is not a plain file name"
                        " ('/', NUL or '..')"
                    )
                )
    job_runs = job_index.JobRuns(per_run)
    unknown = ranges.keys() - {entry.manifest for entry in revision.runs.values()}
    if unknown:
        raise LabError(
            one_line(
                f"{job_index.JOB_INDEX}: lists jobs of {sorted(unknown)[0]}, which no run of"
                f" {meta.metadata} names (the lab is damaged: rebuild it)"
            )
        )
    jobs = _LabJobs(per_run, job_runs, revision)
    return LoadedLab(root, meta, revision, runs, jobs, job_runs, index)


class _LabJobs(Mapping[str, Job]):
    """Every job of an indexed lab (a job shared by several runs once): its record from
    the first run listing it, checked identical in the others when first looked up."""

    def __init__(
        self,
        per_run: dict[str, job_index.ManifestJobs],
        job_runs: Mapping[str, list[str]],
        revision: RevisionMetadata,
    ) -> None:
        self._per_run = per_run
        self._job_runs = job_runs
        self._revision = revision
        self._checked: set[str] = set()

    def __getitem__(self, job_id: str) -> Job:
        names = self._job_runs[job_id]
        first = self._per_run[names[0]]
        job = first[job_id]
        if len(names) > 1 and job_id not in self._checked:
            # a job shared by several runs is listed in each manifest: identical, or refused
            for name in names[1:]:
                other = self._per_run[name]
                if other.raw(job_id) != first.raw(job_id) and other[job_id] != job:
                    manifest = self._revision.runs[name].manifest
                    where = self._revision.runs[names[0]].manifest
                    raise LabError(
                        one_line(
                            f"{manifest}: jobs.{job_id}: differs from the job of the same "
                            f"id in {where} (a job id names one content; rebuild the lab)"
                        )
                    )
            self._checked.add(job_id)
        return job

    def facts(self, job_id: str) -> JobOutline:
        """The job's stage and outputs, from the first run listing it (the full record
        checks the manifests agree)."""
        return self._per_run[self._job_runs[job_id][0]].facts(job_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._job_runs)

    def __len__(self) -> int:
        return len(self._job_runs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._job_runs


class _Facts(Mapping[str, JobOutline]):
    """job -> its :meth:`_LabJobs.facts` (each validated once, by its manifest's mapping)."""

    def __init__(self, jobs: _LabJobs) -> None:
        self._jobs = jobs

    def __getitem__(self, job_id: str) -> JobOutline:
        return self._jobs.facts(job_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs


def header_of(meta: LabMetadata) -> LabHeader:
    """``meta`` without its integrity list."""
    return LabHeader.model_validate(meta.model_dump(include=_HEADER_FIELDS))


def _check_listed_paths(meta: LabMetadata) -> None:
    """Refuse an integrity list naming a path outside the lab (checked in one pass)."""
    for field, paths in (
        ("files", [f.path for f in meta.files]),
        ("symlinks", [s.path for s in meta.symlinks]),
        ("empty_dirs", list(meta.empty_dirs)),
    ):
        for i, path in enumerate(paths):
            if path[0] == "/" or "\0" in path or (".." in path and ".." in path.split("/")):
                at = f"{field}[{i}]" + (".path" if field != "empty_dirs" else "")
                raise LabError(
                    one_line(f"{LAB_METADATA}: {at}: '{path}' is not a path inside the lab")
                )


def _check_confined(manifest: str, job_id: str, job: Job) -> None:
    """Refuse a job whose id or declared outputs would name a path outside its directory.

    Job ids become directory names (``jobs/<id>``, ``outputs/<id>``); the paths the job
    names are :data:`~repx.lab.models.LabPath` values, checked by the model.
    """
    where = f"{manifest}: jobs.{job_id}"
    if not _safe_name(job_id):
        raise LabError(one_line(f"{where}: job id is not a plain file name ('/', NUL or '..')"))
    for i, inp in enumerate(job.inputs):
        if not _safe_name(inp.job):
            raise LabError(one_line(f"{where}.inputs[{i}].job: '{inp.job}' is not a job id"))
    _check_outputs(where, job.outputs)


def _check_facts(manifest: str, job_id: str, facts: JobFacts) -> None:
    """The outputs check of :func:`_check_confined` (the id was checked when opening)."""
    _check_outputs(f"{manifest}: jobs.{job_id}", facts.outputs)


def _check_outputs(where: str, outputs: Mapping[str, str]) -> None:
    for name, declared in outputs.items():
        if declared in _CONFINED_OUTPUTS:
            continue  # checked for another job (the jobs of a stage declare the same)
        rel = declared.removeprefix("$out/")
        if rel == declared or not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise LabError(
                one_line(f"{where}.outputs.{name}: '{declared}' is not a path under $out/")
            )
        _CONFINED_OUTPUTS.add(declared)


#: Declared outputs found to be paths under ``$out/`` (a property of the string alone).
_CONFINED_OUTPUTS: set[str] = set()


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\0" not in name and name not in {".", ".."}


def read_model(root: Path, rel: str, model: type[_M]) -> _M:
    """Read ``root/rel`` and validate it as ``model``; failures name the file and field."""
    file = root / rel
    where = one_line(rel)  # a path read from another file of the lab
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise LabError(f"{where}: missing file (in lab {root})") from None
    except OSError as exc:
        raise LabError(f"{where}: cannot read: {exc.strerror}") from None
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise LabError(f"{where}: {one_line(describe_validation_error(exc))}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """Render a pydantic error as ``field.path: message`` (format errors first)."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if not errors:
        return "invalid"
    # An unsupported format explains every other error of the same file.
    errors.sort(key=lambda e: e["loc"][:1] != ("format",))
    first = errors[0]
    message = first["msg"]
    if first["type"] == "json_invalid":
        text = message.removeprefix("Invalid JSON: ")
        return f"invalid JSON: {text}"
    if first["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    text = f"{_loc(first['loc'])}: {message[:1].lower()}{message[1:]}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return text


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: validating ~10^5 new objects otherwise triggers it repeatedly
    (measured: a 10,000-job lab loads about twice as fast).

    The loaded lab then lives as long as the command: it is moved out of the collector's
    reach (``gc.freeze``), so the collections that later work triggers do not walk its
    10^5-10^6 objects again each time (validating a 10,000-job lab after loading it:
    0.58 s -> 0.26 s). Plain reference counting still frees it when it is dropped.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "(top level)"


def resolve_root(path: Path) -> Path:
    """Resolve a ``result`` link; accept the lab root or its ``lab/`` directory.

    A lab archive (``lab.tar``, ``lab.tar.zst``: ``repx export``) is unpacked once into the
    cache, and that copy is the lab.
    """
    if path.suffix in {".tar", ".zst"} and path.is_file():
        # imported only for archives: tarfile and the process layer cost ~20 ms per command
        from repx.lab import archive  # noqa: PLC0415

        if archive.is_archive(path):
            path = archive.unpacked(path)
    try:
        root = path.resolve(strict=True)
    except FileNotFoundError:
        if path.is_symlink():
            raise LabError(f"{path}: dangling symlink (was the lab garbage-collected?)") from None
        raise LabError(f"{path}: no such lab") from None
    except OSError as exc:
        raise LabError(f"{path}: cannot open: {exc.strerror}") from None
    if not root.is_dir():
        raise LabError(f"{path}: not a directory")
    if not (root / LAB_METADATA).is_file() and (root / "lab-metadata.json").is_file():
        root = root.parent
    if not (root / LAB_METADATA).is_file():
        raise LabError(f"{path}: not a repx lab ({LAB_METADATA} missing)")
    return root
