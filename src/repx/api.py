"""The Python API: open a built lab, query its jobs, load their results (docs/python-api.md).

    import repx

    lab = repx.Lab.open("result")
    for job in lab.jobs(stage="simulate", seed=1):
        print(job.short_id, job.params, job.status)
    frame = lab.jobs_frame()                 # pandas: id, run, stage, <parameters…>, status
    fits = lab.collect("fit.json", stage="fit")  # each job's parameters + its output's values
    summary = lab.jobs(stage="aggregate")[0].load_csv("summary.csv")

Errors are :class:`repx.errors.RepxError` subclasses: :class:`~repx.errors.LabError` for
a lab that cannot be read, :class:`~repx.errors.UsageError` for unknown names and ids.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repx.errors import UsageError, one_line
from repx.inspect.params import param_names, trace_params
from repx.inspect.query import JobQuery, select_jobs
from repx.inspect.resolve import resolve_job, resolve_state
from repx.inspect.status import JobState, find_base
from repx.inspect.view import LabView

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

    from repx.inspect.params import TracedValue
    from repx.lab.models import RunDependencyKind, RunManifest

__all__ = ["Input", "Job", "Lab", "Run"]

#: Frame columns that a parameter of the same name would hide (it is renamed ``param.X``).
_FRAME_COLUMNS = ("id", "run", "stage", "status")


class Lab:
    """A built lab (read-only) and the output store its jobs run into."""

    def __init__(self, view: LabView) -> None:
        self._view = view
        self._jobs: dict[str, Job] = {}
        self._runs: dict[str, Run] | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] = "result",
        *,
        base: str | os.PathLike[str] | None = None,
        target: str | None = None,
    ) -> Lab:
        """Open the lab at ``path`` (a ``result`` link or a lab directory).

        Job states and outputs are read from ``base`` (default: the target's base of
        config.toml, else ``./repx-runs``), as ``repx run`` writes them.
        """
        where = find_base(Path(base) if base is not None else None, target)
        return cls(LabView.open(Path(path), base=where))

    # -- the lab ----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The lab's directory (symlinks resolved)."""
        return self._view.lab.root

    @property
    def lab_id(self) -> str:
        """The hash part of the lab's store path."""
        return self._view.lab.meta.lab_id

    @property
    def base(self) -> Path | None:
        """The output store directory."""
        return self._view.base

    @property
    def runs(self) -> dict[str, Run]:
        """The runs, by name, in run order."""
        if self._runs is None:
            self._runs = {name: Run(self, name) for name in self._view.run_names}
        return self._runs

    @property
    def groups(self) -> dict[str, list[str]]:
        """Groups of runs, by name."""
        return {g: list(runs) for g, runs in self._view.lab.revision.groups.items()}

    def job(self, job_id: str) -> Job:
        """The job with this id, or a unique prefix of one (or ``<short id>-<stage>``)."""
        return self._job(resolve_job(self._view, job_id))

    def jobs(
        self,
        run: str | None = None,
        stage: str | None = None,
        status: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        **param_values: Any,
    ) -> list[Job]:
        """Jobs, filtered by run, stage, state and parameter values, in display order.

        ``lab.jobs(stage="simulate", seed=1)``: parameter filters match a job's effective
        parameters (its own, and single values inherited from upstream jobs). A tuple, set
        or frozenset accepts any of its values. ``params={...}`` passes parameters whose
        names clash with the keyword arguments (``run``, ``stage``, ``status``).
        """
        query = JobQuery(
            run=run,
            stage=stage,
            where=_where({**(params or {}), **param_values}),
            status=resolve_state(status) if status is not None else None,
        )
        return [self._job(job) for _, job in select_jobs(self._view, query)]

    def __iter__(self) -> Iterator[Job]:
        """Every job once, in display order."""
        return iter(self.jobs())

    def __len__(self) -> int:
        return len(self._view.lab.jobs)

    def jobs_frame(
        self,
        run: str | None = None,
        stage: str | None = None,
        status: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        **param_values: Any,
    ) -> pd.DataFrame:
        """The jobs as a pandas DataFrame: id, run, stage, one column per parameter, status.

        Parameter columns hold effective values (see :meth:`jobs`); a job without a single
        value for a parameter has ``None`` there. Takes the filters of :meth:`jobs`.
        """
        import pandas as pd  # noqa: PLC0415 (pandas is optional and slow to import)

        jobs = self.jobs(run, stage, status, params=params, **param_values)
        ids = [job.id for job in jobs]
        runs = dict.fromkeys(job.run for job in jobs)  # only runs with a job in the frame
        names = param_names(self._view.lab, ids, runs)
        names += [n for job in jobs for n in job.effective_params if n not in names]
        names = list(dict.fromkeys(names))
        column = {n: f"param.{n}" if n in _FRAME_COLUMNS else n for n in names}
        records = []
        for job in jobs:
            effective = job.effective_params
            record: dict[str, Any] = {"id": job.id, "run": job.run, "stage": job.stage}
            record.update({column[n]: effective.get(n) for n in names})
            record["status"] = job.status
            records.append(record)
        columns = ["id", "run", "stage", *column.values(), "status"]
        return pd.DataFrame.from_records(records, columns=columns)

    def collect(
        self,
        output: str,
        stage: str | None = None,
        run: str | None = None,
        *,
        missing: str = "skip",
        params: Mapping[str, Any] | None = None,
        **param_values: Any,
    ) -> pd.DataFrame:
        """One DataFrame of an output of many jobs, beside each job's parameters.

        ``lab.collect("fit.json", stage="fit")``: for every job (filters as :meth:`jobs`)
        that declares ``output`` (or has that file in its output directory), the columns
        ``id``, ``run``, ``stage``, its effective parameters, then the values read from the
        file: a JSON object gives one row (nested objects flattened as ``a.b``), a JSON list
        of objects one row per element, any other JSON value a column ``value``; a CSV
        (``.csv``, ``.tsv``) one row per line. A value column whose name is taken by a job
        column is called ``out.<name>``. Jobs whose file is not there yet (not succeeded)
        are left out, or raise with ``missing="raise"``.
        """
        import pandas as pd  # noqa: PLC0415 (pandas is optional and slow to import)

        if missing not in ("skip", "raise"):
            raise UsageError(f"missing must be 'skip' or 'raise', not '{missing}'")
        reader = _reader(output)
        candidates = self.jobs(run, stage, params=params, **param_values)
        jobs = [j for j in candidates if output in j.outputs or _has_file(j, output)]
        if not jobs:
            raise UsageError(one_line(_no_output(output, stage, candidates)))
        names = list(dict.fromkeys(n for job in jobs for n in job.effective_params))
        taken = {"id", "run", "stage", *names}
        frames = []
        for job in jobs:
            path = job.output_path(output) if job.output_dir is not None else None
            if path is None or not path.is_file():
                if missing == "raise":
                    job._existing(output)  # the error naming the job and its state
                continue
            values = reader(path)
            values.columns = [f"out.{c}" if c in taken else str(c) for c in values.columns]
            effective = job.effective_params
            front: dict[str, Any] = {"id": job.id, "run": job.run, "stage": job.stage}
            front.update({n: effective.get(n) for n in names})
            for position, (column, value) in enumerate(front.items()):
                values.insert(position, column, [value] * len(values))
            frames.append(values)
        if not frames:
            return pd.DataFrame(columns=["id", "run", "stage", *names])
        return pd.concat(frames, ignore_index=True)

    def graph(self, level: str = "jobs") -> nx.DiGraph[str]:
        """The lab as a networkx DiGraph: ``jobs`` (default), ``stages`` or ``runs``.

        Edges go from producer to consumer; see :mod:`repx.inspect.graph` for attributes.
        """
        from repx.inspect.graph import Level, build_graph  # noqa: PLC0415 (networkx)

        try:
            chosen = Level(level)
        except ValueError:
            raise UsageError(f"unknown level '{level}' (levels: runs, stages, jobs)") from None
        return build_graph(self._view, chosen)

    def refresh(self) -> None:
        """Read job states from the output store again (after a ``repx run``)."""
        self._view.__dict__.pop("status", None)

    def _job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            job = self._jobs[job_id] = Job(self, job_id)
        return job

    def __repr__(self) -> str:
        return f"<repx.Lab {self.lab_id}: {len(self.runs)} runs, {len(self)} jobs>"


