"""RepX's config.toml is read: its keys become ours; what repx cannot do yet is one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from repx.config import RuntimeKind, SchedulerKind, Target, load_config, select_target
from repx.errors import UsageError

#: RepX's own default config.toml (written by RepX on first start), in substance.
REPX_DEFAULT = """\
theme = "default"
submission_target = "local"
default_scheduler = "local"

[logging]
max_files = 50
max_age_days = 7

[targets]
  [targets.local]
  base_path = "~/Desktop/repx-store"
  default_scheduler = "local"
  default_execution_type = "bwrap"
    [targets.local.local]
    execution_types = ["bwrap", "native"]
    local_concurrency = 4
"""


def load(tmp_path: Path, text: str) -> tuple[str | None, Target]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return select_target(load_config(path), None)


def test_repx_default_config(tmp_path):
    name, target = load(tmp_path, REPX_DEFAULT)
    assert name == "local"
    assert target == Target(
        base=Path("~/Desktop/repx-store"),
        runtime=RuntimeKind.BWRAP,
        concurrency=4,
        scheduler=SchedulerKind.LOCAL,
    )


def test_repx_slurm_target_keeps_our_slurm_options(tmp_path):
    name, target = load(
        tmp_path,
        'submission_target = "hpc"\ndefault_scheduler = "slurm"\n'
        '[targets.hpc]\nbase_path = "/scratch/me"\nmount_paths = ["/data"]\n'
        "[targets.hpc.slurm]\n"
        'execution_types = ["podman", "native"]\npartition = "short"\n',
    )
    assert name == "hpc"
    assert target.scheduler is SchedulerKind.SLURM  # RepX's top-level default_scheduler
    assert target.runtime is RuntimeKind.NATIVE  # the first supported type listed
    assert target.slurm.partition == "short"
    assert target.mount_paths == ("/data",) and target.base == Path("/scratch/me")


def test_our_own_keys_win_nothing_silently(tmp_path):
    _, target = load(tmp_path, '[targets.a]\nbase = "/x"\nbase_path = "/x"\n')
    assert target.base is None  # no default target: built-in defaults
    with pytest.raises(UsageError, match=r"targets\.a\.base_path: and base differ"):
        load(tmp_path, '[targets.a]\nbase = "/x"\nbase_path = "/y"\n')


@pytest.mark.parametrize(
    ("text", "key", "why"),
    [
        ('node_local_path = "/tmp"', "targets.t.node_local_path", "not supported yet"),
        ('artifact_store = "node-local"', "targets.t.artifact_store", "not supported yet"),
        ('default_execution_type = "docker"', "targets.t.default_execution_type", "docker"),
        (
            '[targets.t.local]\nexecution_types = ["podman"]',
            "targets.t.local.execution_types",
            "podman: not supported yet",
        ),
        (
            'default_execution_type = "native"\n[targets.t.local]\nexecution_types = ["bwrap"]',
            "targets.t.local.execution_types",
            "does not list the target's default_execution_type 'native'",
        ),
        (
            '[targets.t.local]\nexecution_types = ["lxc"]',
            "targets.t.local.execution_types",
            "unknown execution type 'lxc'",
        ),
        ("[targets.t.local]\nthreads = 2", "targets.t.local.threads", "not a key"),
    ],
)
def test_what_repx_cannot_do_yet_is_one_line_naming_file_and_key(tmp_path, text, key, why):
    path = tmp_path / "config.toml"
    path.write_text(f"[targets.t]\n{text}\n")
    with pytest.raises(UsageError) as err:
        load_config(path)
    message = err.value.message
    assert message.startswith(f"{path}: {key}: "), message
    assert why in message and "\n" not in message
    assert err.value.exit_code == 2
