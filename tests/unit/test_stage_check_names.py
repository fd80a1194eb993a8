"""check-stage.sh's package hint with the package set's names (REPX_PACKAGE_NAMES_FILE):
only packages that exist are suggested (issue 11)."""

from __future__ import annotations

from test_stage_check import Result, run_check, sandbox  # noqa: F401 (the fixture)

ADVICE = "is not provided by runDependencies; add the package that provides it"
PREFIX = "repx: stage 'simulate' (stages/simulate.nix:14:{}): command"


def names_file(tmp_path, *names: str):
    path = tmp_path / "names"
    path.write_text("\n".join(names))
    return str(path)


def test_only_existing_packages_are_suggested(sandbox, tmp_path):  # noqa: F811
    names = names_file(tmp_path, "bash", "gnuplot", "python3", "python3Packages")
    body = "gnuplot -e 1 | frobnicate | Rscript x.R\n"
    result = run_check(sandbox, tmp_path, body, REPX_PACKAGE_NAMES_FILE=names)
    assert result == Result(
        1,
        "",
        [
            f"{PREFIX.format(1)} 'gnuplot' {ADVICE} (e.g. pkgs.gnuplot) to runDependencies",
            f"{PREFIX.format(16)} 'frobnicate' {ADVICE} to runDependencies",
            f"{PREFIX.format(29)} 'Rscript' {ADVICE} to runDependencies",  # no pkgs.R here
        ],
    )


def test_host_path_hint_names_only_existing_packages(sandbox, tmp_path):  # noqa: F811
    names = names_file(tmp_path, "python3")
    body = "/usr/bin/python3 -V\n/opt/frobnicate\n"
    result = run_check(sandbox, tmp_path, body, severity="error", REPX_PACKAGE_NAMES_FILE=names)
    assert result.stderr == [
        "repx: stage 'simulate' (stages/simulate.nix:14:1): '/usr/bin/python3' is a program "
        "outside the Nix store, which the job cannot rely on; add the package that provides it "
        "(e.g. pkgs.python3) to runDependencies and call it by name ('python3')",
        "repx: stage 'simulate' (stages/simulate.nix:15:1): '/opt/frobnicate' is a program "
        "outside the Nix store, which the job cannot rely on; add the package that provides it "
        "to runDependencies and call it by name ('frobnicate')",
    ]


def test_names_are_whole_lines(sandbox, tmp_path):  # noqa: F811
    # 'gnuplot' is not a package because 'gnuplot-qt' or 'xgnuplot' is
    names = names_file(tmp_path, "gnuplot-qt", "xgnuplot")
    result = run_check(sandbox, tmp_path, "gnuplot\n", REPX_PACKAGE_NAMES_FILE=names)
    assert result.stderr == [f"{PREFIX.format(1)} 'gnuplot' {ADVICE} to runDependencies"]


def test_unreadable_names_file_is_a_usage_error(sandbox, tmp_path):  # noqa: F811
    result = run_check(sandbox, tmp_path, "gnuplot\n", REPX_PACKAGE_NAMES_FILE="/nonexistent")
    assert result.code == 2
    assert result.stderr == [
        "repx: check-stage: cannot read REPX_PACKAGE_NAMES_FILE '/nonexistent'"
    ]
