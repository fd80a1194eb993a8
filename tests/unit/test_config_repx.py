"""RepX's config.toml is read: its keys become ours; what repx cannot do yet is one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from repx.config import (
    ArtifactStore,
    RuntimeKind,
    SchedulerKind,
    Target,
    load_config,
    select_target,
)
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
    assert target.runtime is RuntimeKind.PODMAN  # the first type listed
    assert target.slurm.partition == "short"
    assert target.mount_paths == ("/data",) and target.base == Path("/scratch/me")


@pytest.mark.parametrize("kind", list(RuntimeKind))
def test_every_execution_type_of_repx_is_a_runtime(tmp_path, kind):
    _, target = load(
        tmp_path,
        f'submission_target = "t"\n[targets.t]\ndefault_execution_type = "{kind}"\n'
        f'[targets.t.local]\nexecution_types = ["{kind}"]\n',
    )
    assert target.runtime is kind
    _, first = load(
        tmp_path,
        f'submission_target = "t"\n[targets.t.local]\nexecution_types = ["{kind}", "bwrap"]\n',
    )
    assert first.runtime is kind


def test_our_own_keys_win_nothing_silently(tmp_path):
    _, target = load(tmp_path, '[targets.a]\nbase = "/x"\nbase_path = "/x"\n')
    assert target.base is None  # no default target: built-in defaults
    with pytest.raises(UsageError, match=r"targets\.a\.base_path: and base differ"):
        load(tmp_path, '[targets.a]\nbase = "/x"\nbase_path = "/y"\n')


@pytest.mark.parametrize(
    ("text", "key", "why"),
    [
        ('artifact_store = "scratch"', "targets.t.artifact_store", "'shared' or 'node-local'"),
        ('artifact_store = "node-local"', "targets.t", "needs node_local_path"),
        ('node_local_path = "scratch"', "targets.t.node_local_path", "not an absolute path"),
        ('node_local_path = ""', "targets.t.node_local_path", "not an absolute path"),
        (
            "[targets.t.local]\nexecution_types = []",
            "targets.t.local.execution_types",
            "an empty list",
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


def test_node_local_artifacts_as_repx_writes_them(tmp_path):
    _, target = load(
        tmp_path,
        'submission_target = "hpc"\n[targets.hpc]\nbase_path = "/shared/me"\n'
        'default_scheduler = "slurm"\nartifact_store = "node-local"\n'
        'node_local_path = "~/scratch/repx"\n',
    )
    assert target.artifact_store is ArtifactStore.NODE_LOCAL
    assert target.node_local_path == Path.home() / "scratch" / "repx"  # "~" as RepX expands it
    _, shared = load(tmp_path, 'submission_target = "t"\n[targets.t]\nartifact_store = "shared"\n')
    assert shared == Target()  # the default
