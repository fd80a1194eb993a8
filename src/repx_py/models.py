"""RepX's analysis API (``repx_py``) over repx labs and run descriptions.

Two sources of jobs:

- ``Experiment(lab)``: a built repx lab (a ``result`` link, a lab directory or a
  :class:`repx.Lab`), read through :class:`repx.Lab`; outputs come from its output store.
- ``Experiment.from_run_metadata(meta, store_base)``: the description a ``metadata__<run>``
  input names (docs/lab-format.md, "Inter-run inputs"), or a RepX run metadata file. This
  path reads JSON only (no pydantic, no repx CLI dependencies): it runs in the plain Python
  environment of a job. pandas is imported by :meth:`JobCollection.to_dataframe` and
  :meth:`JobView.load_csv` only.

Differences from RepX's package, all additions: keyword filters that are not job attributes
match effective parameters (``filter(seed=1)``; RepX's documented form, which its code does
not do), the operators ``__in``, ``__ne``, ``__lt``, ``__le``, ``__gt``, ``__ge``, and
indexing an empty result names the filter instead of a bare ``IndexError``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    import pandas as pd

    import repx

logger = logging.getLogger(__name__)

_OUT = "$out/"
#: Filter operators (``name__contains="x"``) and what they test.
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "contains": lambda actual, wanted: str(wanted) in str(actual),
    "startswith": lambda actual, wanted: str(actual).startswith(str(wanted)),
    "endswith": lambda actual, wanted: str(actual).endswith(str(wanted)),
    "in": lambda actual, wanted: actual in wanted,
    "ne": lambda actual, wanted: actual != wanted,
    "lt": lambda actual, wanted: actual < wanted,
    "le": lambda actual, wanted: actual <= wanted,
    "gt": lambda actual, wanted: actual > wanted,
    "ge": lambda actual, wanted: actual >= wanted,
}
#: Attributes a keyword filter compares before it looks at the parameters.
_ATTRIBUTES = frozenset(
    {"id", "name", "stage", "pname", "version", "stage_type", "run", "status", "params"}
)


@dataclass
class _Record:
    """What is known of one job, whatever the source."""

    id: str
    name: str
    stage: str
    pname: str
    version: str
    stage_type: str
    params: dict[str, Any]
    outputs: dict[str, str]
    #: RepX's input mappings: ``{"job_id", "source_output", "target_input"}``
    inputs: list[dict[str, Any]]
    run: str
    effective_params: dict[str, Any] | None = None
    status: str | None = None
    #: the job's entry as its source has it (``JobView`` attributes fall back to it)
    data: dict[str, Any] = field(default_factory=dict)


class ArtifactResolver(ABC):
    """Where the files of a job's output directory are."""

    @abstractmethod
    def resolve_path(self, job: JobView, relative_path: str) -> Path:
        """The path of ``relative_path`` inside ``job``'s output directory."""


class LocalCacheResolver(ArtifactResolver):
    """Outputs under ``<cache_dir>/<job id>/out/`` (a store's ``outputs`` directory)."""

    def __init__(self, cache_dir: str | os.PathLike[str] = ".repx-cache") -> None:
        self.cache_dir = Path(cache_dir).resolve()

    def resolve_path(self, job: JobView, relative_path: str) -> Path:
        """``<cache_dir>/<job id>/out/<relative_path>``."""
        return self.cache_dir / job.id / "out" / relative_path


class ManifestResolver(ArtifactResolver):
    """Outputs in directories given per job id."""

    def __init__(self, job_output_map: Mapping[str, str | os.PathLike[str]]) -> None:
        self.mapping = {k: Path(v) for k, v in job_output_map.items()}

    def resolve_path(self, job: JobView, relative_path: str) -> Path:
        """``<the job's directory>/<relative_path>``."""
        try:
            return self.mapping[job.id] / relative_path
        except KeyError:
            raise FileNotFoundError(f"no output directory is recorded for job '{job.id}'") from None


