"""Stand-ins for sbatch, squeue, scontrol and scancel, for unit tests of the exact calls.

Each call appends ``{"argv": [...], "script": "..."}`` to ``calls.jsonl``; ``sbatch`` prints
ids 1001, 1002, … (or fails with ``sbatch_error`` for the call numbers in
``fail_sbatch``); ``squeue`` prints ``squeue.txt``; ``scontrol show config`` prints
``MaxArraySize`` (and ``MaxJobCount``); ``sinfo`` prints one partition. The same code paths run against the real SLURM cluster in
``tests/integration/test_run_slurm.py``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

_PROGRAM = r"""#!{python}
import json, os, sys
state = {state!r}
name = os.path.basename(sys.argv[0])
argv = [name, *sys.argv[1:]]
record = {{"argv": argv}}
if name == "sbatch" and argv[-1].endswith(".sh"):
    with open(argv[-1]) as f:
        record["script"] = f.read()
with open(os.path.join(state, "calls.jsonl"), "a") as f:
    f.write(json.dumps(record) + "\n")
config = json.load(open(os.path.join(state, "config.json")))
if name == "sbatch":
    calls = [json.loads(l) for l in open(os.path.join(state, "calls.jsonl"))]
    n = sum(1 for c in calls if c["argv"][0] == "sbatch")
    if n in config.get("fail_sbatch", []):
        sys.stderr.write("sbatch: error: " + config.get("sbatch_error", "boom") + "\n")
        sys.exit(1)
    print(f"{{1000 + n}};cluster")
elif name == "squeue":
    path = os.path.join(state, "squeue.txt")
    if os.path.exists(path):
        sys.stdout.write(open(path).read())
elif name == "scontrol":
    if argv[1:2] == ["ping"]:
        print("Slurmctld(primary) at fake is UP")
    elif argv[1:3] == ["show", "config"]:
        print(f"MaxArraySize            = {{config.get('max_array_size', 1001)}}")
        if "max_job_count" in config:
            print(f"MaxJobCount             = {{config['max_job_count']}}")
elif name == "sinfo":
    print(config.get("sinfo", "debug*|0/16/0/16|infinite"))
elif name == "scancel":
    pass
"""


@dataclass
class FakeSlurm:
    """The fake commands' directory and their records."""

    bin: Path
    state: Path

    def configure(self, **config: object) -> None:
        """Set ``fail_sbatch`` (call numbers), ``sbatch_error``, ``max_array_size``,
        ``max_job_count`` (printed only when set), ``sinfo``
        (its output line: ``partition*|alloc/idle/other/total|maxtime``)."""
        (self.state / "config.json").write_text(json.dumps(config))

    def set_queue(self, lines: list[str]) -> None:
        """What squeue prints (``id|array_id|task|STATE|reason`` lines)."""
        (self.state / "squeue.txt").write_text("".join(f"{line}\n" for line in lines))

    def calls(self, program: str | None = None) -> list[dict]:
        """Recorded calls, optionally of one program."""
        path = self.state / "calls.jsonl"
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text().splitlines()]
        return [r for r in records if program is None or r["argv"][0] == program]


def install(directory: Path) -> FakeSlurm:
    """Write the fake commands into ``directory/bin`` (put it first on PATH)."""
    bin_dir = directory / "bin"
    state = directory / "state"
    bin_dir.mkdir(parents=True)
    state.mkdir()
    for name in ("sbatch", "squeue", "scontrol", "scancel", "sinfo"):
        path = bin_dir / name
        path.write_text(_PROGRAM.format(python=sys.executable, state=os.fspath(state)))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    fake = FakeSlurm(bin_dir, state)
    fake.configure()
    return fake
