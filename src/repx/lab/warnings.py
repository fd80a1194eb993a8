"""Warnings about a built lab that do not stop the build (``repx build`` prints them).

- a run parameter that no stage of the run declares: it changes no job, so it is most
  likely a typo or a leftover (named with its line in the run file when the lab records it);
- what the build-time stage checks reported as warnings (``lab/check-warnings.txt``,
  collected from every check's output by the lab builder), e.g. ``${parameters.x}`` inside
  single quotes.
"""

from __future__ import annotations

from typing import Final

from repx.lab.loader import LoadedLab

#: The stage checks' warnings, one a line, written by nix/lib/build-lab.sh (absent: none).
CHECK_WARNINGS: Final = "lab/check-warnings.txt"
_PREFIX: Final = "repx: warning: "


def lab_warnings(lab: LoadedLab) -> list[str]:
    """Every warning about ``lab``, each one line without a ``warning:`` prefix."""
    return [*unused_parameters(lab), *check_warnings(lab)]


def unused_parameters(lab: LoadedLab) -> list[str]:
    """One warning per run parameter that no stage of its run declares."""
    found = []
    for run in lab.revision.run_order or list(lab.runs):
        manifest = lab.runs.get(run)
        if manifest is None:
            continue
        used = {name for stage in manifest.stages.values() for name in stage.parameters}
        used.update(name for job in manifest.jobs.values() for name in job.params)
        entry = lab.revision.runs.get(run)
        stages = ", ".join(entry.stages if entry is not None else manifest.stages) or "none"
        for name in manifest.parameters:
            if name in used:
                continue
            where = manifest.parameter_positions.get(name)
            place = f" ({where})" if where else ""
            found.append(
                f"run '{run}'{place}: parameter '{name}' is used by no stage (stages:"
                f" {stages}), so it changes no job; remove it, or declare it in the"
                " parameters of the stage that needs it"
            )
    return found


def check_warnings(lab: LoadedLab) -> list[str]:
    """The warnings of the build-time stage checks (see nix/lib/check/README.md)."""
    try:
        text = (lab.root / CHECK_WARNINGS).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    lines = dict.fromkeys(line.strip() for line in text.splitlines() if line.strip())
    return [line.removeprefix(_PREFIX) for line in lines]