class Run:
    """One run of a lab."""

    def __init__(self, lab: Lab, name: str) -> None:
        self._lab = lab
        self.name = name

    @property
    def _manifest(self) -> RunManifest:
        return self._lab._view.lab.runs[self.name]

    @property
    def parameters(self) -> dict[str, list[Any]]:
        """The run's parameters and their values."""
        return {name: list(values) for name, values in self._manifest.parameters.items()}

    @property
    def stages(self) -> list[str]:
        """The stages, in topological order."""
        return self._lab._view.stages(self.name)

    @property
    def depends_on(self) -> dict[str, RunDependencyKind]:
        """Runs this run depends on, with the kind of dependency."""
        return dict(self._lab._view.lab.revision.runs[self.name].depends_on)

    def jobs(
        self, stage: str | None = None, status: str | None = None, **param_values: Any
    ) -> list[Job]:
        """The run's jobs (see :meth:`Lab.jobs`)."""
        return self._lab.jobs(self.name, stage, status, **param_values)

    def __len__(self) -> int:
        return len(self._manifest.jobs)

    def __repr__(self) -> str:
        return f"<repx.Run {self.name}: {len(self)} jobs>"


@dataclass(frozen=True)
class Input:
    """An upstream output a job reads (a gathered input has one per upstream job)."""

    name: str
    job: Job
    output: str
    run: str
    gather: bool

    @property
    def path(self) -> Path:
        """Where the upstream output is in the output store."""
        return self.job.output_path(self.output)


