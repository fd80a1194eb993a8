"""NixLogParser on recorded Nix 2.8 ``--log-format internal-json`` streams."""

from __future__ import annotations

import json

from repx.nix_log import (
    BuildStatus,
    MissingAttribute,
    NixLogParser,
    drv_name,
    find_missing_attribute,
    trim_plain_stderr,
)

DRV_A = "/nix/store/jz2c5fn5pj2yrycv8ibx0dszdsw96ix2-repx-stage-simulate-1.0.drv"
DRV_B = "/nix/store/dx9lvvkpab6r8qi865bavj0bwzzyhb0g-repx-lab-demo.drv"


def event(**fields: object) -> str:
    return "@nix " + json.dumps(fields)


def start_build(act_id: int, drv: str) -> str:
    return event(
        action="start",
        id=act_id,
        level=3,
        type=105,
        text=f"building '{drv}'",
        fields=[drv, "", 1, 1],
    )


def progress(done: int, expected: int, running: int = 0, failed: int = 0) -> str:
    return event(action="result", id=2, type=105, fields=[done, expected, running, failed])


def log_line(act_id: int, text: str) -> str:
    return event(action="result", id=act_id, type=101, fields=[text])


def error(msg: str) -> str:
    return event(action="msg", level=0, msg=f"\u001b[31;1merror:\u001b[0m {msg}", raw_msg=msg)


def feed(parser: NixLogParser, lines: list[str]) -> NixLogParser:
    for line in lines:
        parser.feed(line)
    return parser


def test_status_follows_builds():
    statuses: list[BuildStatus] = []
    parser = NixLogParser(on_status=statuses.append)
    feed(
        parser,
        [
            event(action="start", id=1, level=4, type=0, text="copying '/tmp/x'"),
            event(action="start", id=2, level=0, type=104, text=""),
            progress(0, 2),
            start_build(10, DRV_A),
            progress(0, 2, 1),
            log_line(10, "hello"),
            event(action="stop", id=10),
            progress(1, 2),
            start_build(11, DRV_B),
            event(action="stop", id=11),
            progress(2, 2),
        ],
    )
    described = [s.describe() for s in statuses]
    assert described == [
        "building 0/2",
        "building 0/2: repx-stage-simulate-1.0",
        "building 0/2",
        "building 1/2",
        "building 1/2: repx-lab-demo",
        "building 1/2",
        "building 2/2",
    ]
    assert BuildStatus().describe() == "evaluating"
    assert BuildStatus(0, 3, ("a", "b")).describe() == "building 0/3: b (+1)"


def test_builder_failure_puts_repx_lines_first():
    parser = feed(
        NixLogParser(),
        [
            start_build(10, DRV_A),
            log_line(10, "checking"),
            log_line(
                10, "repx: stage 'simulate' (stages/simulate.nix:14:5): ShellCheck SC2086 (info): x"
            ),
            log_line(
                10,
                "repx: stage 'simulate' (stages/simulate.nix:15:5): command 'python3' is missing",
            ),
            event(action="stop", id=10),
            error(f"builder for '\u001b[35;1m{DRV_A}\u001b[0m' failed with exit code 1"),
            error(f"1 dependencies of derivation '{DRV_B}' failed to build"),
        ],
    )
    assert parser.failure_report().splitlines() == [
        "repx: stage 'simulate' (stages/simulate.nix:14:5): ShellCheck SC2086 (info): x",
        "repx: stage 'simulate' (stages/simulate.nix:15:5): command 'python3' is missing",
        f"error: builder for '{DRV_A}' failed with exit code 1",
        f"error: 1 dependencies of derivation '{DRV_B}' failed to build",
    ]


def test_builder_failure_without_repx_lines_shows_last_log_lines():
    lines = [start_build(10, DRV_A)] + [log_line(10, f"line {i}") for i in range(15)]
    lines += [event(action="stop", id=10), error(f"builder for '{DRV_A}' failed with exit code 2")]
    report = feed(NixLogParser(), lines).failure_report().splitlines()
    assert report[0] == f"error: builder for '{DRV_A}' failed with exit code 2"
    assert report[1] == "last 10 log lines of repx-stage-simulate-1.0:"
    assert report[2:] == [f"> line {i}" for i in range(5, 15)]


def test_evaluation_errors_from_throw_and_abort():
    thrown = feed(NixLogParser(), [error("repx: stages/a.nix (stage a): unknown attribute 'foo'")])
    assert thrown.failure_report() == "repx: stages/a.nix (stage a): unknown attribute 'foo'"
    aborted = feed(
        NixLogParser(),
        [
            error("evaluation aborted with the following error message: 'repx: stages/b.nix: bad'"),
            event(
                action="msg",
                level=0,
                msg="(use '--show-trace' to show detailed location information)",
            ),
        ],
    )
    assert aborted.failure_report() == "repx: stages/b.nix: bad"


def test_plain_nix_error_keeps_its_block():
    msg = "undefined variable 'x'\n\n       at /nix/store/abc-source/flake.nix:12:48:\n\n  12| x"
    report = feed(NixLogParser(), [error(msg)]).failure_report()
    assert report.splitlines()[0] == "error: undefined variable 'x'"
    assert "flake.nix:12:48" in report


