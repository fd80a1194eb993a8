"""config.toml: targets, defaults, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from repx.cli import app
from repx.config import (
    DEFAULT_BASE,
    Config,
    RuntimeKind,
    SchedulerKind,
    Target,
    config_dir,
    load_config,
    resolve_base,
    select_target,
)
from repx.errors import UsageError


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_missing_default_file_is_empty(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_dir() == tmp_path / "repx"
    assert load_config() == Config()


def test_targets(tmp_path):
    path = write(
        tmp_path,
        'default_target = "local"\n'
        '[targets.local]\nbase = "~/runs"\nruntime = "native"\nconcurrency = 3\n'
        '[targets.hpc]\nscheduler = "slurm"\n[targets.hpc.slurm]\npartition = "short"\n',
    )
    config = load_config(path)
    name, target = select_target(config, None)
    assert name == "local"
    assert target.runtime is RuntimeKind.NATIVE and target.concurrency == 3
    assert resolve_base(None, target) == Path.home() / "runs"
    _, hpc = select_target(config, "hpc")
    assert hpc.scheduler is SchedulerKind.SLURM and hpc.slurm.partition == "short"


def test_base_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_base(None, Target()) == tmp_path / DEFAULT_BASE
    assert resolve_base(Path("b"), Target(base=Path("/t"))) == tmp_path / "b"
    assert resolve_base(None, Target(base=Path("/t"))) == Path("/t")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("targets = [", "invalid TOML"),
        ('[targets.x]\nruntime = "lxc"\n', "targets.x.runtime"),
        ("[targets.x]\nconcurrency = 0\n", "targets.x.concurrency"),
        ("[targets.x]\nbogus = 1\n", "targets.x.bogus"),
        ('default_target = "y"\n[targets.x]\n', "default_target: no target 'y'"),
    ],
)
def test_errors_name_the_file_and_field(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UsageError, match=message) as err:
        load_config(path)
    assert str(path) in err.value.message
    assert err.value.exit_code == 2


def test_unknown_target_lists_targets(tmp_path):
    config = load_config(write(tmp_path, "[targets.a]\n[targets.b]\n"))
    with pytest.raises(UsageError, match=r"unknown target 'c' \(targets: a, b\)"):
        select_target(config, "c")


def test_impure_target_options(tmp_path):
    path = write(
        tmp_path,
        '[targets.t]\nmount_host_paths = true\nmount_paths = ["/data/x", "/data/y"]\n',
    )
    target = load_config(path).targets["t"]
    assert target.mount_host_paths is True
    assert target.mount_paths == ("/data/x", "/data/y")
    assert Target().mount_host_paths is False and Target().mount_paths == ()


@pytest.mark.parametrize("value", ['""', '"  "'])
def test_empty_base_is_an_error_naming_the_file_and_field(tmp_path, value):
    path = write(tmp_path, f"[targets.t]\nbase = {value}\n")
    with pytest.raises(UsageError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path) in text and "targets.t.base" in text and "is empty" in text


def test_empty_base_on_the_command_line_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPX_CONFIG_DIR", str(tmp_path))
    commands = (["run"], ["status"], ["log", "x"], ["list", "jobs"], ["show", "job", "x"], ["viz"])
    for command in commands:
        result = CliRunner().invoke(app, [*command, "--base", ""])
        assert result.exit_code == 2, result.output
        assert "--base" in result.output and "is empty" in result.output
    assert not (tmp_path / "repx-store.json").exists()
