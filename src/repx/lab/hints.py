"""The grammar of scheduling hints (``cpus``, ``mem``, ``time``, ``partition``, sbatch options).

One contract, written twice: ``nix/lib/resources.nix`` checks a stage's ``resources`` when
the lab is built and writes the normalised values into the lab; this module is the same
grammar for Python, used by the lab models (so a lab read back accepts exactly what the
build accepts) and by ``resources.toml`` and ``config.toml``. Every check returns the
normalised value or raises :class:`ValueError` with the same text as the Nix side
(``tests/unit/test_hints_agree.py`` runs both on one table). Normalised values:

- ``cpus``: an integer, 1 … 65535;
- ``mem``: MiB, an integer 1 … 2**40 (``"4G"`` -> 4096, ``"1.5G"`` -> 1536, ``"1K"`` rounds
  up to 1);
- ``time``: minutes, an integer 1 … 10**9 (``"01:00:00"`` -> 60, ``"0:30"`` rounds up to 1);
- ``partition``: the name(s) as given;
- sbatch options: the list as given, each option checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Final, TypeVar

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

MAX_CPUS: Final = 65535
MAX_MEM_MIB: Final = 2**40
MAX_MINUTES: Final = 10**9

#: Options repx passes to sbatch itself (a user's value would break submission or following).
RESERVED_LONG: Final = (
    "--array",
    "--dependency",
    "--output",
    "--error",
    "--parsable",
    "--wrap",
    "--wait",
    "--kill-on-invalid-dep",
    "--test-only",
)
RESERVED_SHORT: Final = ("-a", "-d", "-o", "-e", "-W")

CPUS_ACCEPTED: Final = f"use a whole number of CPUs from 1 to {MAX_CPUS}"
MEM_ACCEPTED: Final = (
    'use a whole number of MiB (512) or a size with a unit K, M, G or T ("512M", "1.5G"),'
    " from 1M to 1048576T"
)
TIME_ACCEPTED: Final = (
    'use minutes (30) or "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS"'
    " (minutes and seconds below 60, hours below 24 after a day count), more than 0"
)
PARTITION_ACCEPTED: Final = (
    "use a partition name or comma-separated names ([A-Za-z0-9_.+-], not starting with . + or -)"
)
OPTIONS_ACCEPTED: Final = 'use a list of sbatch options ([ "--qos=long" ])'

# Python's re and Nix's POSIX regexes agree on these: every one is matched whole and none
# depends on which alternative wins.
_NUMBER: Final = re.compile(r"0*([0-9]{1,12})")
_MEM: Final = re.compile(r"([0-9]+)(\.([0-9]{1,6}))?(([KMGTkmgt])(iB|B|b)?)?")
#: MiB per unit (K is 1/1024 of one).
_MEM_FACTOR: Final = {"K": 0, "M": 1, "G": 1024, "T": 1024**2}
_TIME: Final = re.compile(r"(([0-9]+)-)?([0-9]+)(:([0-9]+))?(:([0-9]+))?")
_PARTITION: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*(,[A-Za-z0-9_][A-Za-z0-9_.+-]*)*")
_LONG_OPTION: Final = re.compile(r"(--[A-Za-z][A-Za-z0-9-]*)(=.*)?", re.DOTALL)
_SHORT_OPTION: Final = re.compile(r"-[A-Za-z]([^ \t-].*)?", re.DOTALL)

_T = TypeVar("_T")


def show(value: object) -> str:
    """A value as messages show it (as the Nix side does): JSON for strings and integers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return "a fractional number"
    if value is None:
        return "a null"
    if isinstance(value, list | tuple):
        return "a list"
    return "a set" if isinstance(value, dict) else f"a {type(value).__name__}"


def _invalid(value: object, accepted: str) -> ValueError:
    return ValueError(f"invalid value {show(value)}: {accepted}")


