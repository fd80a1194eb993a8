"""Tests of nix/lib/check/check-stage.sh, the build-time stage checker.

The checker runs inside a Nix build sandbox with only a static bash, jq, shfmt
and shellcheck.  These tests reproduce that: /bin/bash-static runs the checker
with PATH holding nothing but busybox applet links, jq, shfmt and shellcheck,
and an otherwise empty environment.

REPX_TEST_SHELLCHECK selects the shellcheck binary (default: the one on PATH).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKER = Path(__file__).resolve().parents[2] / "nix" / "lib" / "check" / "check-stage.sh"
BASH_STATIC = Path("/bin/bash-static")

# Three generated lines, like the preamble repx writes before the user's body.
PREAMBLE = "#!/usr/bin/env bash\nset -euo pipefail\nrepx_log() { printf '%s\\n' \"$*\" >&2; }\n"
PREAMBLE_LINES = 3

# Executables the job gets on PATH in these tests (REPX_DEP_PATH): the
# wrapper commands, so that only the commands they run are in question.
DEP_TOOLS = ("present", "xargs", "env", "timeout", "nice", "nohup", "find", "sort", "stdbuf")

MISSING_RE = re.compile(
    r"^repx: stage 'simulate' \(stages/simulate\.nix:\d+:\d+\): command '([^']+)' is not provided by "
    r"runDependencies; add the package that provides it \(e\.g\. pkgs\.[^)]+\) to runDependencies$"
)


@dataclass(frozen=True)
class Sandbox:
    bin: Path  # PATH of the checker: busybox applets, jq, shellcheck
    deps: Path  # REPX_DEP_PATH of the checked job
    shellcheck: Path


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    if not BASH_STATIC.is_file():
        pytest.skip("/bin/bash-static is not installed")
    busybox = shutil.which("busybox")
    jq = shutil.which("jq")
    shellcheck = os.environ.get("REPX_TEST_SHELLCHECK") or shutil.which("shellcheck")
    shfmt = shutil.which("shfmt")
    if not (busybox and jq and shellcheck and shfmt):
        pytest.skip("busybox, jq, shellcheck and shfmt are needed")
    root = tmp_path_factory.mktemp("sandbox")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        (bin_dir / applet).symlink_to(busybox)
    (bin_dir / "jq").symlink_to(jq)
    (bin_dir / "shellcheck").symlink_to(shellcheck)
    (bin_dir / "shfmt").symlink_to(shfmt)

    deps = root / "deps"
    deps.mkdir()
    for tool in DEP_TOOLS:
        exe = deps / tool
        exe.write_text("#!/bin/false\n")
        exe.chmod(0o755)
    # Neither a non-executable file nor a directory provides a command.
    (deps / "notexec").write_text("data\n")
    (deps / "adir").mkdir()
    return Sandbox(bin=bin_dir, deps=deps, shellcheck=bin_dir / "shellcheck")


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: list[str]


def run_check(
    sandbox: Sandbox,
    tmp_path: Path,
    body: str,
    *,
    preamble: str = PREAMBLE,
    preamble_lines: int = PREAMBLE_LINES,
    body_line: int = 14,
    severity: str = "info",
    **extra: str,
) -> Result:
    script = tmp_path / "stage.sh"
    script.write_text(preamble + body)
    env = {
        "PATH": str(sandbox.bin),
        "REPX_STAGE": "simulate",
        "REPX_STAGE_FILE": "stages/simulate.nix",
        "REPX_PREAMBLE_LINES": str(preamble_lines),
        "REPX_BODY_LINE": str(body_line),
        "REPX_DEP_PATH": f"{sandbox.deps}:/nonexistent",
        "REPX_SHELLCHECK": str(sandbox.shellcheck),
        "REPX_SHELLCHECK_SEVERITY": severity,
        **extra,
    }
    proc = subprocess.run(
        [str(BASH_STATIC), str(CHECKER), str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr.splitlines())


def missing(sandbox: Sandbox, tmp_path: Path, body: str, **extra: str) -> list[str]:
    """Commands reported missing; every stderr line must be such a report.

    ShellCheck is limited to errors here: these bodies exercise the command
    analysis, and some (backticks, unused variables) draw style notes.
    """
    result = run_check(sandbox, tmp_path, body, severity="error", **extra)
    names = []
    for line in result.stderr:
        match = MISSING_RE.match(line)
        assert match, f"unexpected stderr line: {line!r}"
        names.append(match.group(1))
    assert result.stdout == ""
    assert result.code == (1 if names else 0), result
    return names


# --- ShellCheck --------------------------------------------------------------


def test_clean_script_passes_silently(sandbox, tmp_path):
    body = (
        'name="${1:-world}"\nprintf "hello %s\\n" "$name"\n'
        "repx_log finished\npresent --flag | sort\n"
    )
    assert run_check(sandbox, tmp_path, body) == Result(0, "", [])


FINDINGS_BODY = (
    "# a comment line\n"  # body line 1 = file line 14
    'echo "ok"\n'
    "echo $1\n"  # body line 3 -> file line 16, column 6
    "x=1\n"  # body line 4 -> file line 17, column 1
)
SC2086 = "ShellCheck SC2086 (info): Double quote to prevent globbing and word splitting."
SC2034 = "ShellCheck SC2034 (warning): x appears unused. Verify use (or export if used externally)."


def hint(count: int, severity: str = "info") -> str:
    return (
        f"repx: stage 'simulate': {count} ShellCheck finding(s) at severity '{severity}' or "
        "above; fix them, or silence a deliberate one with a '# shellcheck disable=SCnnnn' "
        "comment on the line before it"
    )


def test_findings_are_mapped_to_stage_file_lines(sandbox, tmp_path):
    result = run_check(sandbox, tmp_path, FINDINGS_BODY)
    assert result.code == 1
    assert result.stderr == [
        f"repx: stage 'simulate' (stages/simulate.nix:16:6): {SC2086}",
        f"repx: stage 'simulate' (stages/simulate.nix:17:1): {SC2034}",
        hint(2),
    ]


def test_body_indent_shifts_columns(sandbox, tmp_path):
    result = run_check(sandbox, tmp_path, FINDINGS_BODY, REPX_BODY_INDENT="4")
    assert result.stderr[:2] == [
        f"repx: stage 'simulate' (stages/simulate.nix:16:10): {SC2086}",
        f"repx: stage 'simulate' (stages/simulate.nix:17:5): {SC2034}",
    ]


def test_unknown_body_line_reports_script_lines(sandbox, tmp_path):
    result = run_check(sandbox, tmp_path, FINDINGS_BODY, body_line=0)
    assert result.code == 1
    assert result.stderr == [
        f"repx: stage 'simulate' (stages/simulate.nix, script line 6): {SC2086}",
        f"repx: stage 'simulate' (stages/simulate.nix, script line 7): {SC2034}",
        hint(2),
    ]


def test_preamble_and_epilogue_findings_are_named_generated(sandbox, tmp_path):
    preamble = "#!/usr/bin/env bash\necho $0\n"
    body = 'echo "body"\necho $1\n'  # the second line is declared generated
    result = run_check(
        sandbox, tmp_path, body, preamble=preamble, preamble_lines=2, REPX_BODY_LINES="1"
    )
    assert result.code == 1
    assert result.stderr == [
        f"repx: stage 'simulate' (stages/simulate.nix, generated preamble line 2): {SC2086}",
        f"repx: stage 'simulate' (stages/simulate.nix, generated epilogue line 4): {SC2086}",
        hint(2),
    ]


def test_severity_threshold_is_honoured(sandbox, tmp_path):
    result = run_check(sandbox, tmp_path, FINDINGS_BODY, severity="warning")
    assert result.code == 1
    assert result.stderr == [
        f"repx: stage 'simulate' (stages/simulate.nix:17:1): {SC2034}",
        hint(1, "warning"),
    ]
    body = FINDINGS_BODY.replace("x=1", "export x=1")
    assert run_check(sandbox, tmp_path, body, severity="warning") == Result(0, "", [])


def test_parse_error_is_a_finding(sandbox, tmp_path):
    result = run_check(sandbox, tmp_path, 'echo "ok"\nif true; then\n  echo "no fi"\n')
    assert result.code == 1
    assert len(result.stderr) >= 2
    assert all(
        re.match(
            r"^repx: stage 'simulate' \(stages/simulate\.nix:1[4-7]:\d+\): "
            r"ShellCheck SC1\d{3} \(error\): ",
            line,
        )
        for line in result.stderr[:-1]
    ), result.stderr
    assert result.stderr[-1] == hint(len(result.stderr) - 1)


def test_bad_environment_is_a_usage_error(sandbox, tmp_path):
    result = run_check(sandbox, tmp_path, 'echo "ok"\n', REPX_PREAMBLE_LINES="three")
    assert result.code == 2
    assert result.stderr == [
        "repx: check-stage: REPX_PREAMBLE_LINES must be a non-negative integer, got 'three'"
    ]


def test_missing_shfmt_is_a_usage_error(sandbox, tmp_path):
    result = run_check(sandbox, tmp_path, 'echo "ok"\n', REPX_SHFMT="/nonexistent/shfmt")
    assert result.code == 2
    assert result.stderr == ["repx: check-stage: shfmt (/nonexistent/shfmt) not found"]


# --- Commands must come from runDependencies -----------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("frob --verbose input.txt\n", ["frob"], id="plain"),
        pytest.param("present | frob | sort\n", ["frob"], id="pipeline"),
        pytest.param(
            "present && frob || frob2; frob3 &\nwait\n", ["frob", "frob2", "frob3"], id="and-or"
        ),
        pytest.param('x="$(frob a)"\necho "$x"\n', ["frob"], id="command-substitution"),
        pytest.param('echo "sum: $(present | frob)"\n', ["frob"], id="substitution-in-string"),
        pytest.param('x=`frob a`\necho "$x"\n', ["frob"], id="backticks"),
        pytest.param('x=`frob # ; frob2\n`\necho "$x"\n', ["frob"], id="comment-in-backticks"),
        pytest.param("if frob; then present; elif frob2; then :; fi\n", ["frob", "frob2"], id="if"),
        pytest.param(
            "while frob; do frob2; done\nuntil frob3; do :; done\n",
            ["frob", "frob2", "frob3"],
            id="loops",
        ),
        pytest.param(
            'for f in a b; do frob "$f"; done\nfor ((i = 0; i < 2; i++)); do frob2; done\n',
            ["frob", "frob2"],
            id="for-body",
        ),
        pytest.param(
            'case "$1" in a) frob ;; *) frob2 ;; esac\nfrob3\n',
            ["frob", "frob2", "frob3"],
            id="case-body",
        ),
        pytest.param("( frob ); { frob2; }\n! frob3\n", ["frob", "frob2", "frob3"], id="groups"),
        pytest.param("printf '%s\\n' a | xargs -0 -n 1 -I{} frob {}\n", ["frob"], id="xargs"),
        pytest.param("env -u HOME X=1 frob\n", ["frob"], id="env"),
        pytest.param('X=1 Y="$(present)" frob > out.txt 2>&1\n', ["frob"], id="assignment-prefix"),
        pytest.param("timeout -s KILL 5 frob\ntimeout 10 frob2\n", ["frob", "frob2"], id="timeout"),
        pytest.param("nice -n 5 nohup frob\n", ["frob"], id="nice-nohup"),
        pytest.param(
            "time frob\ncommand frob2\nexec frob3\ntime -p frob4\n",
            ["frob", "frob2", "frob3", "frob4"],
            id="prefixes",
        ),
        pytest.param("stdbuf -o L frob\n", ["frob"], id="stdbuf"),
        pytest.param(
            "find . -name '*.c' -exec frob {} \\; -exec frob2 {} +\n",
            ["frob", "frob2"],
            id="find-exec",
        ),
        pytest.param("sort <(frob) >(frob2)\n", ["frob", "frob2"], id="process-substitution"),
        pytest.param(
            '[[ -n "$(frob)" ]] && (( $(frob2) > 1 )) && frob3\n',
            ["frob", "frob2", "frob3"],
            id="substitution-in-tests",
        ),
        pytest.param(
            "cat <<EOF\nvalue $(frob)\nEOF\n", ["cat", "frob"], id="unquoted-heredoc-substitution"
        ),
        pytest.param('run() {\n  frob "$@"\n}\nrun a\n', ["frob"], id="function-body"),
        pytest.param(
            "outer() {\n  function inner { frob; }\n  inner\n}\nouter\n",
            ["frob"],
            id="nested-function",
        ),
        # bash leaves backquoted text as written, so these reach the tokenizer raw.
        pytest.param(
            'x=`function f1 { frob; }; function f2() { frob2; }; f1; f2`\necho "$x"\n',
            ["frob", "frob2"],
            id="raw-function-keyword",
        ),
        pytest.param("frob; frob2; frob\n", ["frob", "frob2"], id="reported-once-in-order"),
        pytest.param("> out.txt frob\n", ["frob"], id="leading-redirection"),
        pytest.param("'frob' a; \\frob2 b\n", ["frob", "frob2"], id="quoted-name"),
        pytest.param("present \\\n  --flag | \\\n  frob\n", ["frob"], id="continuations"),
    ],
)
def test_missing_command_is_reported(sandbox, tmp_path, body, expected):
    assert missing(sandbox, tmp_path, body) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            'echo a; printf "%s\\n" b; read -r y <<<"c"; echo "$y"; test -f x; [ -d y ]\n'
            'declare -a arr=(1); mapfile -t lines < /dev/null; echo "${arr[0]}" "${lines[@]}"\n'
            "set -x; shift 0; trap 'echo bye' EXIT; type echo; hash -r\n"
            "cd /; pwd; true; false || :\n",
            id="builtins",
        ),
        pytest.param(
            "if true; then :; elif false; then :; else :; fi\nwhile false; do :; done\n"
            "until true; do :; done\n{ :; }\n! false\ntime :\n",
            id="keywords",
        ),
        pytest.param(
            "helper() { :; }\nhelper\nfunction other { helper; later; }\nlater() { :; }\nother\n",
            id="local-functions",
        ),
        pytest.param("repx_log starting\n", id="preamble-function"),
        pytest.param(
            './run.sh; /nix/store/abc-frob/bin/frob; ../bin/frob2 a; ~/bin/frob3; "$out/bin/x"\n',
            id="paths",
        ),
        pytest.param(
            'cmd=frob; $cmd; "$cmd" a; ${cmd}; tools=(frob2); "${tools[0]}"\n', id="dynamic-names"
        ),
        pytest.param(
            'echo "frob and $(printf frob2)" \'frob3 | frob4\' "x; frob5"\n', id="strings"
        ),
        pytest.param(
            "cat_it() { :; }\ncat_it <<EOF\nfrob here\nEOF\ncat_it <<'EOF'\n$(frob2)\nEOF\n"
            'cat_it <<-"X"\n\tfrob3 | frob4\n\tX\n',
            id="heredocs",
        ),
        pytest.param("# frob at the start\necho ok # frob2 at the end\n", id="comments"),
        pytest.param(
            'case "$1" in frob|frob2) : ;; (frob3) echo x ;; *frob4*) ;; esac\n', id="case-patterns"
        ),
        pytest.param(
            "frob=1; arr=(frob2 frob3); x=$(echo frob4); export frob5=1\n"
            'echo "$frob" "${arr[@]}" "$x"\n',
            id="assignments",
        ),
        pytest.param(
            'x=frob2\n[[ -f frob && frob == "$x" ]]\n[[ $x =~ ^(frob|frob3)$ || ( -d frob4 ) ]]\n'
            "[[ a < frob5 ]]\n",
            id="test-brackets",
        ),
        pytest.param(
            'i=0\n(( i++ ))\n(( frob + 1 ))\n(( (i) || frob2 ))\ny=$(( (i + 1) * 2 ))\necho "$y"\n',
            id="arithmetic",
        ),
        pytest.param("shopt -s extglob\necho @(frob|frob2).txt !(frob3|frob4)\n", id="extglob"),
        pytest.param(
            'for x in frob frob2 frob3; do echo "$x"; done\nfor ((i = 0; i < 2; i++)); do :; done\n'
            "select s in frob4; do break; done\n",
            id="for-lists",
        ),
        pytest.param(
            "echo x > frob\necho y 2>&1 >> frob2 <<< frob3\nexec 3> frob4\n",
            id="redirection-targets",
        ),
        pytest.param("command -v frob >/dev/null || echo none\n", id="command-v-lookup"),
        pytest.param("present --flag | sort\nxargs present < /dev/null\n", id="provided-commands"),
    ],
)
def test_not_reported(sandbox, tmp_path, body):
    assert missing(sandbox, tmp_path, body) == []


def test_allowed_commands_are_accepted(sandbox, tmp_path):
    body = "frob a | frob2 | frob3\n"
    assert missing(sandbox, tmp_path, body, REPX_ALLOWED_COMMANDS="frob frob3") == ["frob2"]


def test_non_executables_do_not_provide_commands(sandbox, tmp_path):
    assert missing(sandbox, tmp_path, "notexec; adir\n") == ["notexec", "adir"]


def test_empty_dep_path_reports_everything(sandbox, tmp_path):
    assert missing(sandbox, tmp_path, "present | sort\n", REPX_DEP_PATH="") == ["present", "sort"]


def test_package_hint_for_known_commands(sandbox, tmp_path):
    result = run_check(sandbox, tmp_path, "python3 -c 'print(1)' | Rscript x.R\n")
    prefix = "repx: stage 'simulate' (stages/simulate.nix:14:{}): command"
    advice = "is not provided by runDependencies; add the package that provides it"
    assert result == Result(
        1,
        "",
        [
            f"{prefix.format(1)} 'python3' {advice} (e.g. pkgs.python3) to runDependencies",
            f"{prefix.format(25)} 'Rscript' {advice} (e.g. pkgs.R) to runDependencies",
        ],
    )


def test_missing_command_names_its_first_use(sandbox, tmp_path):
    body = 'echo "start"\n  frob a\nfrob b\n'
    advice = "is not provided by runDependencies; add the package that provides it"
    expected = f"command 'frob' {advice} (e.g. pkgs.frob) to runDependencies"
    result = run_check(sandbox, tmp_path, body, REPX_BODY_INDENT="4")
    assert result.stderr == [f"repx: stage 'simulate' (stages/simulate.nix:15:7): {expected}"]
    result = run_check(sandbox, tmp_path, body, body_line=0)
    assert result.stderr == [
        f"repx: stage 'simulate' (stages/simulate.nix, script line 5): {expected}"
    ]


def test_unknown_command_comes_before_shellcheck_findings(sandbox, tmp_path):
    # ShellCheck knows jq's syntax ($x is jq's, not the shell's) but not a typo's.
    result = run_check(sandbox, tmp_path, "jqq -r '.a | $x' data.json\n")
    assert result.code == 1
    assert result.stderr == [
        "repx: stage 'simulate' (stages/simulate.nix:14:1): command 'jqq' is not provided by "
        "runDependencies; add the package that provides it (e.g. pkgs.jqq) to runDependencies",
        "repx: stage 'simulate' (stages/simulate.nix:14:8): ShellCheck SC2016 (info): "
        "Expressions don't expand in single quotes, use double quotes for that.",
        hint(1),
    ]


def with_tools(tmp_path: Path, *names: str) -> str:
    """A bin directory holding (fake) programs ``names``, for REPX_DEP_PATH."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for name in names:
        exe = tools / name
        exe.write_text("#!/bin/false\n")
        exe.chmod(0o755)
    return str(tools)


