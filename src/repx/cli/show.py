"""``repx show job|run|output``: everything about one job or one run; a job's outputs."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from repx.cli import complete
from repx.cli.help import examples
from repx.cli.inspecting import (
    BaseOption,
    Column,
    JsonOption,
    LabOption,
    TargetOption,
    open_view,
    print_fields,
    print_model,
    print_table,
    write_bytes,
)
from repx.cli.list_cmd import format_counts

if TYPE_CHECKING:
    from pydantic import JsonValue

    from repx.inspect import models

#: Upstream jobs of a gathered input listed by ``show job`` (``list deps`` lists all).
_MAX_GATHERED: Final = 5

app = typer.Typer(
    name="show",
    help="Show one job or one run of a lab in detail, or a job's outputs.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples("show"),
)


@app.command("job", epilog=examples("show job"))
def job(
    job_id: Annotated[
        str,
        typer.Argument(
            metavar="JOB",
            help="A job id or a unique prefix.",
            autocompletion=complete.complete_jobs,
        ),
    ],
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: JsonOption = False,
) -> None:
    """A job: stage, run, parameters, inputs, outputs, script, resources and last run."""
    from repx.inspect.query import show_job  # noqa: PLC0415 (keep `repx --help` fast)

    details = show_job(open_view(lab, base, target, few=True), job_id)
    if json_output:
        print_model(details)
        return
    print_fields(_job_fields(details))


def _job_fields(d: models.JobDetails) -> list[tuple[str, str]]:
    stage = d.stage + (f" {d.stage_version}" if d.stage_version else "")
    if d.stage_file:
        stage += f" ({d.stage_file})"
    fields = [
        ("job", d.id),
        ("short id", d.short_id),
        ("run", ", ".join(d.runs) or d.run),
        ("stage", stage),
        ("parameters", _params_text(d.params)),
    ]
    inherited = {k: v for k, v in d.effective_params.items() if k not in d.params}
    if inherited:
        fields.append(("inherited", _params_text(inherited)))
    fields.append(("inputs", _inputs_text(d.inputs)))
    fields.append(("outputs", _outputs_text(d.outputs)))
    if d.downstream:
        used = [f"{c.short_id} ({c.run}/{c.stage}) reads {c.output}" for c in d.downstream]
        fields.append(("read by", _elide(used)))
    if d.script:
        fields.append(("script", d.script))
    for name, path in d.executables.items():
        fields.append(("executable" if name == "main" else f"executable {name}", path))
    fields.append(("parameters file", d.parameters_file))
    fields.append(("resources", _params_text(d.resources)))
    fields.append(("status", _status_text(d)))
    if d.output_dir:
        fields.append(("output dir", d.output_dir))
    if d.logs:
        fields.append(("logs", "\n".join(d.logs.values())))
    return fields


def _params_text(params: Mapping[str, JsonValue]) -> str:
    from repx.inspect.params import format_value  # noqa: PLC0415

    return "  ".join(f"{k}={format_value(v)}" for k, v in params.items()) or "-"


def _inputs_text(inputs: Sequence[models.Dependency]) -> str:
    if not inputs:
        return "-"
    by_name: dict[str, list[models.Dependency]] = {}
    for dep in inputs:
        by_name.setdefault(dep.input, []).append(dep)
    lines = []
    for name, deps in by_name.items():
        first = deps[0]
        if len(deps) == 1 and not first.gather:
            lines.append(f"{name} ← {first.short_id} ({first.run}/{first.stage}) {first.output}")
            continue
        stages = sorted({f"{d.run}/{d.stage}" for d in deps})
        outputs = sorted({d.output for d in deps})
        lines.append(
            f"{name} ← gathers {len(deps)} job{'s' if len(deps) != 1 else ''} of"
            f" {', '.join(stages)}: {', '.join(outputs)}"
        )
        lines += [f"  {d.short_id}" for d in deps[:_MAX_GATHERED]]
        if len(deps) > _MAX_GATHERED:
            lines.append(f"  … {len(deps) - _MAX_GATHERED} more (repx list deps)")
    return "\n".join(lines)


def _outputs_text(outputs: Sequence[models.OutputInfo]) -> str:
    if not outputs:
        return "-"
    lines = []
    for out in outputs:
        where = f" → {out.path}" if out.path else ""
        lines.append(f"{out.name}{where}{'' if out.exists or not out.path else ' (not there)'}")
    return "\n".join(lines)


def _status_text(d: models.JobDetails) -> str:
    attempt = d.attempt
    head = f"{d.status} ({d.reason})" if d.reason else d.status
    if d.branches is not None:
        head += f" · {d.branches}"
    if d.slurm_id:
        head += f" · SLURM {d.slurm_id}"
    if attempt is None:
        return head
    parts = [head]
    if attempt.status != d.status:
        parts.append(f"last attempt {attempt.status}")
    if attempt.exit_code is not None:
        parts.append(f"exit {attempt.exit_code}")
    if attempt.reason and attempt.reason != d.reason:
        parts.append(attempt.reason)
    if attempt.duration is not None:
        parts.append(f"{attempt.duration:.1f} s")
    if attempt.start is not None:
        parts.append("started " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(attempt.start)))
    if attempt.host:
        parts.append(f"on {attempt.host}" + (f" ({attempt.runtime})" if attempt.runtime else ""))
    if attempt.impure:
        parts.append(f"impure run, NOT reproducible: saw host {', '.join(attempt.impure)}")
    return " · ".join(parts)


def _elide(lines: list[str], limit: int = _MAX_GATHERED) -> str:
    if len(lines) <= limit:
        return "\n".join(lines)
    return "\n".join([*lines[:limit], f"… {len(lines) - limit} more (repx list deps)"])


@app.command("run", epilog=examples("show run"))
def run(
    name: Annotated[
        str,
        typer.Argument(
            metavar="RUN", help="A run of the lab.", autocompletion=complete.complete_runs
        ),
    ],
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: JsonOption = False,
) -> None:
    """A run: parameters, dependencies, groups, and its stages with their jobs."""
    from repx.inspect.params import format_value  # noqa: PLC0415
    from repx.inspect.query import show_run  # noqa: PLC0415

    details = show_run(open_view(lab, base, target), name)
    if json_output:
        print_model(details)
        return
    params = [
        f"{p}: {', '.join(format_value(v) for v in values)}"
        for p, values in details.parameters.items()
    ]
    fields = [
        ("run", details.name),
        ("jobs", str(details.jobs)),
        ("parameters", "\n".join(params) or "-"),
    ]
    if details.zip_groups:
        fields.append(("zipped", "\n".join(" + ".join(g) for g in details.zip_groups)))
    fields += [
        ("depends on", _kinds(details.depends_on)),
        ("needed by", _kinds(details.dependents)),
        ("groups", ", ".join(details.groups) or "-"),
        ("manifest", details.manifest),
    ]
    if details.status is not None:
        fields.append(("status", format_counts(details.status)))
    print_fields(fields)
    columns = [Column("stage"), Column("jobs", "right"), Column("outputs"), Column("reads")]
    executed = details.status is not None
    if executed:
        columns.append(Column("status"))
    rows = []
    for stage in details.stages:
        row = [
            stage.name,
            str(stage.jobs),
            ", ".join(stage.outputs) or "-",
            ", ".join(stage.depends_on) or "-",
        ]
        if executed:
            row.append(format_counts(stage.status or {}))
        rows.append(row)
    typer.echo("")
    print_table(columns, rows)


@app.command("output", epilog=examples("show output"))
def output(  # noqa: PLR0917 (typer maps parameters to CLI options)
    job_id: Annotated[
        str,
        typer.Argument(
            metavar="JOB",
            help="A job id or a unique prefix.",
            autocompletion=complete.complete_jobs,
        ),
    ],
    path: Annotated[
        str | None,
        typer.Argument(
            help="A file under the job's out/ directory, or a declared output's name"
            " (default: list out/).",
            show_default=False,
        ),
    ] = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: JsonOption = False,
) -> None:
    """A job's committed outputs: print one file, or list the files (with sizes)."""
    from repx.inspect.query import job_output  # noqa: PLC0415
    from repx.services.location import Location  # noqa: PLC0415
    from repx.services.remote import remote_output, remote_target  # noqa: PLC0415 (SSH)

    remote = remote_target(Location(lab=lab, base=base, target=target))
    found = (
        job_output(open_view(lab, base, target, few=True), job_id, path)
        if remote is None
        else remote_output(remote, lab, job_id, path)
    )
    if isinstance(found, bytes):
        if json_output:
            raise typer.BadParameter("--json lists a directory; a file is printed as it is")
        write_bytes(found)
        return
    if isinstance(found, Path):
        if json_output:
            raise typer.BadParameter("--json lists a directory; a file is printed as it is")
        with found.open("rb") as f:
            while chunk := f.read(1 << 16):
                write_bytes(chunk)
        return
    if json_output:
        print_model(found)
        return
    rows = [[f.path, "-" if f.size is None else _size(f.size)] for f in found.files]
    print_table([Column("path"), Column("size", "right")], rows, title=found.directory)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _kinds(deps: Mapping[str, str]) -> str:
    return ", ".join(f"{name} ({kind})" for name, kind in deps.items()) or "-"