class Job:
    """One job of a lab."""

    def __init__(self, lab: Lab, job_id: str) -> None:
        self._lab = lab
        self.id = job_id

    @property
    def _view(self) -> LabView:
        return self._lab._view

    @property
    def short_id(self) -> str:
        """The shortest unique prefix of the id shown by ``repx list jobs``."""
        return self._view.short_id(self.id)

    @property
    def stage(self) -> str:
        """The job's stage."""
        return self._view.lab.jobs[self.id].stage

    @property
    def pname(self) -> str:
        """The stage's ``pname`` (the stage name when the lab does not record one)."""
        stage = self._view.lab.runs[self.run].stages.get(self.stage)
        return stage.pname if stage is not None else self.stage

    @property
    def version(self) -> str:
        """The stage's ``version`` (empty when the lab does not record one)."""
        stage = self._view.lab.runs[self.run].stages.get(self.stage)
        return stage.version if stage is not None else ""

    @property
    def stage_type(self) -> str:
        """``simple`` (or the stage type the lab records)."""
        return self._view.lab.jobs[self.id].stage_type

    @property
    def run(self) -> str:
        """The (first) run the job belongs to."""
        return self._view.run_of(self.id)

    @property
    def runs(self) -> list[str]:
        """Every run that lists the job."""
        return self._view.runs_of(self.id)

    @property
    def params(self) -> dict[str, Any]:
        """The job's own parameters (its parameters.json)."""
        return dict(self._view.lab.jobs[self.id].params)

    @property
    def effective_params(self) -> dict[str, Any]:
        """Own parameters plus those with a single value among the upstream jobs."""
        return dict(self._view.params.effective(self.id).values)

    def trace_params(self) -> list[TracedValue]:
        """Every parameter value of the job and its upstream jobs, with their sources."""
        return trace_params(self._view.lab, self._view.params, self.id)

    @property
    def inputs(self) -> list[Input]:
        """The upstream outputs the job reads, one entry per upstream job."""
        lab = self._lab
        return [
            Input(inp.name, lab._job(inp.job), inp.output, inp.run, inp.gather)
            for inp in self._view.lab.jobs[self.id].inputs
            if inp.job in self._view.lab.jobs
        ]

    @property
    def upstream(self) -> list[Job]:
        """The jobs whose outputs this job reads (each once)."""
        ids = dict.fromkeys(i.job for i in self._view.lab.jobs[self.id].inputs)
        return [self._lab._job(j) for j in ids if j in self._view.lab.jobs]

    @property
    def downstream(self) -> list[Job]:
        """The jobs that read this job's outputs (each once)."""
        ids = dict.fromkeys(c.job for c in self._view.consumers_of(self.id))
        return [self._lab._job(j) for j in ids]

    @property
    def outputs(self) -> dict[str, str]:
        """Declared outputs: name -> ``$out/…`` path."""
        return dict(self._view.lab.jobs[self.id].outputs)

    @property
    def status(self) -> str:
        """The job's state (as ``repx status`` shows it): succeeded, failed, running,
        queued, pending, waiting, blocked or cancelled."""
        return self._view.status.state(self.id).value

    @property
    def reason(self) -> str | None:
        """Why the job is in its state (e.g. ``missing output report.md``), if known."""
        return self._view.status.reason(self.id)

    @property
    def succeeded(self) -> bool:
        """True when the job's outputs are in the output store, intact."""
        return self._view.status.state(self.id) is JobState.SUCCEEDED

    @property
    def output_dir(self) -> Path | None:
        """``<base>/outputs/<job>/out`` (it exists once the job succeeded)."""
        return self._view.output_dir(self.id)

    def output_path(self, name: str) -> Path:
        """Path of a declared output (e.g. ``"data.csv"``) in the output store.

        Any other file of the job's output directory is accepted when it exists.
        """
        outputs = self._view.lab.jobs[self.id].outputs
        out_dir = self.output_dir
        if out_dir is None:
            raise UsageError("this lab was opened without an output store")
        if name in outputs:
            path = self._view.output_path(self.id, name)
            assert path is not None  # out_dir is set
            return path
        candidate = out_dir / name
        if ".." not in Path(name).parts and candidate.exists():
            return candidate
        declared = ", ".join(outputs) or "none"
        raise UsageError(
            one_line(
                f"job {self.short_id} ({self.stage}) has no output '{name}' (declared: {declared})"
            )
        )

    def load_csv(self, name: str, **read_csv_options: Any) -> pd.DataFrame:
        """Read an output with :func:`pandas.read_csv` (options are passed on)."""
        import pandas as pd  # noqa: PLC0415

        frame: pd.DataFrame = pd.read_csv(self._existing(name), **read_csv_options)
        return frame

    def load_json(self, name: str) -> Any:
        """Read an output as JSON."""
        return json.loads(self._existing(name).read_bytes())

    def _existing(self, name: str) -> Path:
        path = self.output_path(name)
        if not path.exists():
            raise UsageError(
                f"job {self.short_id} ({self.stage}) has no '{name}' yet (status: {self.status};"
                f" looked in {path.parent}); run it with `repx run`"
            )
        return path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id and other._lab is self._lab

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<repx.Job {self.short_id} {self.run}/{self.stage} {self.status}>"