def test_a_typo_of_a_command_the_job_has_is_named_first(sandbox, tmp_path):
    deps = f"{sandbox.deps}:{with_tools(tmp_path, 'jq', 'python3')}"
    result = run_check(
        sandbox, tmp_path, "jqq -r '.a | $x' data.json\npyhton3 -c 1\n", REPX_DEP_PATH=deps
    )
    assert result.code == 1
    assert result.stderr[:2] == [
        "repx: stage 'simulate' (stages/simulate.nix:14:1): command 'jqq' is not found in the"
        " stage's packages (runDependencies); did you mean 'jq'? (if not, add the package that"
        " provides it to runDependencies)",
        "repx: stage 'simulate' (stages/simulate.nix:15:1): command 'pyhton3' is not found in the"
        " stage's packages (runDependencies); did you mean 'python3'? (if not, add the package"
        " that provides it to runDependencies)",
    ]
    assert "ShellCheck SC2016" in result.stderr[2]  # after the cause
    # a command a package is known by is not a typo ('tar' of 'tr'), and short names need
    # a closer match ('fnd' is one edit from find, 'nc' two from nice)
    deps = f"{sandbox.deps}:{with_tools(tmp_path, 'tr')}"
    assert missing(sandbox, tmp_path, "tar x\nnc y\n", REPX_DEP_PATH=deps) == ["tar", "nc"]
    typo = run_check(sandbox, tmp_path, "fnd .\n", severity="error")
    assert "did you mean 'find'?" in typo.stderr[0]


