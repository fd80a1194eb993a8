"""Check that a loaded lab is complete and consistent (and cache the verdict)."""

from __future__ import annotations

import graphlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from repx import __version__
from repx.dirs import cache_dir, nix_store_dir
from repx.errors import LabError
from repx.lab import closure as closure_file
from repx.lab import integrity
from repx.lab.loader import LAB_METADATA, LoadedLab
from repx.lab.models import INTEGRITY_FORMAT, JOB_ID_PATTERN, LabHeader, RunManifest

logger = logging.getLogger(__name__)

#: Bump when the checks change, so cached verdicts of older validators are ignored.
VALIDATOR_VERSION: Final = 2
#: Problems shown in an error's details.
_MAX_SHOWN: Final = 50
_JOB_ID: Final = re.compile(JOB_ID_PATTERN)


@dataclass(frozen=True)
class ValidationResult:
    """The verdict on a lab: its problems, and what the integrity scan measured."""

    problems: tuple[str, ...]
    integrity_checked: bool
    file_count: int | None = None
    size_bytes: int | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def validate_lab(
    lab: LoadedLab,
    check_integrity: bool = True,
    *,
    use_cache: bool = True,
    expect_lab_id: str | None = None,
    just_built: bool = False,
) -> ValidationResult:
    """Validate ``lab``; raise :class:`LabError` listing the problems if there are any.

    The lab id is always compared with the content; with ``check_integrity``, every entry
    of the lab also with its integrity list. (Comparing a store path with Nix's record
    is left to ``repx verify``: it reads every byte again, 0.8 s for 10,000 jobs.)
    A successful verdict on a store path is cached (store paths never change) in
    ``~/.cache/repx/validated/``, so validating it again is instant. ``expect_lab_id``:
    the content must also hash to this id (the one ``repx build`` printed).

    ``just_built``: ``nix build`` has just made this store path — its builder wrote the
    integrity list from the very tree Nix then hashed and made read-only. Reading every
    byte back would only re-check the builder (the tests do that, ``repx verify`` does it
    on demand), so the entries are not read again: at 100,000 jobs that is seconds.
    """
    if expect_lab_id is not None and (wrong := lab_id_problems(lab.root, lab.meta, expect_lab_id)):
        raise problems_error(lab, tuple(wrong))
    cached = _read_cache(lab.root, check_integrity) if use_cache else None
    if cached is not None:
        return cached
    if just_built and check_integrity and _cache_file(lab.root) is not None:
        result = _just_built(lab)
    else:
        result = find_problems(lab, check_integrity=check_integrity)
    if not result.ok:
        raise problems_error(lab, result.problems)
    if use_cache:
        _write_cache(lab.root, result)
    return result


def _just_built(lab: LoadedLab) -> ValidationResult:
    """The verdict on a lab ``nix build`` just made: every check but reading the entries
    back; the counts as the integrity scan gives them (the listed files and the metadata)."""
    structural = find_problems(lab, check_integrity=False)
    listed = lab.meta.files_bytes
    if listed is None:  # a builder that did not record it
        sizes = integrity.scan_files(lab.root)
        listed = sum(size for rel, size in sizes.items() if rel != LAB_METADATA)
    metadata = os.stat(os.path.join(lab.root, LAB_METADATA)).st_size  # noqa: PTH116, PTH118
    return ValidationResult(
        structural.problems,
        integrity_checked=True,
        file_count=len(lab.integrity_list().files) + 1,
        size_bytes=listed + metadata,
    )


def problems_error(lab: LoadedLab, problems: tuple[str, ...]) -> LabError:
    """Build the error reporting ``problems`` (the first one is the message)."""
    more = len(problems) - 1
    message = problems[0] + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
    details = "\n".join(problems[:_MAX_SHOWN])
    if len(problems) > _MAX_SHOWN:
        details += f"\n… {len(problems) - _MAX_SHOWN} more"
    return LabError(f"invalid lab {lab.root}: {message}", details if more else "")


