"""What a lab image costs per revision: containerMode "none" against "unified" and "per-run".

The shell lab of bench_revisions.py, built once per mode (warm), then rebuilt after a
one-parameter change (one more sweep value, the fastest of REPEATS). For each mode: the
rebuild's seconds, the store growth of the revision (NAR size of the store paths it added
to the closure: the lab itself and its new job scripts), the lab's own size, and the image's
share of it: the `images/` entries of the lab and the OCI layout podman and docker load
(one store path per package set, shared by every lab and revision: its size is what the
first image-building lab on a machine adds, once). The issue's target: an image costs
little per revision — no copy of the closure, layers shared between revisions.

    .venv/bin/python bench/bench_images.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_revisions import (
    FLAKE,
    REPEATS,
    REPO,
    SHELL_STAGE,
    _build,
    _closure_sizes,
    _flake_copy,
    _write_lab,
)

MODES = ("none", "unified", "per-run")


def _tree_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def bench_mode(mode: str, workdir: Path, override: list[str]) -> dict[str, float]:
    directory = workdir / mode
    flake = FLAKE.replace("runs = [", f'containerMode = "{mode}";\n      runs = [')

    def write(values: str) -> None:
        _write_lab(directory, SHELL_STAGE, values)
        (directory / "flake.nix").write_text(flake)

    write("1 2")
    _, lab = _build(directory, override)  # warm: host-tools, scripts, the OCI layout
    first = _closure_sizes(lab)
    best: tuple[float, Path] | None = None
    second: dict[str, int] = {}
    changed = lab
    for n in range(REPEATS):
        write(" ".join(str(v) for v in range(1, n + 4)))
        seconds, lab = _build(directory, override)
        if best is None or seconds < best[0]:
            best = (seconds, lab)
        if n == 0:
            second, changed = _closure_sizes(lab), lab
    assert best is not None
    seconds, _ = best
    lab = changed  # the sizes: of the first change
    growth = sum(size for path, size in second.items() if path not in first)
    images = lab / "images"
    oci = [p for p in second if p.endswith("-repx-oci-image")]
    return {
        "rebuild_s": round(seconds, 2),
        "growth_kib": round(growth / 1024, 1),
        "lab_kib": round(second[str(lab)] / 1024, 1),
        "images_kib": round(_tree_bytes(images) / 1024, 1) if images.is_dir() else 0.0,
        "oci_kib": round(sum(second[p] for p in oci) / 1024, 1),
        "oci_added_per_revision": sum(1 for p in oci if p not in first),
        "closure_mib": round(sum(second.values()) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON at the end")
    parser.add_argument("--repx", type=Path, default=REPO, help="the repx checkout to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="repx-bench-images-") as tmp:
        workdir = Path(tmp)
        (workdir / "repx-flake").mkdir()
        repx_flake = _flake_copy(workdir / "repx-flake", args.repx)
        override = ["--override-input", "repx", f"path:{repx_flake}"]
        rows = {mode: bench_mode(mode, workdir, override) for mode in MODES}
    base = rows["none"]
    for mode, row in rows.items():
        print(
            f"{mode:>8}: rebuild {row['rebuild_s']:5.2f} s, store growth per revision"
            f" {row['growth_kib']} KiB (lab {row['lab_kib']} KiB, of which images/"
            f" {row['images_kib']} KiB); OCI layout {row['oci_kib']} KiB shared"
            f" ({row['oci_added_per_revision']} added by the revision);"
            f" closure {row['closure_mib']} MiB",
            flush=True,
        )
    for mode in MODES[1:]:
        row = rows[mode]
        print(
            f"{mode} vs none: rebuild {row['rebuild_s'] / max(base['rebuild_s'], 1e-9):.2f}x,"
            f" +{row['growth_kib'] - base['growth_kib']:.1f} KiB per revision"
        )
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