def test_a_parameter_in_single_quotes_is_a_warning(sandbox, tmp_path):
    deps = f"{sandbox.deps}:{with_tools(tmp_path, 'jq')}"
    body = (
        "jq '.n == ${PARAMS[n]}' x.json\necho 'read\n${INPUTS[data]}' \"${PARAMS[n]}\"\n"
        "read -r -d '' x || true\n"  # an empty '' (shfmt gives it no Value)
    )
    result = run_check(sandbox, tmp_path, body, severity="error", REPX_DEP_PATH=deps)
    # the build goes on: the warnings are the check's output (stdout), nothing on stderr
    assert (result.code, result.stderr) == (0, [])
    assert result.stdout.splitlines() == [
        "repx: warning: stage 'simulate' (stages/simulate.nix:14:11): ${parameters.n} is inside"
        " single quotes, where bash does not expand it: the job gets the literal text"
        " ${PARAMS[n]}; close the quotes around it ('...'\"${parameters.n}\"'...') or use double"
        " quotes",
        "repx: warning: stage 'simulate' (stages/simulate.nix:16:1): ${inputs.data} is inside"
        " single quotes, where bash does not expand it: the job gets the literal text"
        " ${INPUTS[data]}; close the quotes around it ('...'\"${inputs.data}\"'...') or use"
        " double quotes",
    ]
    # with a failure, the warnings come first on stderr too
    failed = run_check(sandbox, tmp_path, body + "frob\n", severity="error", REPX_DEP_PATH=deps)
    assert failed.code == 1
    assert [line.split(": ", 2)[1] for line in failed.stderr] == [
        "warning",
        "warning",
        "stage 'simulate' (stages/simulate.nix:18:1)",
    ]