def find_problems(
    lab: LoadedLab, *, check_integrity: bool = True, check_nix: bool = False
) -> ValidationResult:
    """Run every check on ``lab`` and return the problems found (never raises).

    ``check_nix``: also compare a lab inside the Nix store with Nix's record of the path.
    """
    problems = [
        *_check_lab_files(lab),
        *_check_integrity_list(lab),
        *_check_runs(lab),
        *(p for name, run in lab.runs.items() for p in _check_jobs(lab, name, run)),
        *_check_job_graph(lab),
    ]
    if not check_integrity:
        return ValidationResult(tuple(problems), integrity_checked=False)
    report = integrity.check_integrity(lab.root, lab.integrity_list(), exclude=(LAB_METADATA,))
    problems += integrity_problems(report)
    if check_nix and not report.altered:
        problems += nix_record_problems(lab.root) or []
    return ValidationResult(
        tuple(problems),
        integrity_checked=True,
        file_count=report.file_count,
        size_bytes=report.size_bytes,
    )


def integrity_problems(report: integrity.IntegrityReport) -> list[str]:
    """One problem line per entry that differs from the integrity list."""
    where = f"{LAB_METADATA}: files"
    return [
        *(f"{where}: '{p}' is missing" for p in report.missing),
        *(f"{where}: '{p}' was altered ({report.reasons[p]})" for p in report.altered),
        *(f"{where}: '{p}' is not listed ({report.reasons[p]})" for p in report.extra),
    ]


def nix_record_problems(root: Path) -> list[str] | None:
    """Compare a lab in the Nix store with the NAR hash Nix recorded for it.

    None when there is nothing to compare with (not a store path, no nix, or a path
    Nix does not know).
    """
    if root.parent != nix_store_dir():
        return None
    from repx.lab.nix_record import check_nix_record  # noqa: PLC0415

    record = check_nix_record(root)
    if record is None or record.recorded is None:
        # no nix, or a path Nix does not know: nothing to compare with
        logger.debug("no Nix record of %s", root)
        return None
    if record.matches:
        return []
    return [
        f"{root}: content differs from Nix's record of the store path (NAR sha256 "
        f"{record.computed}, Nix recorded {record.recorded}); the store was modified, "
        "repair it with nix-store --repair-path"
    ]


def lab_id_problems(root: Path, meta: LabHeader, expect: str | None = None) -> list[str]:
    """Problems of the lab id: not the one the content commits to, or not ``expect``."""
    try:
        data = (root / LAB_METADATA).read_bytes()
    except OSError as exc:
        return [f"{LAB_METADATA}: cannot read: {exc.strerror}"]
    computed = integrity.content_lab_id(data)
    problems = []
    if computed is None:
        problems.append(
            f"{LAB_METADATA}: lab_id: the file does not start with the lab id member "
            "(rewritten by hand?); the lab id cannot be checked against the content"
        )
    elif computed != meta.lab_id:
        problems.append(
            f"{LAB_METADATA}: lab_id: '{meta.lab_id}', but the content hashes to "
            f"'{computed}' (the metadata or its integrity list was rewritten)"
        )
    if expect is not None and computed is not None and computed != expect:
        problems.append(
            f"{LAB_METADATA}: lab_id: the content hashes to '{computed}', not the expected "
            f"'{expect}' (a different lab, or this one was altered)"
        )
    return problems


# -- checks ---------------------------------------------------------------------------


def _check_integrity_list(lab: LoadedLab) -> Iterator[str]:
    meta = lab.integrity_list()
    if meta.integrity != INTEGRITY_FORMAT:
        yield (
            f"{LAB_METADATA}: integrity: '{meta.integrity or '(none)'}', this repx reads "
            f"'{INTEGRITY_FORMAT}' (a lab built by an older repx: rebuild it with repx build)"
        )
        return
    yield from lab_id_problems(lab.root, meta)
    closure = integrity.load_closure(lab.root, meta)
    for link, target in integrity.ExpectedTree(meta, closure).escaping_links():
        yield (
            f"{LAB_METADATA}: symlinks: '{link}' points outside the lab and its closure "
            f"('{target}')"
        )


