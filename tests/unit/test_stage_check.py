"""Tests of nix/lib/check/check-stage.sh, the build-time stage checker.

The checker runs inside a Nix build sandbox with only a static bash, busybox
applets, jq and shellcheck.  These tests reproduce that: /bin/bash-static runs
the checker with PATH holding nothing but busybox applet links, jq and
shellcheck, and an otherwise empty environment.

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
    r"^repx: stage 'simulate' \(stages/simulate\.nix\): command '([^']+)' is not provided by "
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
    if not (busybox and jq and shellcheck):
        pytest.skip("busybox, jq and shellcheck are needed")
    root = tmp_path_factory.mktemp("sandbox")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        (bin_dir / applet).symlink_to(busybox)
    (bin_dir / "jq").symlink_to(jq)
    (bin_dir / "shellcheck").symlink_to(shellcheck)

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


# --- Step 1: ShellCheck --------------------------------------------------------


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


# --- Step 2: commands must come from runDependencies -----------------------------


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
        pytest.param("./run.sh; /usr/bin/frob; ../bin/frob2 a; ~/bin/frob3\n", id="paths"),
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
    prefix = "repx: stage 'simulate' (stages/simulate.nix): command"
    advice = "is not provided by runDependencies; add the package that provides it"
    assert result == Result(
        1,
        "",
        [
            f"{prefix} 'python3' {advice} (e.g. pkgs.python3) to runDependencies",
            f"{prefix} 'Rscript' {advice} (e.g. pkgs.R) to runDependencies",
        ],
    )


def test_empty_body_passes(sandbox, tmp_path):
    assert run_check(sandbox, tmp_path, "") == Result(0, "", [])
    assert run_check(sandbox, tmp_path, "# only a comment\n") == Result(0, "", [])