def test_both_checks_report_in_order(sandbox, tmp_path):
    result = run_check(sandbox, tmp_path, "echo $1\nfrob\n/usr/bin/frob2\n")
    assert result.code == 1
    assert [line.split(": ", 2)[1] for line in result.stderr[:-1]] == [
        "stage 'simulate' (stages/simulate.nix:15:1)",
        "stage 'simulate' (stages/simulate.nix:16:1)",
        "stage 'simulate' (stages/simulate.nix:14:6)",
    ]
    assert "ShellCheck SC2086" in result.stderr[2]
    assert result.stderr[-1] == hint(1)


# --- Absolute paths to programs outside the Nix store ----------------------------


def host_paths(sandbox: Sandbox, tmp_path: Path, body: str, **extra: str) -> list[str]:
    """The (location, path, advice) of every host-path report; no other stderr line."""
    result = run_check(sandbox, tmp_path, body, severity="error", **extra)
    found = []
    for line in result.stderr:
        match = re.match(
            r"^repx: stage 'simulate' \(stages/simulate\.nix:(\d+:\d+)\): '([^']+)' is (.*)$", line
        )
        assert match, f"unexpected stderr line: {line!r}"
        found.append(match.groups())
    assert result.code == (1 if found else 0), result
    return found


OUTSIDE = "a program outside the Nix store, which the job cannot rely on; "