def _check_lab_files(lab: LoadedLab) -> Iterator[str]:
    meta = lab.meta
    for field, rel, want_dir in (
        ("host_tools", meta.host_tools, True),
        ("store", meta.store, True),
        ("readme", meta.readme, False),
    ):
        if not _exists(lab.root, rel, directory=want_dir):
            kind = "directory" if want_dir else "file"
            yield f"{LAB_METADATA}: {field}: {kind} '{rel}' does not exist"
    for name, rel in meta.images.items():
        if not _exists(lab.root, f"{rel}/rootfs", directory=True):
            yield f"{LAB_METADATA}: images.{name}: directory '{rel}/rootfs' does not exist"
    if meta.container_mode == "per-run":
        for run_name in lab.runs:
            if run_name not in meta.images:
                yield f"{LAB_METADATA}: container_mode 'per-run': run '{run_name}' has no image"
    elif meta.container_mode != "none" and meta.container_mode not in meta.images:
        yield f"{LAB_METADATA}: container_mode '{meta.container_mode}' has no entry in images"
    if meta.closure is not None:
        try:
            closure_file.load(lab.root, meta.closure)
        except LabError as exc:
            yield exc.message
    if meta.job_count != len(lab.jobs):
        yield f"{LAB_METADATA}: job_count: {meta.job_count}, but the runs hold {len(lab.jobs)} jobs"


def _check_runs(lab: LoadedLab) -> Iterator[str]:
    import networkx as nx  # noqa: PLC0415 (slow import, only needed here)

    rev_file = lab.meta.metadata
    revision = lab.revision
    graph: nx.DiGraph[str] = nx.DiGraph()
    for name, entry in revision.runs.items():
        graph.add_node(name)
        manifest = lab.runs[name]
        where = f"{rev_file}: runs.{name}"
        if entry.hash != manifest.hash:
            yield f"{where}.hash: '{entry.hash}', but {entry.manifest} says '{manifest.hash}'"
        if entry.job_count != len(manifest.jobs):
            yield (
                f"{where}.job_count: {entry.job_count}, but {entry.manifest} holds "
                f"{len(manifest.jobs)} jobs"
            )
        if set(entry.stages) != set(manifest.stages):
            yield (
                f"{where}.stages: {sorted(entry.stages)}, but {entry.manifest} defines "
                f"{sorted(manifest.stages)}"
            )
        for dep in entry.depends_on:
            if dep not in revision.runs:
                yield f"{where}.depends_on: unknown run '{dep}'"
            else:
                graph.add_edge(dep, name)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = []
    if cycle:
        names = [edge[0] for edge in cycle] + [cycle[0][0]]
        yield f"{rev_file}: runs: dependency cycle {' -> '.join(names)}"
    if sorted(revision.run_order) != sorted(revision.runs):
        yield f"{rev_file}: run_order: {list(revision.run_order)} does not list every run once"
    elif not cycle:
        position = {name: i for i, name in enumerate(revision.run_order)}
        for dep, name in graph.edges:
            if position[dep] > position[name]:
                yield f"{rev_file}: run_order: '{name}' comes before its dependency '{dep}'"
    for group, members in revision.groups.items():
        for member in members:
            if member not in revision.runs:
                yield f"{rev_file}: groups.{group}: unknown run '{member}'"