def _integer(value: object) -> int | None:
    """The value when it is an integer (a JSON/Nix boolean is not one), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(text: str | None) -> int | None:
    """``"007"`` -> 7; None when not digits or more than 12 significant ones."""
    if text is None:
        return None
    match = _NUMBER.fullmatch(text)
    return int(match.group(1)) if match else None


def cpus(value: object) -> int:
    """A CPU count."""
    n = _integer(value)
    if n is not None and 1 <= n <= MAX_CPUS:
        return n
    raise _invalid(value, CPUS_ACCEPTED)


def mem_mib(value: object) -> int:
    """MiB of a memory hint: ``512`` / ``"512"`` / ``"512M"`` -> 512, ``"1.5G"`` -> 1536."""
    mib = _integer(value)
    if isinstance(value, str) and (match := _MEM.fullmatch(value)):
        mib = _number(match.group(1))
        decimals = match.group(3) or ""
        scale, frac = 10 ** len(decimals), int(decimals or 0)
        factor = _MEM_FACTOR[(match.group(5) or "M").upper()]
        # n.frac units rounded up to whole MiB, in integers (exactly as the Nix side)
        if mib is not None and factor == 0:
            mib = -(-(mib * scale + frac) // (scale * 1024))
        elif mib is not None:
            mib = mib * factor + -(-(frac * factor) // scale)
    if mib is not None and 1 <= mib <= MAX_MEM_MIB:
        return mib
    raise _invalid(value, MEM_ACCEPTED)


def _time_seconds(text: str) -> int | None:
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    groups = match.groups()
    fields = {i: _number(groups[i]) for i in (1, 2, 4, 6)}
    if any(groups[i] is not None and fields[i] is None for i in fields):
        return None  # a field with more than 12 significant digits
    days, a, b, c = fields[1], fields[2], fields[4], fields[6]
    assert a is not None  # the regex requires it

    def below(limit: int, x: int | None) -> bool:
        return x is None or x < limit

    if groups[0] is not None:
        assert days is not None
        if below(24, a) and below(60, b) and below(60, c):
            return ((days * 24 + a) * 60 + (b or 0)) * 60 + (c or 0)
        return None
    if c is not None:
        return (a * 60 + b) * 60 + c if b is not None and b < 60 and c < 60 else None
    if b is not None:
        return a * 60 + b if b < 60 else None
    return a * 60


def time_minutes(value: object) -> int:
    """Minutes of a time limit: ``30`` / ``"30"`` -> 30, ``"1-00:00:00"`` -> 1440."""
    minutes = _integer(value)
    if isinstance(value, str) and (seconds := _time_seconds(value)) is not None:
        minutes = -(-seconds // 60)
    if minutes is not None and 1 <= minutes <= MAX_MINUTES:
        return minutes
    raise _invalid(value, TIME_ACCEPTED)


def partition(value: object) -> str:
    """A partition name, or several separated by commas."""
    if isinstance(value, str) and _PARTITION.fullmatch(value):
        return value
    raise _invalid(value, PARTITION_ACCEPTED)


def option_problem(option: object) -> str | None:
    """Why one sbatch option is refused, or None."""
    if not isinstance(option, str):
        return f'invalid value {show(option)}: use a string such as "--qos=long"'
    if "\n" in option or "\r" in option:
        return f"invalid value {show(option)}: an option cannot hold a line break"
    long = _LONG_OPTION.fullmatch(option)
    if long is None and _SHORT_OPTION.fullmatch(option) is None:
        return (
            f"invalid value {show(option)}: use one option per element, its value after '='"
            ' ("--qos=long") or attached to a short option ("-pshort")'
        )
    if long is not None:
        name = long.group(1)
        # sbatch takes any unambiguous abbreviation of a long option
        taken = [r for r in RESERVED_LONG if len(name) >= 3 and r.startswith(name)]
        if taken:
            return f"invalid value {show(option)}: {taken[0]} is set by repx itself"
    elif option[:2] in RESERVED_SHORT:
        return f"invalid value {show(option)}: {option[:2]} is set by repx itself"
    return None


class OptionError(ValueError):
    """A refused sbatch option; ``index`` is its place in the list."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def sbatch_options(value: object) -> tuple[str, ...]:
    """A list of sbatch options, every one checked."""
    if not isinstance(value, list | tuple):
        raise OptionError(f"invalid value {show(value)}: {OPTIONS_ACCEPTED}")
    for index, option in enumerate(value):
        if (problem := option_problem(option)) is not None:
            raise OptionError(problem, index)
    return tuple(value)


#: The checks by key, as in a stage's ``resources`` (and the lab).
CHECKS: Final[dict[str, Callable[[object], object]]] = {
    "cpus": cpus,
    "mem": mem_mib,
    "time": time_minutes,
    "partition": partition,
    "sbatch_opts": sbatch_options,
}


def check(key: str, value: object) -> object:
    """The normalised value of one hint; :class:`ValueError` (the Nix text) when invalid."""
    return CHECKS[key](value)


def mem_text(mib: int) -> str:
    """``--mem`` text of MiB in the largest unit that divides it: 8192 -> ``8G``."""
    for suffix, factor in (("T", 1024**2), ("G", 1024)):
        if mib % factor == 0:
            return f"{mib // factor}{suffix}"
    return f"{mib}M"


def _pydantic(parse: Callable[[object], _T]) -> BeforeValidator:
    """Run ``parse`` before pydantic's own check; its message becomes the error as is."""

    def validate(value: object) -> _T | None:
        if value is None:  # null is an absent hint (the build writes none)
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise PydanticCustomError("resource_hint", "{message}", {"message": str(exc)}) from None

    return BeforeValidator(validate)


def _option(value: object) -> str:
    if (problem := option_problem(value)) is not None or not isinstance(value, str):
        raise ValueError(problem)
    return value


def _option_list(value: object) -> object:
    if not isinstance(value, list | tuple):
        raise ValueError(f"invalid value {show(value)}: {OPTIONS_ACCEPTED}")
    return value


# Field types for models (``cpus: Cpus = None``): the value is checked and normalised before
# pydantic sees it, so its error is the Nix side's text and a refused option is located by
# its index. JSON null reads as an absent hint (a model dumped with its defaults reads back);
# the build never writes it and refuses `mem = null` in a stage file. The JSON Schema shows
# the normalised form the lab carries.
Cpus = Annotated[
    int | None,
    _pydantic(cpus),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_CPUS}),
]
MemMiB = Annotated[
    int | None,
    _pydantic(mem_mib),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_MEM_MIB}),
]
TimeMinutes = Annotated[
    int | None,
    _pydantic(time_minutes),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_MINUTES}),
]
Partition = Annotated[
    str | None,
    _pydantic(partition),
    WithJsonSchema({"type": "string", "pattern": f"^{_PARTITION.pattern}$"}),
]
SbatchOption = Annotated[str, _pydantic(_option)]
SbatchOptions = Annotated[
    tuple[SbatchOption, ...] | None,
    _pydantic(_option_list),
    WithJsonSchema({"type": "array", "items": {"type": "string", "pattern": "^-"}}),
]