def test_absolute_program_paths_are_flagged(sandbox, tmp_path):
    body = (
        "/usr/bin/python3 run.py\n"
        'x=$("/opt/tool/bin/tool" --version)\n'
        "/home/me/bin/frob \"$x\" | /bin/sh -c 'echo'\n"
        "/usr/local/bin/present\n"
    )
    assert host_paths(sandbox, tmp_path, body) == [
        (
            "14:1",
            "/usr/bin/python3",
            OUTSIDE + "add the package that provides it (e.g. "
            "pkgs.python3) to runDependencies and call it by name ('python3')",
        ),
        (
            "15:5",
            "/opt/tool/bin/tool",
            OUTSIDE + "add the package that provides it (e.g. "
            "pkgs.tool) to runDependencies and call it by name ('tool')",
        ),
        (
            "16:1",
            "/home/me/bin/frob",
            OUTSIDE + "add the package that provides it (e.g. "
            "pkgs.frob) to runDependencies and call it by name ('frob')",
        ),
        (
            "16:26",
            "/bin/sh",
            OUTSIDE + "add the package that provides it (e.g. "
            "pkgs.bash) to runDependencies and call it by name ('sh')",
        ),
        (
            "17:1",
            "/usr/local/bin/present",
            OUTSIDE + "runDependencies provides 'present': call it by name",
        ),
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("env X=1 /usr/bin/frob\n", [("14:9", "/usr/bin/frob")], id="after-env"),
        pytest.param(
            "printf x | xargs -n 1 /bin/frob\n", [("14:23", "/bin/frob")], id="after-xargs"
        ),
        pytest.param(
            "exec /opt/frob\ncommand /opt/frob2\n",
            [("14:6", "/opt/frob"), ("15:9", "/opt/frob2")],
            id="after-exec-command",
        ),
        pytest.param(
            "find . -exec /usr/bin/frob {} +\n", [("14:14", "/usr/bin/frob")], id="find-exec"
        ),
        pytest.param(
            'v=1\n"/opt/frob-$v/bin/frob"\n', [("15:1", "/opt/frob-...")], id="partly-literal"
        ),
        pytest.param(
            "if true; then\n  /usr/bin/frob\nfi\n/usr/bin/frob\n",
            [("15:3", "/usr/bin/frob")],
            id="reported-once",
        ),
        pytest.param(
            "/usr/bin/env python3 x.py\n",
            [("14:1", "/usr/bin/env")],
            id="env-by-path",
        ),
    ],
)
def test_host_program_paths_in_any_position(sandbox, tmp_path, body, expected):
    found = host_paths(sandbox, tmp_path, body, REPX_ALLOWED_COMMANDS="python3")
    assert [(where, path) for where, path, _ in found] == expected