def _reader(output: str) -> Callable[[Path], pd.DataFrame]:
    """How :meth:`Lab.collect` reads ``output``: by its suffix."""
    suffix = Path(output).suffix.lower()
    if suffix == ".json":
        return _read_json_values
    if suffix in (".csv", ".tsv"):
        return lambda path: _read_csv_values(path, "\t" if suffix == ".tsv" else ",")
    raise UsageError(
        f"collect reads .json, .csv or .tsv outputs, not '{output}'"
        " (for other files: job.output_path(name))"
    )


def _read_json_values(path: Path) -> pd.DataFrame:
    import pandas as pd  # noqa: PLC0415

    try:
        data = json.loads(path.read_bytes())
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        return pd.json_normalize(data)
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return pd.json_normalize(data) if data else pd.DataFrame()
    return pd.DataFrame({"value": [data]})


def _read_csv_values(path: Path, sep: str) -> pd.DataFrame:
    import pandas as pd  # noqa: PLC0415

    frame: pd.DataFrame = pd.read_csv(path, sep=sep)
    return frame


def _has_file(job: Job, output: str) -> bool:
    out = job.output_dir
    return out is not None and ".." not in Path(output).parts and (out / output).is_file()


def _no_output(output: str, stage: str | None, candidates: Sequence[Job]) -> str:
    where = f"stage '{stage}'" if stage is not None else "the selected jobs"
    if not candidates:
        return f"no job matches (stage {stage!r}), so none has an output '{output}'"
    declared = sorted({name for job in candidates for name in job.outputs})
    shown = ", ".join(declared) or "none"
    return f"no job of {where} declares an output '{output}' (their outputs: {shown})"


def _where(values: Mapping[str, Any]) -> dict[str, Sequence[Any]]:
    """Keyword filters -> accepted values (tuples and sets are alternatives)."""
    where: dict[str, Sequence[Any]] = {}
    for name, value in values.items():
        if isinstance(value, tuple | set | frozenset):
            where[name] = list(value)
        else:
            where[name] = [value]
    return where