def _check_jobs(lab: LoadedLab, run_name: str, run: RunManifest) -> Iterator[str]:
    manifest = lab.revision.runs[run_name].manifest
    depends_on = lab.revision.runs[run_name].depends_on
    root = lab.root
    closure = {p.rpartition("/")[2] for p in lab.meta.store_paths}
    for job_id, job in run.jobs.items():
        where = f"{manifest}: jobs.{job_id}"
        for name, value in job.params.items():
            for path in _store_paths_in(value):
                if path.partition("/")[0] not in closure:
                    yield (
                        f"{where}.params.{name}: '/nix/store/{path}' is not in the lab's "
                        "closure (store_paths): a host without Nix would not have it"
                    )
        match = _JOB_ID.match(job_id)
        if match is None:
            yield f"{where}: malformed job id (want <32 nix-base32 characters>-<stage>)"
        elif match.group("stage") != job.stage:
            yield f"{where}: job id names stage '{match.group('stage')}' but stage is '{job.stage}'"
        if job.stage not in run.stages:
            yield f"{where}.stage: unknown stage '{job.stage}'"
        for name, exe in job.executables.items():
            if not _exists(root, exe.path):
                yield f"{where}.executables.{name}.path: file '{exe.path}' does not exist"
        if not _exists(root, job.parameters_file):
            yield f"{where}.parameters_file: file '{job.parameters_file}' does not exist"
        for i, inp in enumerate(job.inputs):
            at = f"{where}.inputs[{i}]"
            upstream_run = lab.runs.get(inp.run)
            if upstream_run is None:
                yield f"{at}.run: unknown run '{inp.run}'"
            elif inp.run != run_name and inp.run not in depends_on:
                yield f"{at}.run: run '{inp.run}' is not a dependency of run '{run_name}'"
            upstream = lab.jobs.get(inp.job)
            if upstream is None:
                yield f"{at}.job: unknown job '{inp.job}'"
                continue
            if upstream_run is not None and inp.job not in upstream_run.jobs:
                yield f"{at}.job: job '{inp.job}' is not part of run '{inp.run}'"
            if inp.output not in upstream.outputs:
                yield f"{at}.output: job '{inp.job}' has no output '{inp.output}'"
        for i, run_input in enumerate(job.run_inputs):
            at = f"{where}.run_inputs[{i}]"
            if run_input.kind != "run_metadata":
                continue
            if run_input.run is None or run_input.run not in lab.runs:
                yield f"{at}.run: unknown run '{run_input.run}'"
            elif run_input.run not in depends_on:
                yield f"{at}.run: run '{run_input.run}' is not a dependency of run '{run_name}'"


def _store_paths_in(value: object) -> Iterator[str]:
    """Store paths (without ``/nix/store/``) a parameter value names, at any depth."""
    if isinstance(value, str):
        if value.startswith("/nix/store/"):
            yield value.removeprefix("/nix/store/")
    elif isinstance(value, list):
        for item in value:
            yield from _store_paths_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _store_paths_in(item)


def _check_job_graph(lab: LoadedLab) -> Iterator[str]:
    # graphlib, not networkx: ~20 times faster on 10,000 mostly unconnected jobs
    graph = {
        job_id: {inp.job for inp in job.inputs if inp.job in lab.jobs}
        for job_id, job in lab.jobs.items()
    }
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        # each job of the cycle is an input of the next one
        yield f"jobs: input cycle {' -> '.join(exc.args[1])}"


def _exists(root: Path, rel: str, *, directory: bool = False) -> bool:
    # os.path rather than pathlib: called for every job file (~20,000 times in big labs)
    path = os.path.join(root, rel)  # noqa: PTH118
    return os.path.isdir(path) if directory else os.path.isfile(path)  # noqa: PTH112, PTH113


# -- cache ----------------------------------------------------------------------------


def _cache_file(root: Path) -> Path | None:
    """Cache entry of a lab, or None when the lab is not an (immutable) store path."""
    if root.parent != nix_store_dir():
        return None
    return cache_dir() / "validated" / f"{root.name}.json"


def _read_cache(root: Path, check_integrity: bool) -> ValidationResult | None:
    file = _cache_file(root)
    if file is None:
        return None
    try:
        entry = json.loads(file.read_bytes())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(entry, dict)
        or entry.get("validator") != VALIDATOR_VERSION
        or entry.get("repx_version") != __version__
        or (check_integrity and not entry.get("integrity_checked"))
    ):
        return None
    logger.debug("validation of %s cached in %s", root, file)
    return ValidationResult(
        problems=(),
        integrity_checked=bool(entry.get("integrity_checked")),
        file_count=entry.get("file_count"),
        size_bytes=entry.get("size_bytes"),
        cached=True,
    )


def _write_cache(root: Path, result: ValidationResult) -> None:
    file = _cache_file(root)
    if file is None:
        return
    entry = {
        "validator": VALIDATOR_VERSION,
        "repx_version": __version__,
        "integrity_checked": result.integrity_checked,
        "file_count": result.file_count,
        "size_bytes": result.size_bytes,
    }
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.{os.getpid()}")
        tmp.write_text(json.dumps(entry))
        tmp.replace(file)
    except OSError as exc:  # a cache we cannot write only costs time
        logger.debug("cannot write %s: %s", file, exc)