def test_program_run_by_env_path_is_checked_too(sandbox, tmp_path):
    result = run_check(sandbox, tmp_path, "/usr/bin/env frob\n", severity="error")
    assert [line.split("): ", 1)[1].split(";")[0] for line in result.stderr] == [
        "'/usr/bin/env' is a program outside the Nix store, which the job cannot rely on",
        "command 'frob' is not provided by runDependencies",
    ]


def test_sourcing_a_host_file_is_flagged(sandbox, tmp_path):
    directive = "# shellcheck source=/dev/null\n"
    body = f"{directive}source /etc/profile\n{directive}. /opt/conda/etc/profile.d/conda.sh\n"
    result = run_check(sandbox, tmp_path, body, severity="error")
    advice = (
        "is sourced from outside the Nix store, which the job cannot rely on; put the file into "
        'the experiment and source it from the store ("${./file.sh}")'
    )
    assert result == Result(
        1,
        "",
        [
            f"repx: stage 'simulate' (stages/simulate.nix:15:8): '/etc/profile' {advice}",
            f"repx: stage 'simulate' (stages/simulate.nix:17:3): "
            f"'/opt/conda/etc/profile.d/conda.sh' {advice}",
        ],
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("/nix/store/0000-frob/bin/frob a\n", id="store-path"),
        pytest.param('"$out/bin/frob"; "${HOME}/bin/frob2"; $PWD/frob3\n', id="variable-paths"),
        pytest.param("/tmp/frob.sh\n", id="job-private-tmp"),
        pytest.param("present > /dev/null < /etc/hosts\ncat_() { :; }\n", id="redirections"),
        pytest.param("present /usr/bin/frob /opt/x\n", id="arguments"),
        pytest.param('echo /usr/bin/frob; x=/opt/frob; echo "$x"\n', id="strings"),
        pytest.param("cat_() { :; }\ncat_ <<EOF\n/usr/bin/frob\nEOF\n", id="heredoc-text"),
        pytest.param("command -v /usr/bin/frob || :\n", id="command-v-lookup"),
    ],
)
def test_paths_that_are_fine(sandbox, tmp_path, body):
    assert host_paths(sandbox, tmp_path, body) == []


