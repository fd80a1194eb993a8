"""Parse nix's ``--log-format internal-json`` stream (Nix 2.8) into progress and errors.

Each stderr line is either ``@nix {json}`` or plain text. The JSON objects are
``{"action": "start" | "stop" | "result" | "msg", ...}``; the numeric activity and
result types below are Nix's ``ActivityType`` and ``ResultType`` enums.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

_PREFIX: Final = "@nix "
_ANSI: Final = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: A nix store path of a derivation: /nix/store/<32 chars>-<name>.drv
_DRV_NAME: Final = re.compile(r"/[0-9a-z]{32}-(?P<name>[^/']+?)(?:\.drv)?(?:\^.*)?$")
_FAILED_BUILDER: Final = re.compile(r"builder for '(?P<drv>[^']+)' failed")
#: Warnings hidden unless verbose: fresh (uncommitted) experiments and every
#: ``--override-input`` trigger them.
_QUIET_WARNING: Final = re.compile(
    r"^warning: (Git tree '[^']*' is dirty$|not writing modified lock file of flake )"
)
_ABORT_WRAPPER: Final = "evaluation aborted with the following error message: '"
#: Marker of the Nix library's own validation messages.
REPX_MARKER: Final = "repx:"

# ActivityType
ACT_COPY_PATH: Final = 100
ACT_BUILDS: Final = 104
ACT_BUILD: Final = 105
ACT_SUBSTITUTE: Final = 108
# ResultType
RES_BUILD_LOG_LINE: Final = 101
RES_PROGRESS: Final = 105
RES_POST_BUILD_LOG_LINE: Final = 107
# Verbosity
LVL_ERROR: Final = 0
LVL_WARN: Final = 1
LVL_INFO: Final = 3

#: Log lines kept per build for the error report.
_LOG_TAIL: Final = 10
#: Lines kept of one nix error message.
_ERROR_LINES: Final = 40


@dataclass(frozen=True)
class BuildStatus:
    """A snapshot of nix's progress: derivations done/expected and the running ones."""

    done: int = 0
    expected: int = 0
    running: tuple[str, ...] = ()
    failed: int = 0

    def describe(self) -> str:
        """Render as ``building 3/7: name`` (or ``evaluating`` before any build)."""
        if not self.running and self.expected == 0:
            return "evaluating"
        text = f"building {self.done}/{self.expected}"
        if self.running:
            extra = f" (+{len(self.running) - 1})" if len(self.running) > 1 else ""
            text += f": {self.running[-1]}{extra}"
        return text


@dataclass
class _Build:
    name: str
    drv: str
    log: deque[str] = field(default_factory=lambda: deque(maxlen=_LOG_TAIL))


