"""SSH targets in config.toml: RepX's keys, what an SSH target must give, the plan's format."""

from __future__ import annotations

from pathlib import Path

import pytest

from repx.config import RuntimeKind, SchedulerKind, load_config, select_target
from repx.errors import UsageError
from repx.services.remote import Remote, remote_of
from repx.services.remote_plan import FIELD_SEPARATOR, _fields

REPX_SSH = """\
submission_target = "hpc"

[targets.hpc]
address = "me@login.hpc.example.org"
base_path = "/scratch/me/repx/"
default_scheduler = "local"
default_execution_type = "native"
  [targets.hpc.local]
  execution_types = ["native", "bwrap"]
  local_concurrency = 6
"""


def _remote(tmp_path: Path, text: str) -> Remote | None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return remote_of(*select_target(load_config(path), None))


def test_repx_ssh_target_is_read_as_it_is(tmp_path):
    remote = _remote(tmp_path, REPX_SSH)
    assert remote == Remote(
        name="hpc",
        address="me@login.hpc.example.org",
        base_path="/scratch/me/repx",
        scheduler=SchedulerKind.LOCAL,
        runtime=RuntimeKind.NATIVE,
        concurrency=6,
    )
    assert remote.base == "/scratch/me/repx/base"


def test_an_ssh_target_with_slurm_passes_its_sbatch_options(tmp_path):
    text = (
        '[targets.t]\naddress = "me@login"\nbase_path = "/x"\ndefault_scheduler = "slurm"\n'
        '[targets.t.slurm]\npartition = "short"\nsbatch_options = ["--qos=normal"]\n'
    )
    path = tmp_path / "config.toml"
    path.write_text(text)
    remote = remote_of(*select_target(load_config(path), "t"))
    assert remote is not None and remote.scheduler is SchedulerKind.SLURM
    assert remote.sbatch == ("--partition=short", "--qos=normal")


def test_a_target_without_address_runs_here(tmp_path):
    assert _remote(tmp_path, '[targets.t]\nbase = "/x"\n') is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('address = "me@h"', "needs base_path"),
        ('address = "me@h"\nbase_path = "relative/dir"', "absolute directory"),
    ],
)
def test_what_an_ssh_target_needs_is_one_line(tmp_path, text, why):
    with pytest.raises(UsageError) as err:
        _remote(tmp_path, f'default_target = "t"\n[targets.t]\n{text}\n')
    assert why in err.value.message and "\n" not in err.value.message
    assert "targets.t" in err.value.message


def test_plan_fields_refuse_what_the_runner_cannot_split():
    assert _fields(["bwrap", "--ro-bind", "/a b", "/a b"], "j") == FIELD_SEPARATOR.join(
        ["bwrap", "--ro-bind", "/a b", "/a b"]
    )
    for bad in ("a\nb", f"a{FIELD_SEPARATOR}b", "a\0b"):
        with pytest.raises(UsageError, match="control character"):
            _fields(["x", bad], "j")


def test_delta_sends_what_changed_and_removes_what_must_be_made_anew():
    from repx.services.remote_delta import METADATA, Listing, delta  # noqa: PLC0415

    old = Listing(
        lab_id="a",
        entries={
            "jobs/x/parameters.json": "f:111:0",
            "jobs/x/bin/s": "f:222:1",
            "jobs/y/parameters.json": "f:333:0",
            "store/p": "l:/nix/store/p",
            "jobs/x/out": "d",
            **{f"jobs/z{i}/parameters.json": "f:0:0" for i in range(10)},
        },
    )
    new = Listing(
        lab_id="b",
        entries={
            "jobs/x/parameters.json": "f:999:0",  # content only: the old copy is the basis
            "jobs/x/bin/s": "f:222:0",  # mode changed: made anew
            "store/p": "l:/nix/store/q",  # another target: made anew
            "jobs/x/out": "d",
            "jobs/w/parameters.json": "f:444:0",  # new
            **{f"jobs/z{i}/parameters.json": "f:0:0" for i in range(10)},
        },
    )
    change = delta(old, new)
    assert change is not None
    assert set(change.send) == {
        "jobs/x/parameters.json",
        "jobs/x/bin/s",
        "store/p",
        "jobs/w/parameters.json",
        METADATA,
    }
    assert change.remove == ("jobs/x/bin/s", "jobs/y/parameters.json", "store/p")
    everything_new = Listing(lab_id="c", entries={f"n{i}": "f:1:0" for i in range(20)})
    assert delta(old, everything_new) is None  # a plain rsync is as good


def test_listings_are_remembered_per_target(tmp_path, monkeypatch):
    from repx.services.remote_delta import Listing, recall, remember  # noqa: PLC0415

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    remember("me@h:/x", Listing(lab_id="old", entries={"a": "d"}))
    assert recall("me@h:/x", ["gone", "old"]) == Listing(lab_id="old", entries={"a": "d"})
    assert recall("me@other:/x", ["old"]) is None