def test_allowed_host_path(sandbox, tmp_path):
    body = "/usr/bin/frob; /usr/bin/frob2\n"
    found = host_paths(sandbox, tmp_path, body, REPX_ALLOWED_COMMANDS="/usr/bin/frob")
    assert [path for _, path, _ in found] == ["/usr/bin/frob2"]


def test_allow_directive_accepts_names_and_paths(sandbox, tmp_path):
    body = (
        "# repx: allow /usr/bin/nvidia-smi frob\n"
        "/usr/bin/nvidia-smi -L\nfrob\n"
        "/opt/frob2  # repx: allow /opt/frob2\n"
        "/usr/bin/frob3; frob4  # repx: allowed frob4 (not the directive)\n"
    )
    result = run_check(sandbox, tmp_path, body, severity="error")
    assert [line.split("): ", 1)[1].split(" ")[:2] for line in result.stderr] == [
        ["'/usr/bin/frob3'", "is"],
        ["command", "'frob4'"],
    ]


# --- What the parser sees that a tokenizer would not -----------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param('select s in a b; do frob "$s"; break; done\n', ["frob"], id="select-body"),
        pytest.param("coproc worker { frob; }\ncoproc frob2\n", ["frob", "frob2"], id="coproc"),
        pytest.param(
            'case "$1" in a) frob ;& b) frob2 ;;& *) frob3 ;; esac\n',
            ["frob", "frob2", "frob3"],
            id="case-fallthrough",
        ),
        pytest.param("present |& frob\n{ frob2; } 2>&1\n", ["frob", "frob2"], id="pipe-stderr"),
        pytest.param(
            'for x in $(frob); do :; done\ncase $(frob2) in *) ;; esac\necho "$x"\n',
            ["frob", "frob2"],
            id="substitution-in-lists",
        ),
        pytest.param(
            'while read -r l; do frob "$l"; done < <(frob2)\n', ["frob", "frob2"], id="read-loop"
        ),
        pytest.param(
            "if ! frob; then :; fi\nuntil frob2 || frob3; do :; done\n",
            ["frob", "frob2", "frob3"],
            id="conditions",
        ),
        pytest.param(
            'f() {\n  local x\n  x=$(frob)\n  export Y="$(frob2)"\n  echo "$x"\n}\nf\n',
            ["frob", "frob2"],
            id="declarations",
        ),
        pytest.param(
            'echo "${x:-$(frob)}" $(( $(frob2) + 1 ))\na=( $(frob3) )\necho "${a[@]}"\n',
            ["frob", "frob2", "frob3"],
            id="nested-expansions",
        ),
        pytest.param('read -r y <<<"$(frob)"\necho "$y"\n', ["frob"], id="here-string"),
        pytest.param(
            "cat_() { :; }\ncat_ <<-EOF\n\t$(frob) `frob2`\n\tEOF\n",
            ["frob", "frob2"],
            id="tab-heredoc-substitution",
        ),
        pytest.param(
            'x=$(cat_() { :; }; frob; (frob2; $(frob3)))\necho "$x"\n',
            ["frob", "frob2", "frob3"],
            id="nested-subshells",
        ),
        pytest.param(
            "exec -a name frob\nnice -10 frob2\ntimeout --signal=KILL 5s frob3\n"
            "env -i PATH=/x frob4\ncommand -p frob5\nxargs -I{} -P 2 frob6 {}\n"
            "stdbuf -oL frob7\ntime -p nice frob8\n",
            ["frob", "frob2", "frob3", "frob4", "frob5", "frob6", "frob7", "frob8"],
            id="wrapper-options",
        ),
        pytest.param("env X=1 nice -n 2 timeout 5 frob\n", ["frob"], id="nested-wrappers"),
        pytest.param(
            "f1() { later; }\nlater() { :; }\nfunction f2() { :; }\nf1; f2\n",
            [],
            id="functions-anywhere",
        ),
        pytest.param('"frob"; fr\\ob2; f"ro"b3\n', ["frob", "frob2", "frob3"], id="quoting"),
    ],
)
def test_commands_found_by_the_parser(sandbox, tmp_path, body, expected):
    assert missing(sandbox, tmp_path, body) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('$(echo frob) a\n"$(printf frob2)"\n', id="substituted-names"),
        pytest.param("builtin echo x; builtin printf y\n", id="builtin-prefix"),
        pytest.param("fr*b; fro?2\n", id="globs"),
        pytest.param("X=1\nY=2 Z=3\nexport X Y Z\n", id="assignments-only"),
        pytest.param("exec 3>&1\nexec\n", id="exec-redirections-only"),
    ],
)
def test_not_reported_by_the_parser(sandbox, tmp_path, body):
    assert missing(sandbox, tmp_path, body) == []


def test_construct_only_bash_parses_is_reported(sandbox, tmp_path):
    # bash runs `$((echo a) | cat)` as a command substitution; shfmt reads arithmetic.
    body = '# shellcheck disable=SC1102\nx=$((echo a) | cat)\necho "$x"\n'
    result = run_check(sandbox, tmp_path, body)
    assert result == Result(
        1,
        "",
        [
            "repx: stage 'simulate' (stages/simulate.nix:15:11): the dependency analysis cannot "
            "parse the script (shfmt: not a valid arithmetic operator: a); write that construct "
            "another way (bash may accept it, but its commands cannot be checked)"
        ],
    )
    # Without the directive ShellCheck's own, clearer, parse error is all that is reported.
    result = run_check(sandbox, tmp_path, body.split("\n", 1)[1])
    assert [line for line in result.stderr if "shfmt" in line] == []
    assert "SC1102" in result.stderr[0]


def test_empty_body_passes(sandbox, tmp_path):
    assert run_check(sandbox, tmp_path, "") == Result(0, "", [])
    assert run_check(sandbox, tmp_path, "# only a comment\n") == Result(0, "", [])
