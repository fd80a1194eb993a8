"""One small typed function per SLURM command repx uses (sbatch, squeue, scontrol, scancel, sinfo).

Every call goes through :mod:`repx.process` as an argv list. Output is read in machine
formats only: ``sbatch --parsable``, ``squeue --noheader --format`` and ``scontrol show
job --oneliner``. Failures raise :class:`SlurmError` carrying SLURM's own message; callers
add the target and the jobs concerned. ``sacct`` is never used: it needs the accounting
database, which many clusters (and test machines) lack.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from repx import process
from repx.errors import ProgramNotFoundError, RepxError

#: Field separator of our squeue format (never part of an id or a state).
_SEP: Final = "|"
#: squeue fields: job id as shown (``123_4`` for an array task), array job id, array task
#: id (``N/A`` for plain jobs), state (long form), reason.
_SQUEUE_FORMAT: Final = _SEP.join(("%i", "%F", "%K", "%T", "%r"))
#: The commands repx calls.
_COMMANDS: Final = ("sbatch", "squeue", "scontrol", "scancel")
#: SLURM messages that mean "the controller cannot be reached" rather than "refused".
_UNREACHABLE: Final = (
    "Unable to contact slurm controller",
    "Zero Bytes were transmitted or received",
    "Socket timed out",
    "Communication connection failure",
)
_INVALID_JOB: Final = "Invalid job id specified"
#: SLURM's default MaxArraySize and MaxJobCount.
_DEFAULT_MAX_ARRAY_SIZE: Final = 1001
_DEFAULT_MAX_JOB_COUNT: Final = 10000
#: Characters of job ids one ``squeue --jobs=`` argument carries (Linux refuses a single
#: argument over 128 KiB, MAX_ARG_STRLEN); more ids are asked in several calls.
_SQUEUE_IDS_CHARS: Final = 32768
#: ``Key=`` at the start of a field of ``scontrol show job -o``.
_KEY: Final = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9/:_]*)=")


class SlurmError(RepxError):
    """SLURM refused a request (its message is the error's text)."""

    exit_code = 1


class SlurmUnavailableError(SlurmError):
    """SLURM's commands are missing or its controller cannot be reached."""

    exit_code = 2


class JobState(StrEnum):
    """SLURM job states repx distinguishes (the long names squeue and scontrol print)."""

    PENDING = "PENDING"
    CONFIGURING = "CONFIGURING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    SUSPENDED = "SUSPENDED"
    REQUEUED = "REQUEUED"
    RESIZING = "RESIZING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    SPECIAL_EXIT = "SPECIAL_EXIT"
    OTHER = "OTHER"

    @classmethod
    def parse(cls, text: str) -> JobState:
        """``CANCELLED by 0`` -> CANCELLED; unknown states -> OTHER."""
        word = text.split(" ", 1)[0].strip().upper()
        try:
            return cls(word)
        except ValueError:
            return cls.OTHER

    @property
    def queued(self) -> bool:
        """Waiting to start (held by its dependencies, priority or resources)."""
        return self in (JobState.PENDING, JobState.REQUEUED)

    @property
    def running(self) -> bool:
        """Allocated and not finished."""
        return self in (
            JobState.CONFIGURING,
            JobState.RUNNING,
            JobState.COMPLETING,
            JobState.SUSPENDED,
            JobState.RESIZING,
        )

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.queued or self.running


@dataclass(frozen=True)
class QueueEntry:
    """One job (or array task) as ``squeue`` shows it."""

    #: ``123`` for a plain job, ``123_4`` for task 4 of array job 123
    job_id: str
    array_job_id: str
    array_task: int | None
    state: JobState
    reason: str

    @property
    def never_runs(self) -> bool:
        """Pending on a dependency that can no longer be satisfied."""
        return self.state.queued and self.reason == "DependencyNeverSatisfied"


def sbatch(script: Path, options: Sequence[str], *, cwd: Path | None = None) -> str:
    """Submit ``script`` with ``options`` (``--parsable`` is added); return the job id."""
    result = _run(["sbatch", "--parsable", *options, script], cwd=cwd)
    return parse_parsable(result.stdout)


def parse_parsable(stdout: str) -> str:
    """The job id of ``sbatch --parsable`` output (``123`` or ``123;cluster``)."""
    for line in stdout.splitlines():
        head = line.strip().split(";", 1)[0]
        if head.isdigit():
            return head
    raise SlurmError(f"sbatch printed no job id (output: {stdout.strip()[:200]!r})")


def squeue(job_ids: Iterable[str]) -> list[QueueEntry]:
    """Jobs and array tasks of ``job_ids`` that SLURM still knows (finished ones included).

    Ids may be plain (``123``: a job, or every task of an array) or array tasks (``123_4``).
    Jobs the controller has forgotten (older than its ``MinJobAge``) are left out.
    """
    entries: list[QueueEntry] = []
    for batch in _batches(sorted(set(job_ids)), _SQUEUE_IDS_CHARS):
        result = _run(
            [
                "squeue",
                "--noheader",
                "--array",
                "--states=all",
                f"--format={_SQUEUE_FORMAT}",
                f"--jobs={','.join(batch)}",
            ],
            check=False,
        )
        if result.returncode != 0:
            if _INVALID_JOB in result.stderr:
                continue  # a single id that SLURM no longer knows
            raise _error(result)
        entries += parse_squeue(result.stdout)
    return entries


def _batches(ids: Sequence[str], chars: int) -> list[list[str]]:
    """``ids`` in consecutive batches whose comma-joined length stays within ``chars``."""
    batches: list[list[str]] = []
    size = chars + 1
    for job_id in ids:
        if size + 1 + len(job_id) > chars:
            batches.append([])
            size = -1
        batches[-1].append(job_id)
        size += 1 + len(job_id)
    return batches


def parse_squeue(stdout: str) -> list[QueueEntry]:
    """Parse lines printed with :data:`_SQUEUE_FORMAT`."""
    entries: list[QueueEntry] = []
    for line in stdout.splitlines():
        fields = line.strip().split(_SEP, 4)
        if len(fields) != 5:
            continue
        job_id, array_id, task, state, reason = fields
        entries.append(
            QueueEntry(
                job_id=job_id,
                array_job_id=array_id,
                array_task=int(task) if task.isdigit() else None,
                state=JobState.parse(state),
                reason=reason.strip(),
            )
        )
    return entries


def show_job(job_id: str) -> list[dict[str, str]]:
    """``scontrol show job --oneliner ID``: one dict per job or array task record.

    Returns an empty list when the controller no longer knows the job.
    """
    result = _run(["scontrol", "show", "job", "--oneliner", job_id], check=False)
    if result.returncode != 0:
        if _INVALID_JOB in result.stderr:
            return []
        raise _error(result)
    return [parse_show_job(line) for line in result.stdout.splitlines() if line.strip()]


def parse_show_job(line: str) -> dict[str, str]:
    """Parse one ``Key=Value Key=Value …`` line (values may contain spaces)."""
    fields: dict[str, str] = {}
    matches = list(_KEY.finditer(line))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        fields[match.group(1)] = line[match.end() : end].strip()
    return fields


def scancel(job_ids: Iterable[str], *, signal: str | None = None) -> None:
    """Cancel jobs or array tasks (``123``, ``123_4``); already finished ones are ignored."""
    ids = sorted(set(job_ids))
    if not ids:
        return
    args = ["scancel", *([f"--signal={signal}"] if signal else []), *ids]
    result = _run(args, check=False)
    if result.returncode != 0 and not _only_finished(result.stderr):
        raise _error(result)


@dataclass(frozen=True)
class Partition:
    """A partition as ``sinfo`` shows it."""

    name: str
    cpus: int
    #: the partition's MaxTime as printed (``infinite``, ``1-00:00:00``, ``30:00``)
    max_time: str
    default: bool


def partitions() -> dict[str, Partition]:
    """Every partition (CPUs summed over its nodes); the default one is also under ``""``."""
    result = _run(["sinfo", "--noheader", f"--format=%P{_SEP}%C{_SEP}%l"])
    return parse_sinfo(result.stdout)


def parse_sinfo(stdout: str) -> dict[str, Partition]:
    """Parse ``sinfo --format=%P|%C|%l`` (``%C`` = allocated/idle/other/total CPUs)."""
    found: dict[str, Partition] = {}
    for line in stdout.splitlines():
        fields = line.strip().split(_SEP)
        if len(fields) != 3:
            continue
        name, cpus, max_time = fields
        total = cpus.rsplit("/", 1)[-1]
        default = name.endswith("*")
        name = name.rstrip("*")
        count = int(total) if total.isdigit() else 0
        if name in found:
            count += found[name].cpus
        found[name] = Partition(name, count, max_time, default)
        if default or (found.get("") is not None and found[""].name == name):
            found[""] = found[name]
    return found


@dataclass(frozen=True)
class Limits:
    """The controller's limits on what one submission may ask for."""

    #: array indices must stay below it
    max_array_size: int = _DEFAULT_MAX_ARRAY_SIZE
    #: job records (every array task counts) the controller holds at once, all users
    max_job_count: int = _DEFAULT_MAX_JOB_COUNT


def limits() -> Limits:
    """``MaxArraySize`` and ``MaxJobCount`` from ``scontrol show config`` (one call; SLURM's
    defaults where it prints neither)."""
    result = _run(["scontrol", "show", "config"])
    found: dict[str, int] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        if value.strip().isdigit():
            found[key.strip()] = int(value.strip())
    return Limits(
        max_array_size=found.get("MaxArraySize", _DEFAULT_MAX_ARRAY_SIZE),
        max_job_count=found.get("MaxJobCount", _DEFAULT_MAX_JOB_COUNT),
    )


def ping() -> None:
    """Check that SLURM's commands are installed and the controller answers (``scontrol ping``)."""
    for program in _COMMANDS:
        if process.which(program) is None:
            raise SlurmUnavailableError(
                f"'{program}' was not found on PATH (SLURM's commands are needed here)"
            )
    result = _run(["scontrol", "ping"], check=False)
    if result.returncode != 0:
        said = (result.stdout.strip().splitlines() or [_message(result.stderr)])[0]
        raise SlurmUnavailableError(f"the SLURM controller cannot be reached ({said})")


# -- internals ----------------------------------------------------------------------------


def _run(
    args: Sequence[str | Path], *, check: bool = True, cwd: Path | None = None
) -> process.ProcessResult:
    try:
        result = process.run(args, check=False, cwd=cwd)
    except ProgramNotFoundError as exc:
        raise SlurmUnavailableError(
            f"'{exc.program}' was not found on PATH (SLURM's commands are needed here)"
        ) from None
    if result.returncode != 0:
        if any(text in result.stderr for text in _UNREACHABLE):
            raise SlurmUnavailableError(
                f"the SLURM controller cannot be reached: {_message(result.stderr)}"
            )
        if check:
            raise _error(result)
    return result


def _error(result: process.ProcessResult) -> SlurmError:
    text = _message(result.stderr) or f"exit status {result.returncode}"
    return SlurmError(f"{result.args[0]}: {text}")


def _message(stderr: str) -> str:
    """SLURM's own words: the last error line, without the ``prog: error:`` prefix."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    for prefix in ("sbatch: error: ", "squeue: error: ", "scancel: error: ", "scontrol: error: "):
        last = last.removeprefix(prefix)
    return last


def _only_finished(stderr: str) -> bool:
    """scancel complains only about jobs that already ended (or were forgotten)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return all("already completing or completed" in line or _INVALID_JOB in line for line in lines)
