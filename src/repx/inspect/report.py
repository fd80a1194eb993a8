"""``repx report``: one self-contained HTML page about a lab and its results.

Everything is inline (CSS, the topology as SVG, images as data: URIs), so the page can be
mailed or attached to a paper's supplement and opened anywhere. Sections: state counts and
the topology coloured by state (with a legend), provenance, the parameter sweep, per-stage
timings and resource use, failures with their parameters and the end of their stderr, and
the experiment's result files — the declared outputs of the stages nothing consumes (CSV as
tables, PNG/SVG/JPEG inline, anything else listed with its size).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from repx.errors import ProgramNotFoundError
from repx.inspect.graph import Level
from repx.inspect.params import format_value
from repx.inspect.status import JobState
from repx.inspect.view import LabView
from repx.inspect.viz import (
    STATE_COLOURS,
    VizError,
    VizFormat,
    VizOptions,
    counts_text,
    lab_title,
    render,
)

#: Lines of stderr shown per failed job.
LOG_TAIL: Final = 15
#: Failed jobs shown (the rest is counted).
MAX_FAILURES: Final = 50
#: Result files shown per stage, rows shown per CSV, bytes embedded per image / in all.
MAX_FILES_PER_STAGE: Final = 12
MAX_CSV_ROWS: Final = 50
MAX_IMAGE_BYTES: Final = 5 * 1024 * 1024
MAX_EMBEDDED_BYTES: Final = 40 * 1024 * 1024
_IMAGE_TYPES: Final = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}

_CSS: Final = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 75em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: Menlo, Consolas, monospace; font-size: 0.85em; }
pre { background: #f8f8f8; padding: 0.5em; overflow-x: auto; max-height: 20em; }
.chip { display: inline-block; padding: 0.1em 0.6em; border-radius: 0.8em; border: 1px solid #999;
        margin-right: 0.4em; }
figure { display: inline-block; margin: 0.5em; } figcaption { font-size: 0.8em; color: #555; }
img { max-width: 36em; border: 1px solid #eee; } .topology svg { max-width: 100%; height: auto; }
"""


def render_report(view: LabView) -> str:
    """The report of ``view`` (a lab and its output store) as one HTML document."""
    title = lab_title(view)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>Report written {_e(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}"
        f" from the output store <code>{_e(str(view.base) if view.base else 'none')}</code>.</p>",
        *_overview(view),
        *_provenance(view),
        *_parameters(view),
        *_stages(view),
        *_failures(view),
        *_results(view),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _table(
    headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: Iterable[int] = ()
) -> str:
    right = set(numeric)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(c)}</td>' if i in right else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- sections -----------------------------------------------------------------------------


def _overview(view: LabView) -> Iterator[str]:
    counts = {s.value: n for s, n in view.status.counts(view.lab.jobs).items()}
    yield "<h2>State</h2><p>"
    for state, count in counts.items():
        if count:
            colour = STATE_COLOURS.get(state, "#ffffff")
            yield f'<span class="chip" style="background:{colour}">{_e(state)}: {count}</span>'
    yield f"</p><p>{len(view.lab.jobs)} jobs in {len(view.lab.runs)} run(s).</p>"
    try:
        svg = render(view, VizOptions(level=Level.STAGES), VizFormat.SVG).decode()
    except (ProgramNotFoundError, VizError) as exc:
        yield f"<p>(no topology drawing: {_e(exc.message)})</p>"
        return
    start = svg.find("<svg")
    yield f'<div class="topology">{svg[start:] if start >= 0 else svg}</div>'


def _provenance(view: LabView) -> Iterator[str]:
    meta = view.lab.meta
    packages = sorted({Path(p).name.split("-", 1)[-1] for p in meta.store_paths})
    rows = [
        ("lab id", meta.lab_id),
        ("lab version", meta.lab_version),
        ("git commit", meta.git_hash),
        ("built by repx", meta.repx_version),
        ("lab", str(view.lab.root)),
        ("container mode", meta.container_mode),
        (
            "closure",
            f"{len(meta.store_paths)} store paths: "
            + ", ".join(packages[:40])
            + (" …" if len(packages) > 40 else ""),
        ),
    ]
    yield "<h2>Provenance</h2>"
    yield _table(("", "value"), rows)


def _parameters(view: LabView) -> Iterator[str]:
    yield "<h2>Parameters</h2>"
    for run, manifest in view.lab.runs.items():
        if not manifest.parameters:
            continue
        rows = [
            (name, ", ".join(format_value(v) for v in values))
            for name, values in manifest.parameters.items()
        ]
        yield f"<h3>{_e(run)}</h3>" + _table(("parameter", "values"), rows)


