"""util.hash32 — the base-32 digest in every job id: the low 160 bits of the sha256 of
"nix-output:" + the string, in Nix's base 32 (what builtins.placeholder prints)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile

import pytest

from conftest import REPO
from labfactory import nix_base32

pytestmark = pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed")

SAMPLES = [
    "",
    "repx-job/1",
    "a\nb\tc",
    "naïve ∑ 参数",
    *(f'repx-job/1\n/nix/store/x-stage\n{{"seed":{i}}}' for i in range(500)),
]


def test_hash32_is_the_low_160_bits_of_the_placeholder_digest():
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(SAMPLES, f)
        f.flush()
        expr = (
            f"let u = import {REPO}/nix/lib/util.nix; in"
            f" map u.hash32 (builtins.fromJSON (builtins.readFile {f.name}))"
        )
        result = subprocess.run(
            ["nix", "eval", "--impure", "--json", "--expr", expr],
            capture_output=True,
            text=True,
            check=True,
        )
    digests = json.loads(result.stdout)
    expected = [
        nix_base32(hashlib.sha256(b"nix-output:" + s.encode()).digest())[-32:] for s in SAMPLES
    ]
    assert digests == expected
    assert len(set(digests)) == len(SAMPLES)
    assert all(len(d) == 32 for d in digests)