class NixLogParser:
    """Consume nix's stderr lines; report status changes and log lines; summarise errors."""

    def __init__(
        self,
        *,
        on_status: Callable[[BuildStatus], None] | None = None,
        on_log_line: Callable[[str], None] | None = None,
        verbose: bool = False,
        full_errors: bool = False,
    ) -> None:
        self._on_status = on_status
        # --show-trace: the user asked for nix's whole trace, so keep every line of it
        self._error_lines = 1_000_000 if full_errors else _ERROR_LINES
        self._on_log_line = on_log_line
        self._verbose = verbose
        self._builds: dict[int, _Build] = {}
        self._running: dict[int, str] = {}
        self._by_drv: dict[str, _Build] = {}
        self._progress_id: int | None = None
        self._status = BuildStatus()
        self.errors: list[str] = []
        self.repx_lines: list[str] = []
        self.plain_lines: deque[str] = deque(maxlen=50)

    @property
    def status(self) -> BuildStatus:
        """The latest progress snapshot."""
        return self._status

    def feed(self, line: str) -> None:
        """Consume one stderr line of nix."""
        if not line.startswith(_PREFIX):
            self._plain(line)
            return
        try:
            event = json.loads(line[len(_PREFIX) :])
        except ValueError:
            self._plain(line)
            return
        if not isinstance(event, dict):
            return
        match event.get("action"):
            case "start":
                self._start(event)
            case "stop":
                self._stop(event)
            case "result":
                self._result(event)
            case "msg":
                self._msg(event)
            case _:
                pass

    def failure_report(self) -> str:
        """Return the trimmed explanation of a failed nix call.

        The Nix library's own messages (lines containing ``repx:``) come first; then the
        ``error:`` blocks of nix not already covered by them; for failed builders whose
        logs carry no ``repx:`` line, the last log lines of that build.
        """
        out: list[str] = list(self.repx_lines)
        covered = set(self.repx_lines)
        for error in self.errors:
            lines = error.splitlines()
            if all(_clean_repx_line(x) in covered or not x.strip() for x in lines):
                continue
            if self.repx_lines and error.startswith("(use '--show-trace'"):
                continue
            out.extend(lines[: self._error_lines])
            if len(lines) > self._error_lines:
                out.append(f"… ({len(lines) - self._error_lines} more lines)")
            failed = _FAILED_BUILDER.search(error)
            build = self._by_drv.get(failed.group("drv")) if failed else None
            if build and build.log and not any(REPX_MARKER in x for x in build.log):
                out.append(f"last {len(build.log)} log lines of {build.name}:")
                out.extend(f"> {x}" for x in build.log)
        if not out:
            out.extend(self.plain_lines)
        return "\n".join(out).strip("\n")

    # -- event handlers -------------------------------------------------------------

    def _start(self, event: dict[str, Any]) -> None:
        act_id = event.get("id")
        if not isinstance(act_id, int):
            return
        act_type = event.get("type")
        if act_type == ACT_BUILDS:
            self._progress_id = act_id
        elif act_type == ACT_BUILD:
            fields = event.get("fields") or [""]
            drv = str(fields[0]) if fields else ""
            build = _Build(name=drv_name(drv), drv=drv)
            self._builds[act_id] = build
            self._by_drv[drv] = build
            self._running[act_id] = build.name
            self._set_status(running=tuple(self._running.values()))
            if self._verbose and self._on_log_line is not None:
                self._on_log_line(f"building {build.name}")

    def _stop(self, event: dict[str, Any]) -> None:
        act_id = event.get("id")
        if isinstance(act_id, int) and self._running.pop(act_id, None) is not None:
            self._set_status(running=tuple(self._running.values()))

    def _result(self, event: dict[str, Any]) -> None:
        act_id = event.get("id")
        res_type = event.get("type")
        fields = event.get("fields") or []
        if res_type in (RES_BUILD_LOG_LINE, RES_POST_BUILD_LOG_LINE) and fields:
            text = _ANSI.sub("", str(fields[0]))
            build = self._builds.get(act_id) if isinstance(act_id, int) else None
            if build is not None:
                build.log.append(text)
            if REPX_MARKER in text:
                self._add_repx_line(text)
            if self._verbose and self._on_log_line is not None:
                self._on_log_line(f"{build.name if build else 'nix'}> {text}")
        elif res_type == RES_PROGRESS and act_id == self._progress_id and len(fields) >= 4:
            done, expected, _running, failed = (int(x) for x in fields[:4])
            self._set_status(done=done, expected=expected, failed=failed)

    def _msg(self, event: dict[str, Any]) -> None:
        text = _ANSI.sub("", str(event.get("msg", ""))).rstrip()
        level = event.get("level", LVL_INFO)
        if level == LVL_ERROR:
            self.errors.append(text)
            for line in text.splitlines():
                if REPX_MARKER in line:
                    self._add_repx_line(line)
        elif self._on_log_line is not None and (
            (level == LVL_WARN and (self._verbose or not _QUIET_WARNING.match(text)))
            or (self._verbose and isinstance(level, int) and level <= LVL_INFO)
        ):
            self._on_log_line(text)

    def _plain(self, line: str) -> None:
        text = _ANSI.sub("", line)
        self.plain_lines.append(text)
        if REPX_MARKER in text:
            self._add_repx_line(text)
        if self._on_log_line is not None:
            self._on_log_line(text)

    def _add_repx_line(self, line: str) -> None:
        clean = _clean_repx_line(line)
        if clean not in self.repx_lines:
            self.repx_lines.append(clean)

    def _set_status(self, **changes: Any) -> None:
        status = replace(self._status, **changes)
        if status != self._status:
            self._status = status
            if self._on_status is not None:
                self._on_status(status)


