"""The builder of a stage's script derivation, against a trait of Nix's build loop (real nix).

Nix 2.8 takes the end of the builder's log pipe (its stdout and stderr) for the end of the
build and kills the builder with SIGKILL if it is still there: "failed due to signal 9".
``bash -c`` runs a last external command in its own place, and GNU chmod (the toolchain's
coreutils) closes stdout and stderr in an exit handler before it exits, so a builder ending
in ``chmod`` lost that race in about 1 build in 5 here (seen as ``repx build`` failing on a
``repx-stage-*`` derivation). The stage builder must end with a builtin.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from runlab import build_lab, require_nix

pytestmark = pytest.mark.slow

# a builder that closes its log pipe and is still running afterwards (as chmod is, briefly)
CLOSES_ITS_LOG = """
let
  pkgs = (builtins.getFlake "{nixpkgs}").legacyPackages.x86_64-linux;
in
derivation {{
  name = "closes-its-log-{tag}";
  system = "x86_64-linux";
  builder = "${{pkgs.bash}}/bin/bash";
  PATH = "${{pkgs.coreutils}}/bin";
  args = [ "-c" "echo > $out; exec >&- 2>&-; sleep 5" ];
}}
"""


def test_nix_kills_a_builder_that_closes_its_log_before_it_exits():
    require_nix()
    nixpkgs = os.environ.get("REPX_TEST_NIXPKGS", "nixpkgs")
    expr = CLOSES_ITS_LOG.format(nixpkgs=nixpkgs, tag=time.time_ns())
    proc = subprocess.run(
        ["nix", "build", "--no-link", "--impure", "--expr", expr],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "failed due to signal 9 (Killed)" in proc.stderr, proc.stderr


def _last_command(script: str) -> str:
    return script.rsplit("&&", maxsplit=1)[-1].rsplit(";", maxsplit=1)[-1].split(maxsplit=1)[0]


def test_stage_script_builders_end_with_a_builtin():
    lab = build_lab("template")
    # the lab's store/ holds its closure under the store paths' names
    stages = {f"/nix/store/{name}" for name in os.listdir(lab / "store") if "-repx-stage-" in name}
    assert len(stages) == 3  # simulate, aggregate, plot
    for path in stages:
        drv = subprocess.run(
            ["nix-store", "--query", "--deriver", path],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        shown = subprocess.run(
            ["nix", "show-derivation", drv], capture_output=True, text=True, check=True
        ).stdout
        [derivation] = json.loads(shown).values()
        assert derivation["args"][0] == "-c"
        assert _last_command(derivation["args"][1]) in ("exit", ":", "true"), derivation["args"]