class _LabResolver(ArtifactResolver):
    """Outputs where the lab's output store has them (``repx.Lab``)."""

    def __init__(self, lab: repx.Lab) -> None:
        self.lab = lab

    def resolve_path(self, job: JobView, relative_path: str) -> Path:
        out = self.lab.job(job.id).output_dir
        if out is None:
            raise FileNotFoundError("the lab was opened without an output store")
        return out / relative_path


class JobView:
    """One job: its metadata, effective parameters and output files."""

    def __init__(self, job_id: str, experiment: Experiment) -> None:
        self._id = job_id
        self._exp = experiment
        self._record = experiment._record(job_id)

    @property
    def id(self) -> str:
        """The job id (also its directory name in the output store)."""
        return self._id

    @property
    def name(self) -> str:
        """``<pname>-<version>``, as RepX names jobs."""
        return self._record.name

    @property
    def stage(self) -> str:
        """The stage the job belongs to."""
        return self._record.stage

    @property
    def pname(self) -> str:
        """The stage's pname."""
        return self._record.pname

    @property
    def version(self) -> str:
        """The stage's version."""
        return self._record.version

    @property
    def run(self) -> str:
        """The run the job belongs to."""
        return self._record.run

    @property
    def status(self) -> str | None:
        """The job's state (lab: as ``repx status`` shows it; description: when it was
        written); None when the source does not say."""
        if self._exp._lab is not None:
            return self._exp._lab.job(self._id).status
        return self._record.status

    @property
    def stage_type(self) -> str:
        """``simple`` or ``scatter-gather``."""
        return self._record.stage_type

    @property
    def executable_path(self) -> str | None:
        """The job's ``main`` executable, relative to the lab (None if not known)."""
        main = self._record.data.get("executables", {}).get("main", {})
        path = main.get("path")
        return path if isinstance(path, str) else None

    @property
    def input_mappings(self) -> list[dict[str, Any]]:
        """The upstream outputs the job reads: ``{"job_id", "source_output", "target_input"}``."""
        return [dict(m) for m in self._record.inputs]

    @property
    def outputs(self) -> dict[str, str]:
        """Declared outputs: name -> ``$out/…``."""
        return dict(self._record.outputs)

    @property
    def params(self) -> dict[str, Any]:
        """The job's own parameters."""
        return dict(self._record.params)

    @property
    def effective_params(self) -> dict[str, Any]:
        """Own parameters plus those inherited from upstream jobs."""
        return dict(self._exp.effective_params.get(self._id, {}))

    @property
    def dependencies(self) -> JobCollection:
        """The jobs this job reads from (those the source describes)."""
        ids = dict.fromkeys(
            m["job_id"] for m in self._record.inputs if m.get("job_id") in self._exp._records
        )
        return JobCollection(self._exp, ids)

    def get_output_path(self, output_key: str) -> Path:
        """The path of a declared output (``KeyError`` if the job has none of that name)."""
        template = self._record.outputs.get(output_key)
        if not template:
            declared = ", ".join(self._record.outputs) or "none"
            raise KeyError(
                f"job {self._id} ({self.name}) has no output '{output_key}' (declared: {declared})"
            )
        relative = template[len(_OUT) :] if template.startswith(_OUT) else template
        return self._exp.resolver.resolve_path(self, relative)

    def load_csv(self, output_key_or_filename: str, **kwargs: Any) -> pd.DataFrame:
        """Read a declared output (or a file of the output directory) with pandas.read_csv."""
        import pandas as pd  # noqa: PLC0415 (only analysis code needs pandas)

        frame: pd.DataFrame = pd.read_csv(self._path_of(output_key_or_filename), **kwargs)
        return frame

    def load_json(self, output_key_or_filename: str) -> Any:
        """Read a declared output (or a file of the output directory) as JSON."""
        return json.loads(self._path_of(output_key_or_filename).read_bytes())

    def _path_of(self, key_or_file: str) -> Path:
        if key_or_file in self._record.outputs:
            return self.get_output_path(key_or_file)
        return self._exp.resolver.resolve_path(self, key_or_file)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        data = self._record.data
        if key in data:
            return data[key]
        raise AttributeError(f"'JobView' object has no attribute or data key '{key}'")

    def __repr__(self) -> str:
        return f"<JobView id={self._id} name={self.name}>"