def drv_name(path: str) -> str:
    """Return the name part of a store path: ``/nix/store/<hash>-foo-1.0.drv`` → ``foo-1.0``."""
    match = _DRV_NAME.search(path)
    return match.group("name") if match else path


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes."""
    return _ANSI.sub("", text)


def _clean_repx_line(line: str) -> str:
    """Drop nix's decorations around a ``repx:`` message."""
    text = line.strip()
    if text.startswith("error: "):
        text = text[len("error: ") :]
    if text.startswith(_ABORT_WRAPPER):
        text = text[len(_ABORT_WRAPPER) :]
        if text.endswith("'"):
            text = text[:-1]
    return text


def trim_plain_stderr(stderr: str) -> str:
    """Trim nix's plain stderr to its ``error:`` blocks and ``repx:`` lines."""
    lines = [strip_ansi(x).rstrip() for x in stderr.splitlines()]
    repx = [_clean_repx_line(x) for x in lines if REPX_MARKER in x]
    start = next((i for i, x in enumerate(lines) if x.startswith("error:")), None)
    block = lines[start:] if start is not None else lines[-20:]
    block = [x for x in block if _clean_repx_line(x) not in repx]
    if repx and all(not x.strip() or x.startswith("(use '--show-trace'") for x in block):
        block = []
    return "\n".join([*repx, *block[:_ERROR_LINES]]).strip("\n")


#: Nix's error for a missing attribute (or a variable, e.g. a name in ``with pkgs; [ … ]``),
#: and the position line under it.
_MISSING_ATTR: Final = re.compile(
    r"^error: (?:attribute '(?P<name>[^']+)' missing|undefined variable '(?P<var>[^']+)')$"
)
_AT: Final = re.compile(r"^\s*at (?P<file>/nix/store/[^:]+):(?P<line>\d+):(?P<col>\d+):$")
_SOURCE_LINE: Final = re.compile(r"^\s*(?P<line>\d+)\| ?(?P<text>.*)$")
_DID_YOU_MEAN: Final = re.compile(r"^\s*Did you mean (?:one of )?(?P<names>.+)\?$")


@dataclass(frozen=True)
class MissingAttribute:
    """Nix's ``error: attribute 'X' missing`` at ``file:line:col`` (file is a store path)."""

    name: str
    file: str
    line: int
    column: int
    #: The source line nix quoted (empty when it quoted none).
    source: str = ""
    #: ``undefined variable`` rather than ``attribute … missing``.
    variable: bool = False
    #: Nix's own guesses (``Did you mean one of a, b or c?``), as it printed them.
    nix_suggests: str = ""


def find_missing_attribute(errors: list[str]) -> MissingAttribute | None:
    """Return the first missing-attribute (or undefined-variable) error of nix, if any."""
    for error in errors:
        lines = error.splitlines()
        match = _MISSING_ATTR.match(lines[0]) if lines else None
        at = next((m for x in lines[1:] if (m := _AT.match(x))), None)
        if match is None or at is None:
            continue
        line = int(at.group("line"))
        quoted = (m for x in lines if (m := _SOURCE_LINE.match(x)))
        source = next((m.group("text") for m in quoted if int(m.group("line")) == line), "")
        var = match.group("var")
        guess = next((m.group("names") for x in lines if (m := _DID_YOU_MEAN.match(x))), "")
        return MissingAttribute(
            var or match.group("name"),
            at.group("file"),
            line,
            int(at.group("col")),
            source,
            variable=var is not None,
            nix_suggests=guess,
        )
    return None
