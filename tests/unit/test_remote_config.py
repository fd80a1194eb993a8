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


def test_a_target_without_address_runs_here(tmp_path):
    assert _remote(tmp_path, '[targets.t]\nbase = "/x"\n') is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('address = "me@h"', "needs base_path"),
        ('address = "me@h"\nbase_path = "relative/dir"', "absolute directory"),
        ('address = "me@h"\nbase_path = "/x"\ndefault_scheduler = "slurm"', "not supported yet"),
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
