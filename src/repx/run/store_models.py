"""Pydantic models of the files of the output store (see docs/running.md).

```
<base>/repx-store.json                 StoreInfo
<base>/completions.jsonl               one JobResult per line, appended after each commit
<base>/outputs/<job>/repx/result.json  JobResult
<base>/outputs/<job>/repx/gather-<input>.json   list[GatherEntry]
<base>/outputs/<job>/repx/run-<input>.json      RunMetadata (a metadata__<run> input)
```
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from repx.run.protocol import JobStatus

__all__ = ["JobStatus"]  # defined with the store's protocol (the standard library only)

STORE_FORMAT: Final = "repx-store/1"
RUN_METADATA_FORMAT: Final = "repx-run-metadata/1"
#: Status of an upstream job that has no committed attempt (never run, or output deleted).
MISSING: Final = "missing"


def _check_format(value: str) -> str:
    if value != STORE_FORMAT:
        raise ValueError(
            f"unsupported output store format '{value}' (this repx reads {STORE_FORMAT})"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StoreInfo(_Model):
    """``repx-store.json``: marks a directory as a repx output store."""

    format: Annotated[str, AfterValidator(_check_format)] = STORE_FORMAT


class JobResult(_Model):
    """The outcome of one attempt (``result.json``; also one line of completions.jsonl)."""

    job: str
    status: JobStatus
    exit_code: int | None = Field(
        default=None, description="exit status; negative: killed by that signal; null: not run"
    )
    reason: str | None = Field(default=None, description="why the attempt did not succeed")
    start: float = Field(description="seconds since the epoch")
    end: float = Field(description="seconds since the epoch")
    host: str
    runtime: str
    lab_id: str
    attempt: str = Field(description="nonce of the work directory of this attempt")
    cpu_seconds: float | None = None
    max_rss_kib: int | None = None
    impure: tuple[str, ...] = Field(
        default=(),
        description="host paths the job could see beyond the lab (mount_host_paths: '/',"
        " mount_paths): such a result is NOT reproducible; empty for a hermetic run",
    )

    @property
    def succeeded(self) -> bool:
        """True for a successful attempt."""
        return self.status is JobStatus.SUCCEEDED

    @property
    def duration(self) -> float:
        """Wall-clock seconds of the attempt."""
        return max(0.0, self.end - self.start)


class GatherEntry(_Model):
    """One upstream job of a gathered input (``gather-<name>.json`` is a list of these)."""

    job: str
    params: dict[str, JsonValue] = Field(
        description="the upstream job's effective parameters: its own and those it inherits"
        " from its upstream jobs (single values)"
    )
    path: str


class MetadataInput(_Model):
    """One upstream output a described job reads (RepX's input mapping shape)."""

    target_input: str
    job_id: str
    source_output: str


class MetadataExecutable(_Model):
    """The ``main`` executable of a described job, as RepX's run metadata has it."""

    outputs: dict[str, str] = Field(description='declared outputs: name -> "$out/…"')
    inputs: tuple[MetadataInput, ...] = ()


class MetadataJob(_Model):
    """One job of a run described to a ``metadata__<run>`` input."""

    name: str = Field(description="<pname>-<version>, as RepX names jobs")
    stage: str
    pname: str
    version: str
    stage_type: str = "simple"
    params: dict[str, JsonValue] = Field(description="the job's own parameters")
    effective_params: dict[str, JsonValue] = Field(
        description="own parameters plus single-valued upstream ones"
    )
    executables: dict[str, MetadataExecutable]
    out_dir: str = Field(description="absolute <base>/outputs/<job>/out")
    output_paths: dict[str, str] = Field(description="declared outputs: name -> absolute path")
    status: str = Field(
        default=MISSING,
        description=f"when the consuming job started: a JobStatus value or '{MISSING}'",
    )


class RunMetadata(_Model):
    """``run-<input>.json``: every job of a run, for a consumer of ``metadata__<run>``.

    Shaped like RepX's run metadata (``type``, ``name``, ``jobs`` by id with ``name``,
    ``params`` and ``executables.main.outputs``) so scripts written for RepX read it.
    """

    format: str = RUN_METADATA_FORMAT
    type: str = "run"
    name: str
    lab_id: str
    store_base: str = Field(description="the output store's base directory")
    jobs: dict[str, MetadataJob]