def _stages(view: LabView) -> Iterator[str]:
    status = view.status
    rows = []
    for run in view.run_names:
        for stage in view.stages(run):
            jobs = view.jobs_of(run, stage)
            counts = {s.value: n for s, n in status.counts(jobs).items()}
            attempts = [a for j in jobs if (a := status.attempt(j)) is not None]
            walls = [d for a in attempts if (d := a.duration) is not None]
            cpu = [a.cpu_seconds for a in attempts if a.cpu_seconds is not None]
            rss = [a.max_rss_kib for a in attempts if a.max_rss_kib is not None]
            rows.append(
                (
                    run,
                    stage,
                    str(len(jobs)),
                    counts_text(counts) or "-",
                    f"{sum(walls) / len(walls):.2f}" if walls else "-",
                    f"{max(walls):.2f}" if walls else "-",
                    f"{sum(cpu):.2f}" if cpu else "-",
                    f"{max(rss) / 1024:.1f}" if rss else "-",
                )
            )
    yield "<h2>Stages: timings and resources</h2>"
    headers = (
        "run",
        "stage",
        "jobs",
        "states",
        "mean wall s",
        "max wall s",
        "cpu s",
        "max RSS MiB",
    )
    yield _table(headers, rows, numeric=(2, 4, 5, 6, 7))


def _params_text(view: LabView, job: str) -> str:
    effective = view.params.effective(job)
    values = {**effective.values, **{k: list(v) for k, v in effective.multi.items()}}
    return " ".join(f"{k}={format_value(v)}" for k, v in values.items()) or "-"


def _failures(view: LabView) -> Iterator[str]:
    status = view.status
    failed = [j for j in view.sorted_ids if status.state(j) is JobState.FAILED]
    if not failed:
        return
    yield f"<h2>Failures ({len(failed)})</h2>"
    for job in failed[:MAX_FAILURES]:
        attempt = status.attempt(job)
        code = attempt.exit_code if attempt else None
        reason = status.reason(job) or (attempt.reason if attempt else None) or ""
        yield (
            f"<h3>{_e(view.stage_of(job))} {_e(_params_text(view, job))}</h3>"
            f"<p><code>{_e(job)}</code>: exit {_e(str(code))}"
            f"{(' — ' + _e(reason)) if reason else ''}</p>"
        )
        stderr = status.log_paths(job).get("stderr")
        if stderr is not None:
            yield f"<pre>{_e(_tail(stderr))}</pre>"
    if len(failed) > MAX_FAILURES:
        more = len(failed) - MAX_FAILURES
        yield f"<p>… and {more} more failed job(s): <code>repx status</code>.</p>"


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 64 * 1024))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return "(no stderr log)"
    return "\n".join(lines[-LOG_TAIL:]) or "(stderr is empty)"


def _results(view: LabView) -> Iterator[str]:
    consumed = view.consumers  # upstream job -> its consumers
    budget = [MAX_EMBEDDED_BYTES]
    yield "<h2>Results</h2>"
    shown = False
    for run in view.run_names:
        for stage in view.stages(run):
            if any(j in consumed for j in view.jobs_of(run, stage)):
                continue
            items = list(_stage_files(view, run, stage))
            if not items:
                continue
            shown = True
            yield f"<h3>{_e(run)} / {_e(stage)}</h3>"
            for job, name, path in items[:MAX_FILES_PER_STAGE]:
                yield _file(view, job, name, path, budget)
            if len(items) > MAX_FILES_PER_STAGE:
                yield f"<p>… {len(items) - MAX_FILES_PER_STAGE} more file(s).</p>"
    if not shown:
        yield "<p>No result files yet: the stages nothing consumes have no outputs here.</p>"


def _stage_files(view: LabView, run: str, stage: str) -> Iterator[tuple[str, str, Path]]:
    for job in view.jobs_of(run, stage):
        if view.status.state(job) is not JobState.SUCCEEDED:
            continue
        for name in sorted(view.lab.jobs[job].outputs):
            path = view.output_path(job, name)
            if path is not None and path.is_file():
                yield job, name, path


def _file(view: LabView, job: str, name: str, path: Path, budget: list[int]) -> str:
    caption = f"{name} — {_params_text(view, job)}"
    size = path.stat().st_size
    kind = _IMAGE_TYPES.get(path.suffix.lower())
    if kind is not None:
        if size > MAX_IMAGE_BYTES or size > budget[0]:
            return (
                f"<p>{_e(caption)}: <code>{_e(str(path))}</code> ({size} bytes, not embedded)</p>"
            )
        budget[0] -= size
        data = base64.b64encode(path.read_bytes()).decode()
        return (
            f'<figure><img alt="{_e(name)}" src="data:{kind};base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    if path.suffix.lower() in {".csv", ".tsv"}:
        return f"<p>{_e(caption)}</p>" + _csv_table(path)
    return f"<p>{_e(caption)}: <code>{_e(str(path))}</code> ({size} bytes)</p>"


def _csv_table(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<p>(cannot read: {_e(exc.strerror or '')})</p>"
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    rows = list(csv.reader(io.StringIO(text), dialect=dialect))
    if not rows:
        return "<p>(empty)</p>"
    body = rows[1 : MAX_CSV_ROWS + 1]
    more = len(rows) - 1 - len(body)
    table = _table(rows[0], body)
    return table + (f"<p>… {more} more row(s)</p>" if more > 0 else "")