class JobCollection(Sequence[JobView]):
    """A list of jobs that can be filtered and turned into a DataFrame."""

    def __init__(
        self, experiment: Experiment, job_ids: Iterable[str], *, description: str = ""
    ) -> None:
        self._exp = experiment
        self._job_ids = list(job_ids)
        self._description = description

    def filter(
        self, predicate: Callable[[JobView], bool] | None = None, **kwargs: Any
    ) -> JobCollection:
        """The jobs for which ``predicate`` holds and every keyword matches.

        ``name="x"`` compares an attribute (``id``, ``name``, ``stage``, ``pname``,
        ``version``, ``run``, ``status``, ``stage_type``); any other keyword compares an
        effective parameter (``seed=1``). ``key__op=value`` applies an operator:
        ``contains``, ``startswith``, ``endswith`` (on the text of the value), ``in``,
        ``ne``, ``lt``, ``le``, ``gt``, ``ge``.
        """
        tests = [_keyword_test(key, wanted) for key, wanted in kwargs.items()]

        def match(job: JobView) -> bool:
            if predicate is not None and not predicate(job):
                return False
            return all(test(job) for test in tests)

        ids = [j for j in self._job_ids if match(self._exp.get_job(j))]
        shown = [*(["<predicate>"] if predicate is not None else [])]
        shown += [f"{k}={v!r}" for k, v in kwargs.items()]
        described = f"{self._description}.filter({', '.join(shown)})"
        return JobCollection(self._exp, ids, description=described)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per job: ``job_id`` (the index when unique), ``name``, effective parameters."""
        import pandas as pd  # noqa: PLC0415

        rows = []
        for job_id in self._job_ids:
            job = self._exp.get_job(job_id)
            rows.append({"job_id": job_id, "name": job.name, **job.effective_params})
        if not rows:
            return pd.DataFrame()
        frame = pd.json_normalize(rows)
        if frame["job_id"].is_unique:
            frame = frame.set_index("job_id")
        return frame

    @property
    def ids(self) -> list[str]:
        """The job ids, in order."""
        return list(self._job_ids)

    def __iter__(self) -> Iterator[JobView]:
        for job_id in self._job_ids:
            yield self._exp.get_job(job_id)

    def __len__(self) -> int:
        return len(self._job_ids)

    @overload
    def __getitem__(self, index: int) -> JobView: ...

    @overload
    def __getitem__(self, index: slice) -> JobCollection: ...

    def __getitem__(self, index: int | slice) -> JobView | JobCollection:
        if isinstance(index, slice):
            return JobCollection(self._exp, self._job_ids[index], description=self._description)
        try:
            job_id = self._job_ids[index]
        except IndexError:
            what = f"jobs(){self._description}"
            names = sorted({self._exp.get_job(j).name for j in self._exp._records})
            known = ", ".join(names[:10]) + (", …" if len(names) > 10 else "")
            raise IndexError(
                f"{what} has {len(self._job_ids)} job(s), no index {index}"
                f" (job names: {known or 'none'})"
            ) from None
        return self._exp.get_job(job_id)

    def __repr__(self) -> str:
        return f"<JobCollection size={len(self)}>"


def _keyword_test(key: str, wanted: Any) -> Callable[[JobView], bool]:
    """The test of one keyword filter (see :meth:`JobCollection.filter`)."""
    name, op = key, None
    if "__" in key:
        head, tail = key.split("__", 1)
        if tail in _OPERATORS:
            name, op = head, tail
        elif tail and head:
            logger.warning("unknown filter operator: __%s (comparing '%s' for equality)", tail, key)

    def test(job: JobView) -> bool:
        if name in _ATTRIBUTES:
            actual = getattr(job, name)
        else:
            effective = job.effective_params
            if name in effective:
                actual = effective[name]
            elif name in job._record.data:  # a RepX metadata key (its JobView did this)
                actual = job._record.data[name]
            else:
                return False
        if op is None:
            return bool(actual == wanted)
        try:
            return _OPERATORS[op](actual, wanted)
        except TypeError:
            return False

    return test


class Experiment:
    """The jobs of a lab (or of a described run) and their outputs."""

    def __init__(
        self,
        lab_path: str | os.PathLike[str] | repx.Lab | None = None,
        resolver: ArtifactResolver | None = None,
        _preloaded_metadata: Mapping[str, Any] | None = None,
        *,
        base: str | os.PathLike[str] | None = None,
        target: str | None = None,
    ) -> None:
        """Open a lab: a ``result`` link, a lab directory, or a :class:`repx.Lab`.

        Outputs are read from the lab's output store (``base``; default: the target's base
        in config.toml, else ``./repx-runs``, as ``repx run`` writes them) unless a
        ``resolver`` says otherwise.
        """
        self._lab: repx.Lab | None = None
        self._records: dict[str, _Record] = {}
        self._runs: dict[str, dict[str, Any]] = {}
        self._views: dict[str, JobView] = {}
        self._effective: dict[str, dict[str, Any]] | None = None
        if _preloaded_metadata is not None:
            self.path = Path()
            self._load_metadata(_preloaded_metadata)
            self.resolver = resolver or LocalCacheResolver()
        elif lab_path is not None:
            self._lab = _open_lab(lab_path, base, target)
            self.path = self._lab.path
            self._load_lab(self._lab)
            self.resolver = resolver or _LabResolver(self._lab)
        else:
            raise ValueError("Experiment needs a lab (a path or a repx.Lab)")

    @classmethod
    def from_run_metadata(
        cls, metadata_path: str | os.PathLike[str], store_base: str | os.PathLike[str]
    ) -> Experiment:
        """The jobs of the run a ``metadata__<run>`` input describes; outputs under
        ``store_base`` (the ``store__base`` input: a store's base, or its ``outputs``)."""
        path = Path(metadata_path)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise FileNotFoundError(f"run metadata not found: {path}") from None
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("type") != "run":
            kind = data.get("type") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{path}: expected run metadata (type 'run'), got '{kind}'")
        store = Path(store_base)
        outputs = store / "outputs" if (store / "outputs").is_dir() else store
        return cls(resolver=LocalCacheResolver(outputs), _preloaded_metadata=data)

    # -- queries --------------------------------------------------------------------------

    @property
    def lab(self) -> repx.Lab | None:
        """The :class:`repx.Lab` (None for a described run)."""
        return self._lab

    def jobs(self) -> JobCollection:
        """Every job."""
        return JobCollection(self, self._records)

    def get_job(self, job_id: str) -> JobView:
        """The job with this id (``KeyError`` if there is none)."""
        view = self._views.get(job_id)
        if view is None:
            if job_id not in self._records:
                raise KeyError(f"job '{job_id}' not found")
            view = self._views[job_id] = JobView(job_id, self)
        return view

    def runs(self) -> dict[str, dict[str, Any]]:
        """Run name -> ``{"type": "run", "name", "jobs": {id: …}}``."""
        return self._runs

    def get_run_for_job(self, job_id: str) -> tuple[str, dict[str, Any]]:
        """``(run name, run data)`` of the run that holds ``job_id``."""
        record = self._records.get(job_id)
        if record is None:
            raise KeyError(f"no run holds job '{job_id}'")
        return record.run, self._runs[record.run]

    @property
    def effective_params(self) -> dict[str, dict[str, Any]]:
        """Job id -> effective parameters."""
        if self._effective is None:
            self._effective = _effective_params(self._records)
        return self._effective

    def _record(self, job_id: str) -> _Record:
        return self._records[job_id]

    # -- loading --------------------------------------------------------------------------

    def _load_lab(self, lab: repx.Lab) -> None:
        for run_name, run in lab.runs.items():
            jobs: dict[str, Any] = {}
            for job in run.jobs():
                if job.id in self._records:
                    continue
                name = f"{job.pname}-{job.version}" if job.version else job.pname
                outputs = job.outputs
                inputs = [
                    {"job_id": i.job.id, "source_output": i.output, "target_input": i.name}
                    for i in job.inputs
                ]
                data = {
                    "name": name,
                    "stage_type": job.stage_type,
                    "params": job.params,
                    "executables": {"main": {"outputs": outputs, "inputs": inputs}},
                }
                jobs[job.id] = data
                self._records[job.id] = _Record(
                    id=job.id,
                    name=name,
                    stage=job.stage,
                    pname=job.pname,
                    version=job.version,
                    stage_type=job.stage_type,
                    params=job.params,
                    outputs=outputs,
                    inputs=inputs,
                    run=run_name,
                    effective_params=job.effective_params,
                    data=data,
                )
            self._runs[run_name] = {"type": "run", "name": run_name, "jobs": jobs}

    def _load_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Our run descriptions, RepX's run metadata, or RepX's whole-lab shape."""
        if "runs" in metadata and "jobs" in metadata and "type" not in metadata:
            runs = metadata["runs"]  # RepX's preloaded {root, runs, jobs}
        else:
            runs = {str(metadata.get("name", "unknown_run")): metadata}
        for run_name, run in runs.items():
            self._runs[run_name] = dict(run)
            for job_id, raw in dict(run.get("jobs", {})).items():
                self._records.setdefault(job_id, _from_metadata(job_id, raw, run_name))


def _open_lab(
    lab: str | os.PathLike[str] | repx.Lab,
    base: str | os.PathLike[str] | None,
    target: str | None,
) -> repx.Lab:
    from repx.api import Lab  # noqa: PLC0415 (the described-run path needs no repx CLI deps)

    if isinstance(lab, Lab):
        if base is not None or target is not None:
            warnings.warn("base/target are ignored for an opened repx.Lab", stacklevel=3)
        return lab
    return Lab.open(lab, base=base, target=target)


def _from_metadata(job_id: str, raw: Mapping[str, Any], run: str) -> _Record:
    data = dict(raw)
    executables = data.get("executables") or {}
    main = executables.get("gather" if data.get("stage_type") == "scatter-gather" else "main")
    main = main or executables.get("main") or {}
    name = str(data.get("name") or job_id)
    pname = str(data.get("pname") or name)
    effective = data.get("effective_params")
    return _Record(
        id=job_id,
        name=name,
        stage=str(data.get("stage") or job_id.split("-", 1)[-1]),
        pname=pname,
        version=str(data.get("version") or ""),
        stage_type=str(data.get("stage_type") or "simple"),
        params=dict(data.get("params") or {}),
        outputs={str(k): str(v) for k, v in dict(main.get("outputs") or {}).items()},
        inputs=[dict(m) for m in main.get("inputs") or [] if isinstance(m, Mapping)],
        run=run,
        effective_params=dict(effective) if isinstance(effective, Mapping) else None,
        status=data.get("status"),
        data=data,
    )


def _effective_params(records: Mapping[str, _Record]) -> dict[str, dict[str, Any]]:
    """Job id -> effective parameters: given ones, else computed as RepX does (upstream
    jobs' effective parameters, then the job's own on top)."""
    memo: dict[str, dict[str, Any]] = {}
    for job_id in records:
        if job_id in memo:
            continue
        # iterative post-order: deep pipelines must not hit the recursion limit
        stack: list[tuple[str, bool]] = [(job_id, False)]
        visiting: set[str] = set()
        while stack:
            current, expanded = stack.pop()
            if current in memo:
                continue
            record = records[current]
            if record.effective_params is not None:
                memo[current] = dict(record.effective_params)
                continue
            upstream = [
                m["job_id"]
                for m in record.inputs
                if m.get("job_id") in records and m.get("job_id") != current
            ]
            if not expanded:
                if current in visiting:
                    raise RecursionError(f"circular dependency at job {current}")
                visiting.add(current)
                stack.append((current, True))
                stack.extend((u, False) for u in upstream if u not in memo)
                continue
            merged: dict[str, Any] = {}
            for up in upstream:
                merged.update(memo.get(up, {}))
            merged.update(record.params)
            memo[current] = merged
            visiting.discard(current)
    return memo