def test_warnings_are_passed_on_dirty_tree_warning_only_when_verbose():
    shown: list[str] = []
    lines = [
        event(action="msg", level=1, msg="warning: Git tree '/tmp/e' is dirty"),
        event(action="msg", level=1, msg="warning: creating lock file '/tmp/e/flake.lock'"),
        event(action="msg", level=4, msg="evaluating file 'x'"),
        start_build(10, DRV_A),
        log_line(10, "build output"),
    ]
    feed(NixLogParser(on_log_line=shown.append), lines)
    assert shown == ["warning: creating lock file '/tmp/e/flake.lock'"]
    shown.clear()
    feed(NixLogParser(on_log_line=shown.append, verbose=True), lines)
    assert shown == [
        "warning: Git tree '/tmp/e' is dirty",
        "warning: creating lock file '/tmp/e/flake.lock'",
        "building repx-stage-simulate-1.0",
        "repx-stage-simulate-1.0> build output",
    ]


def test_plain_lines_and_garbage_are_tolerated():
    shown: list[str] = []
    parser = feed(
        NixLogParser(on_log_line=shown.append),
        ["plain text from nix", "@nix {not json", "@nix [1, 2]", event(action="unknown")],
    )
    assert shown == ["plain text from nix", "@nix {not json"]
    assert parser.failure_report() == "plain text from nix\n@nix {not json"


def test_drv_name():
    assert drv_name(DRV_A) == "repx-stage-simulate-1.0"
    assert drv_name("/nix/store/jz2c5fn5pj2yrycv8ibx0dszdsw96ix2-lab") == "lab"
    assert drv_name("odd") == "odd"


def test_trim_plain_stderr():
    stderr = (
        "warning: Git tree '/x' is dirty\n"
        "error: evaluation aborted with the following error message: 'repx: stages/a.nix: bad'\n"
        "(use '--show-trace' to show detailed location information)\n"
    )
    assert trim_plain_stderr(stderr) == "repx: stages/a.nix: bad"
    assert trim_plain_stderr("noise\nerror: something\n  more\n") == "error: something\n  more"


# Recorded from Nix 2.8: `pkgs.pythonn3` in a stage's runDependencies.
MISSING_ATTR_MSG = (
    "\u001b[31;1merror:\u001b[0m attribute '\u001b[35;1mpythonn3\u001b[0m' missing\n\n"
    "       \u001b[34;1mat \u001b[35;1m/nix/store/lcj6pa8k43kgb6libwf36pvvl2whhmb4-source/nix/"
    "stage-hello.nix:8:5\u001b[0m:\n\n"
    "            7|   runDependencies = [\n"
    "            8|     pkgs.pythonn3\n"
    "             |     \u001b[31;1m^\u001b[0m\n"
    "            9|   ];\n"
    "       Did you mean \u001b[35;1mpython3\u001b[0m?"
)


def test_missing_attribute_is_recognised():
    parser = feed(
        NixLogParser(),
        [
            event(action="msg", level=0, msg=MISSING_ATTR_MSG, line=8, column=5),
            event(action="msg", level=0, msg="(use '--show-trace' to show detailed location)"),
        ],
    )
    assert find_missing_attribute(parser.errors) == MissingAttribute(
        name="pythonn3",
        file="/nix/store/lcj6pa8k43kgb6libwf36pvvl2whhmb4-source/nix/stage-hello.nix",
        line=8,
        column=5,
        source="    pkgs.pythonn3",
        nix_suggests="python3",
    )


def test_undefined_variable_is_recognised_with_nix_guesses():
    msg = (
        "error: undefined variable 'pythn'\n\n"
        "       at /nix/store/lcj6pa8k43kgb6libwf36pvvl2whhmb4-source/s.nix:7:34:\n\n"
        "            7|   runDependencies = with pkgs; [ pythn ];\n"
        "       Did you mean one of python3, python311 or pythonEnv?"
    )
    found = find_missing_attribute(feed(NixLogParser(), [error(msg[len("error: ") :])]).errors)
    assert found is not None
    assert (found.name, found.variable, found.line, found.column) == ("pythn", True, 7, 34)
    assert found.source == "  runDependencies = with pkgs; [ pythn ];"
    assert found.nix_suggests == "python3, python311 or pythonEnv"


def test_other_errors_are_no_missing_attribute():
    parser = feed(NixLogParser(), [error("attribute 'x' missing"), error("undefined variable")])
    assert find_missing_attribute(parser.errors) is None  # no position: nothing to point at


def test_full_errors_keeps_every_line():
    long = "attribute 'x' missing\n" + "\n".join(f"… line {i}" for i in range(100))
    trimmed = feed(NixLogParser(), [error(long)]).failure_report().splitlines()
    full = feed(NixLogParser(full_errors=True), [error(long)]).failure_report().splitlines()
    assert len(trimmed) == 41
    assert trimmed[-1] == "… (61 more lines)"
    assert len(full) == 101
