"""The resource-hint grammar is one contract: nix/lib/resources.nix (the build) and
repx.lab.hints (the lab models, resources.toml) accept, normalise and refuse the same
values with the same message. The Nix side is evaluated with the real nix, once for the
whole table (and a deterministic batch of generated strings)."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from repx.lab import hints
from repx.lab.models import Resources

REPO = Path(__file__).resolve().parents[2]

VALID: list[tuple[str, Any, Any]] = [
    ("cpus", 1, 1),
    ("cpus", 65535, 65535),
    ("mem", 512, 512),  # RepX-style integer: MiB, as sbatch --mem
    ("mem", "512", 512),
    ("mem", "512M", 512),
    ("mem", "256M", 256),
    ("mem", "4G", 4096),
    ("mem", "4GB", 4096),
    ("mem", "2GiB", 2048),
    ("mem", "150g", 153600),
    ("mem", "32gb", 32768),
    ("mem", "1T", 1048576),
    ("mem", "100k", 1),  # rounded up to a whole MiB
    ("mem", "2048K", 2),
    ("mem", "1.5G", 1536),
    ("mem", "0.5M", 1),
    ("mem", "1.1T", 1153434),
    ("mem", "0064M", 64),
    ("mem", "1048576T", 2**40),
    ("mem", 2**40, 2**40),
    ("time", 30, 30),  # RepX-style integer: minutes, as sbatch --time
    ("time", "30", 30),
    ("time", "00:05:00", 5),
    ("time", "01:00:00", 60),
    ("time", "144:00:00", 8640),  # hours may pass 24 without a day count
    ("time", "10:30", 11),  # MM:SS, seconds round up to a minute
    ("time", "0:30", 1),
    ("time", "2-00", 2880),
    ("time", "1-02:03", 1563),
    ("time", "1-0:0:5", 1441),
    ("time", "1-00:00:00", 1440),
    ("time", 10**9, 10**9),
    ("partition", "short", "short"),
    ("partition", "gpu_a100.x+1-b", "gpu_a100.x+1-b"),
    ("partition", "main,main2", "main,main2"),
    ("sbatch_opts", [], []),
    ("sbatch_opts", ["--qos=long", "--exclusive"], ["--qos=long", "--exclusive"]),
    ("sbatch_opts", ["--comment=a b", "-pshort", "-N2"], ["--comment=a b", "-pshort", "-N2"]),
    ("sbatch_opts", ["--wait-all-nodes=1", "--account=x"], ["--wait-all-nodes=1", "--account=x"]),
]

INVALID: list[tuple[str, Any]] = [
    ("cpus", 0),
    ("cpus", -1),
    ("cpus", 65536),
    ("cpus", "4"),
    ("cpus", 1.5),
    ("cpus", True),
    ("cpus", None),
    ("mem", 0),
    ("mem", -5),
    ("mem", "0"),
    ("mem", "0G"),
    ("mem", "0.0M"),
    ("mem", "lots"),
    ("mem", ""),
    ("mem", "4 G"),
    ("mem", " 4G"),
    ("mem", "-1G"),
    ("mem", "4X"),
    ("mem", "4GiBs"),
    ("mem", "B"),
    ("mem", "512B"),  # bytes are not a unit here
    ("mem", ".5G"),
    ("mem", "1.G"),
    ("mem", "1.1234567G"),  # at most 6 decimals
    ("mem", "1048577T"),
    ("mem", 2**40 + 1),
    ("mem", "9999999999999M"),  # 13 significant digits
    ("mem", 1.5),
    ("mem", True),
    ("mem", None),
    ("mem", ["4G"]),
    ("time", 0),
    ("time", -1),
    ("time", 10**9 + 1),
    ("time", "0"),
    ("time", "0:00"),
    ("time", "00:00:00"),
    ("time", "99:99"),
    ("time", "1:99"),
    ("time", "1:60"),
    ("time", "1-00:60"),
    ("time", "1-23:59:60"),
    ("time", "1:00:60"),
    ("time", "1:60:00"),
    ("time", "1-24"),
    ("time", "1-2:3:4:5"),
    ("time", "1-"),
    ("time", "-5"),
    ("time", "soon"),
    ("time", "INFINITE"),
    ("time", "UNLIMITED"),
    ("time", "1h"),
    ("time", " 30"),
    ("time", "30.5"),
    ("time", "1000000001"),
    ("time", 30.0),
    ("time", False),
    ("time", None),
    ("partition", ""),
    ("partition", "bad name"),
    ("partition", "-x"),
    ("partition", "a,,b"),
    ("partition", "a,"),
    ("partition", "a:b"),
    ("partition", 3),
    ("partition", ["short"]),
    ("sbatch_opts", "--qos=long"),  # a list, also for one option
    ("sbatch_opts", None),
    ("sbatch_opts", ["oops"]),
    ("sbatch_opts", ["--qos=long", "oops"]),  # not only the first is checked
    ("sbatch_opts", ["--qos", "long"]),
    ("sbatch_opts", ["--qos long"]),
    ("sbatch_opts", ["-N 2"]),
    ("sbatch_opts", ["-"]),
    ("sbatch_opts", ["--"]),
    ("sbatch_opts", ["--=x"]),
    ("sbatch_opts", ["--comment=a\nb"]),
    ("sbatch_opts", [3]),
    ("sbatch_opts", ["--exclusive", "--array=1-3"]),
    ("sbatch_opts", ["--dependency=afterok:1"]),
    ("sbatch_opts", ["--dep=afterok:1"]),  # sbatch takes abbreviations
    ("sbatch_opts", ["--out=x"]),
    ("sbatch_opts", ["--parsable"]),
    ("sbatch_opts", ["--wrap=true"]),
    ("sbatch_opts", ["--wait"]),
    ("sbatch_opts", ["--kill-on-invalid-dep=yes"]),
    ("sbatch_opts", ["--test-only"]),
    ("sbatch_opts", ["-a1-3"]),
    ("sbatch_opts", ["-d", "afterok:1"]),
    ("sbatch_opts", ["-ofile"]),
    ("sbatch_opts", ["-e"]),
    ("sbatch_opts", ["-W"]),
]


def _generated(count: int) -> list[tuple[str, Any]]:
    """Values where a hand-written table has gaps: strings over the grammar's characters,
    and well-formed shapes with fields at the edges (0, 23/24, 59/60, many digits)."""
    rng = random.Random(9)  # fixed: the same table on every run
    edges = ["0", "00", "1", "9", "23", "24", "59", "60", "61", "99", "007", "1" * 12, "1" * 13]
    units = ["", "K", "M", "G", "T", "k", "g", "t", "GB", "GiB", "gb", "Gi", "B"]
    out: list[tuple[str, Any]] = []
    for _ in range(count):
        shape = rng.randrange(4)
        if shape == 0:
            out.append(("mem", "".join(rng.choice("0123456789.KMGTkgiBb") for _ in range(9))))
        elif shape == 1:
            out.append(
                ("time", "".join(rng.choice("0123456789:-") for _ in range(rng.randint(1, 9))))
            )
        elif shape == 2:
            decimals = rng.choice(["", "." + rng.choice(edges)])
            out.append(("mem", rng.choice(edges) + decimals + rng.choice(units)))
        else:
            fields = ":".join(rng.choice(edges) for _ in range(rng.randint(1, 3)))
            out.append(("time", rng.choice(["", rng.choice(edges) + "-"]) + fields))
    return out


def _python(key: str, value: Any) -> dict[str, Any]:
    try:
        result = hints.check(key, value)
    except hints.OptionError as exc:
        return {"error": str(exc), **({"index": exc.index} if exc.index is not None else {})}
    except ValueError as exc:
        return {"error": str(exc)}
    return {"value": list(result) if isinstance(result, tuple) else result}


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Any, dict[str, Any]]]:
    """Every (key, value) of the tables with what the Nix validator says of it."""
    entries = [(k, v) for k, v, _ in VALID] + INVALID + _generated(1500)
    path = tmp_path_factory.mktemp("hints") / "table.json"
    path.write_text(json.dumps([{"key": k, "value": v} for k, v in entries]))
    expr = (
        f"let r = import {REPO / 'nix/lib/resources.nix'}; "
        f"in map (e: r.check e.key e.value) (builtins.fromJSON (builtins.readFile {path}))"
    )
    out = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [(k, v, nix) for (k, v), nix in zip(entries, json.loads(out), strict=True)]


def test_nix_and_python_agree_on_every_value(table):
    disagree = [(k, v, nix, _python(k, v)) for k, v, nix in table if nix != _python(k, v)]
    assert disagree == []


def test_valid_values_normalise_as_documented(table):
    expected = {(k, json.dumps(v)): n for k, v, n in VALID}
    for key, value, nix in table[: len(VALID)]:
        assert nix == {"value": expected[(key, json.dumps(value))]}, (key, value)


def test_invalid_values_are_refused(table):
    refused = table[len(VALID) : len(VALID) + len(INVALID)]
    assert [(k, v) for k, v, nix in refused if "error" in nix] == INVALID


def test_a_refused_option_is_located():
    assert _python("sbatch_opts", ["--qos=long", "oops"])["index"] == 1


def test_the_model_accepts_what_the_build_writes_and_the_build_input_alike():
    """The lab carries normalised values; the build's input spellings give the same."""
    assert Resources(mem=512, time=30) == Resources(mem="512M", time="00:30:00")
    normalised = Resources(cpus=2, mem="4G", time="1-00", sbatch_opts=["--qos=x"])
    assert Resources.model_validate(normalised.model_dump(exclude_none=True)) == normalised
    assert normalised.mem == 4096 and normalised.time == 1440


@pytest.mark.parametrize(
    "hints_json",
    [{"gpus": 1}, {"mem": "0"}, {"time": "99:99"}, {"sbatch_opts": ["--qos=x", "-d1"]}],
)
def test_the_model_refuses_what_the_build_refuses(hints_json):
    with pytest.raises(ValueError):
        Resources.model_validate(hints_json)
