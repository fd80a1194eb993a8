"""``repx tui``: a textual board of runs -> stages -> jobs with live states and logs.

Left, the tree: each run and stage with its counts per state, each job with its state, short
id and swept parameters. Right, the selected job: its state, reason and parameters, then
its stdout and stderr, followed while it runs. Keys: ``c`` cancels the selected running
job, ``C`` its run, ``r`` reruns the selected job, ``?`` help, ``q`` quit. The data and the
actions are :class:`repx.tui.board.Board`'s; this module only draws.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Footer, Header, Log, Static, Tree
from textual.widgets.tree import TreeNode

from repx.inspect.status import JobState
from repx.tui.board import RERUNNABLE, Board, LogTail, Rerun, format_params

#: (symbol, style) of each state, in the tree and the counts.
STATE_LOOK: Final[dict[JobState, tuple[str, str]]] = {
    JobState.SUCCEEDED: ("✓", "green"),
    JobState.FAILED: ("✗", "bold red"),
    JobState.RUNNING: ("▶", "bold yellow"),
    JobState.QUEUED: ("…", "cyan"),
    JobState.PENDING: ("○", "default"),
    JobState.WAITING: ("◌", "dim"),
    JobState.BLOCKED: ("⊘", "magenta"),
    JobState.CANCELLED: ("■", "red"),
}
#: Lines kept by each log panel.
LOG_LINES: Final = 2000
#: Jobs up to which every stage is expanded at start.
EXPAND_ALL_UP_TO: Final = 300

HELP: Final = """\
[b]repx tui[/b]: the lab's runs, stages and jobs, live.

  [b]↑ ↓[/b]  move (also home, end, page up/down)
  [b]enter[/b] fold, unfold   [b]shift+←[/b] up a level
  [b]c[/b]    cancel the selected running job (SIGTERM; recorded failed), after y
  [b]C[/b]    cancel the selected run (its repx run stops as on Ctrl-C), after y
  [b]r[/b]    rerun the selected job (repx run --force JOB)
  [b]?[/b]    this help     [b]q[/b]  quit

States: ✓ succeeded  ✗ failed  ▶ running  … queued  ○ pending
        ◌ waiting  ⊘ blocked  ■ cancelled

Press any key to close."""


@dataclass(frozen=True)
class Ref:
    """What a tree node stands for: a run, a stage of a run, or a job."""

    kind: str
    run: str
    stage: str = ""
    job: str = ""


def counts_text(counts: dict[JobState, int]) -> Text:
    """``✓4 ✗1 ⊘1``: the non-zero counts, coloured."""
    text = Text()
    for state, (symbol, style) in STATE_LOOK.items():
        if counts.get(state):
            text.append(f" {symbol}{counts[state]}", style=style)
    return text


class HelpScreen(ModalScreen[None]):
    """The keys."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: auto; height: auto; padding: 1 2; border: thick $accent;
                          background: $surface; }
    """

    def compose(self) -> ComposeResult:
        """The help text."""
        yield Static(HELP, id="help")

    def on_key(self) -> None:
        """Any key closes it."""
        self.dismiss()


class Confirm(ModalScreen[bool]):
    """A yes/no question: ``y`` confirms, any other key declines."""

    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Static { width: auto; height: auto; padding: 1 2; border: thick $warning;
                       background: $surface; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        """The question."""
        yield Static(f"{self.question}\n\n[b]y[/b] yes   any other key: no", id="question")

    def on_key(self, event: events.Key) -> None:
        """y: yes; anything else: no."""
        event.stop()
        self.dismiss(event.key == "y")


class RepxTui(App[None]):
    """The board."""

    TITLE = "repx tui"
    CSS = """
    #board { width: 45%; min-width: 30; border: round $primary; }
    #side { width: 1fr; }
    #details { height: auto; max-height: 50%; border: round $primary; padding: 0 1; }
    .log { height: 1fr; border: round $secondary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_job", "cancel job"),
        Binding("C", "cancel_run", "cancel run"),
        Binding("r", "rerun", "rerun job"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, board: Board, *, interval: float = 1.0, poll: bool = True) -> None:
        super().__init__()
        self.board = board
        self.interval = interval
        #: False: one snapshot, never refreshed (a screenshot)
        self.poll = poll
        self.nodes: dict[str, list[TreeNode[Ref]]] = {}
        self.stage_nodes: dict[tuple[str, str], TreeNode[Ref]] = {}
        self.run_nodes: dict[str, TreeNode[Ref]] = {}
        self.selected: Ref | None = None
        self._tails: tuple[LogTail, LogTail] | None = None
        self._timer: Timer | None = None
        #: repx's log records (warnings of a rerun...) as notifications, not on the screen
        self._notices = _Notices(self)
        self.sub_title = f"{board.lab.root}  ·  {board.base}"

    # -- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """Header, the tree, the selected job's details and logs, footer."""
        yield Header()
        tree: Tree[Ref] = Tree("lab", id="board")
        tree.show_root = False
        tree.border_title = "runs → stages → jobs"
        details = VerticalScroll(Static(id="details-text"), id="details")
        details.border_title = "job"
        stdout = Log(max_lines=LOG_LINES, id="stdout", classes="log")
        stdout.border_title = "stdout"
        stderr = Log(max_lines=LOG_LINES, id="stderr", classes="log")
        stderr.border_title = "stderr"
        with Horizontal():
            yield tree
            with Vertical(id="side"):
                yield details
                yield stdout
                yield stderr
        yield Footer()

    def on_mount(self) -> None:
        """Build the tree, select a job worth looking at, start polling."""
        self._notices.install()
        tree = self.query_one("#board", Tree)
        self._fill(tree)
        tree.focus()
        first = self._first_interesting()
        if first is not None:
            self.select_job(first)
        if self.poll:
            self._timer = self.set_interval(self.interval, self.tick)

    def on_unmount(self) -> None:
        """Stop polling; log records go back where they went."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.restore_logging()

    def restore_logging(self) -> None:
        """The ``repx`` logger's own handlers again (idempotent)."""
        self._notices.restore()

    class Warned(Message):
        """A log record of repx (posted from any thread)."""

        def __init__(self, text: str, severity: SeverityLevel) -> None:
            super().__init__()
            self.text = text
            self.severity = severity

    def on_repx_tui_warned(self, message: Warned) -> None:
        """Show a log record as a notification."""
        self.notify(message.text, severity=message.severity, timeout=8)

    def _fill(self, tree: Tree[Ref]) -> None:
        board = self.board
        expand = len(board.source.rows) <= EXPAND_ALL_UP_TO
        for run in board.runs:
            run_node = tree.root.add(
                self._run_label(run.run), data=Ref("run", run.run), expand=True
            )
            self.run_nodes[run.run] = run_node
            for stage in run.stages:
                ref = Ref("stage", run.run, stage.stage)
                stage_node = run_node.add(self._stage_label(run.run, stage.stage), data=ref)
                if expand:
                    stage_node.expand()
                self.stage_nodes[(run.run, stage.stage)] = stage_node
                for job in stage.jobs:
                    leaf = stage_node.add_leaf(
                        self._job_label(job, stage.swept),
                        data=Ref("job", run.run, stage.stage, job),
                    )
                    self.nodes.setdefault(job, []).append(leaf)

    def _first_interesting(self) -> str | None:
        jobs = [job for _, job in self.board.source.rows]
        for state in (JobState.RUNNING, JobState.FAILED):
            for job in jobs:
                if self.board.state(job) is state:
                    return job
        return jobs[0] if jobs else None

    # -- labels -------------------------------------------------------------------------

    def _run_label(self, run: str) -> Text:
        text = Text(run, style="bold")
        text.append_text(counts_text(self.board.counts(self.board.run_row(run).jobs)))
        return text

    def _stage_label(self, run: str, stage: str) -> Text:
        text = Text(stage)
        text.append_text(counts_text(self.board.counts(self.board.stage_row(run, stage).jobs)))
        return text

    def _job_label(self, job: str, swept: tuple[str, ...]) -> Text:
        state = self.board.state(job)
        symbol, style = STATE_LOOK[state]
        text = Text(f"{symbol} ", style=style)
        text.append(self.board.short(job))
        params = format_params(self.board.params(job), swept)
        if params:
            text.append(f"  {params}", style="italic")
        return text

    # -- polling ------------------------------------------------------------------------

    def tick(self) -> None:
        """A new snapshot: relabel what changed, follow the logs."""
        if self._timer is None:
            return  # unmounted: a last tick must not look for widgets
        try:
            self._tick()
        except NoMatches:
            return  # the screen is being torn down (quitting)

    def _tick(self) -> None:
        changed = self.board.refresh()
        if changed:
            self._relabel(changed)
        if self.selected is not None and (
            self.selected.kind != "job" or self.selected.job in changed
        ):
            self._show_details()
        self._follow_logs()

    def _relabel(self, jobs: set[str]) -> None:
        stages: set[tuple[str, str]] = set()
        for job in jobs:
            for node in self.nodes.get(job, ()):
                ref = node.data
                assert ref is not None
                swept = self.board.stage_row(ref.run, ref.stage).swept
                node.set_label(self._job_label(job, swept))
                stages.add((ref.run, ref.stage))
        for run, stage in stages:
            self.stage_nodes[(run, stage)].set_label(self._stage_label(run, stage))
        for run in {r for r, _ in stages}:
            self.run_nodes[run].set_label(self._run_label(run))

    # -- selection ----------------------------------------------------------------------

    def select_job(self, job: str) -> None:
        """Put the cursor on ``job`` (its first place in the tree)."""
        nodes = self.nodes.get(job)
        if not nodes:
            return
        node = nodes[0]
        parent = node.parent
        while parent is not None:
            parent.expand()
            parent = parent.parent
        tree = self.query_one("#board", Tree)
        # once the tree has laid the expanded lines out; the highlight selects it
        self.call_after_refresh(tree.move_cursor, node)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Ref]) -> None:
        """The cursor moved: show what it is on (an older move's message is ignored)."""
        if event.node is event.control.cursor_node:
            self._select(event.node.data)

    def _select(self, ref: Ref | None) -> None:
        if ref == self.selected:
            return
        self.selected = ref
        self._show_details()
        if ref is not None and ref.kind == "job":
            self._tails = (
                self.board.log(ref.job, stderr=False),
                self.board.log(ref.job, stderr=True),
            )
        else:
            self._tails = None
        for log in self.query(".log").results(Log):
            log.clear()
        self._follow_logs()

    @property
    def cursor(self) -> Ref | None:
        """What the tree's cursor is on."""
        node = self.query_one("#board", Tree).cursor_node
        return node.data if node is not None else None

    @property
    def selected_job(self) -> str | None:
        """The job under the cursor (None: a run or stage)."""
        ref = self.selected
        return ref.job if ref is not None and ref.kind == "job" else None

    def _show_details(self) -> None:
        ref = self.selected
        panel = self.query_one("#details-text", Static)
        box = self.query_one("#details")
        if ref is None:
            panel.update("")
            return
        if ref.kind == "job":
            box.border_title = f"job {self.board.short(ref.job)}"
            panel.update(self._job_details(ref.job, ref.run))
            return
        row = self.board.run_row(ref.run)
        jobs = row.jobs
        title = f"run {ref.run}"
        if ref.kind == "stage":
            jobs = self.board.stage_row(ref.run, ref.stage).jobs
            title += f" → stage {ref.stage}"
        box.border_title = title
        panel.update(self._counts_details(jobs))

    def _job_details(self, job: str, run: str) -> RenderableType:
        board = self.board
        view = board.view
        state = board.state(job)
        symbol, style = STATE_LOOK[state]
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bold")
        facts.add_column()
        facts.add_row("id", job)
        facts.add_row("run → stage", f"{run} → {board.lab.jobs[job].stage}")
        facts.add_row("state", Text(f"{symbol} {state.value}", style=style))
        if (reason := view.reason(job)) is not None:
            facts.add_row("reason", reason)
        if (code := view.exit_code(job)) is not None:
            facts.add_row("exit", str(code))
        attempt = view.attempt(job)
        if attempt is not None and attempt.duration is not None:
            facts.add_row("took", f"{attempt.duration:.1f} s on {attempt.host or '?'}")
        if (slurm_id := view.slurm_id(job)) is not None:
            facts.add_row("SLURM", slurm_id)
        if (rerun := board.reruns.get(job)) is not None:
            facts.add_row("rerun", "in progress" if rerun.running else rerun.describe())
        params = Table("parameter", "value", box=None, pad_edge=False, header_style="bold")
        for name, value in board.params(job).items():
            params.add_row(name, format_params({name: value}).partition("=")[2])
        return Group(facts, Text(""), params)

    def _counts_details(self, jobs: tuple[str, ...]) -> RenderableType:
        counts = self.board.counts(jobs)
        table = Table("state", "jobs", box=None, pad_edge=False, header_style="bold")
        for state, (symbol, style) in STATE_LOOK.items():
            if counts[state]:
                table.add_row(Text(f"{symbol} {state.value}", style=style), str(counts[state]))
        return table

    def _follow_logs(self) -> None:
        if self._tails is None:
            return
        for tail, log in zip(
            self._tails, (self._log_panel("stdout"), self._log_panel("stderr")), strict=True
        ):
            reset, lines = tail.read()
            if reset:
                log.clear()
            if lines:
                log.write_lines(lines)
            name = "stderr" if tail.stderr else "stdout"
            log.border_title = f"{name} · following" if tail.running else name
            if tail.path is None:
                log.border_title = f"{name} (none)"

    def _log_panel(self, name: str) -> Log:
        return self.query_one(f"#{name}", Log)

    # -- actions ------------------------------------------------------------------------

    def action_help(self) -> None:
        """Show the keys."""
        self.push_screen(HelpScreen())

    def action_cancel_job(self) -> None:
        """Stop the selected running job."""
        job = self.selected_job
        if job is None:
            self.notify("select a job to cancel", severity="warning")
            return
        if self.board.state(job) not in (JobState.RUNNING, JobState.QUEUED):
            self.notify(f"{self.board.short(job)} is not running", severity="warning")
            return
        short = self.board.short(job)

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.notify(f"{short}: {self.board.cancel_job(job).describe()}")

        self.push_screen(Confirm(f"Cancel job {short} (SIGTERM)?"), confirmed)

    def action_cancel_run(self) -> None:
        """Stop the run of the selected node."""
        ref = self.selected
        if ref is None:
            return
        run = ref.run

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.notify(f"run {run}: {self.board.cancel_run(run).describe()}")

        self.push_screen(Confirm(f"Cancel run {run} (its repx run stops as on Ctrl-C)?"), confirmed)

    def action_rerun(self) -> None:
        """Run the selected job again."""
        job = self.selected_job
        if job is None:
            self.notify("select a job to rerun", severity="warning")
            return
        state = self.board.state(job)
        if state not in RERUNNABLE:
            self.notify(f"{self.board.short(job)} is {state.value}: not now", severity="warning")
            return
        current = self.board.reruns.get(job)
        if current is not None and current.running:
            self.notify(f"{self.board.short(job)} is being rerun", severity="warning")
            return
        self.board.rerun(job, done=self._rerun_done)
        self.notify(f"rerunning {self.board.short(job)}")

    class RerunEnded(Message):
        """A rerun's thread ended (posted from that thread)."""

        def __init__(self, rerun: Rerun) -> None:
            super().__init__()
            self.rerun = rerun

    def _rerun_done(self, rerun: Rerun) -> None:
        self.post_message(self.RerunEnded(rerun))  # thread-safe, never blocks

    def on_repx_tui_rerun_ended(self, message: RerunEnded) -> None:
        """Say how a rerun ended; show its job's new state at once."""
        rerun = message.rerun
        failed = rerun.error is not None or (rerun.summary is not None and rerun.summary.failed)
        self.notify(rerun.describe(), severity="error" if failed else "information")
        self.tick()

    async def action_quit(self) -> None:
        """Quit (a rerun in progress is stopped, as Ctrl-C stops repx run)."""
        self.board.stop_reruns()
        self.exit()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` in one step (a temporary file renamed over it)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def screenshot(app: RepxTui, path: Path, size: tuple[int, int]) -> None:
    """Run ``app`` headless, let it draw its first screen, write it to ``path`` as SVG."""

    async def shoot(pilot: Pilot[object]) -> None:
        await pilot.pause()  # every pending message handled: the tree, details, logs drawn
        await pilot.wait_for_scheduled_animations()
        write_atomic(path, app.export_screenshot())
        app.exit()

    app.run(headless=True, size=size, auto_pilot=shoot)


class _Notices(logging.Handler):
    """While installed, the ``repx`` logger's records become notifications of the app
    (its stderr handler would write over the screen)."""

    def __init__(self, app: RepxTui) -> None:
        super().__init__(logging.WARNING)
        self.app = app
        self._saved: list[logging.Handler] = []

    def install(self) -> None:
        """Take the place of the logger's handlers."""
        logger = logging.getLogger("repx")
        self._saved = list(logger.handlers)
        for handler in self._saved:
            logger.removeHandler(handler)
        logger.addHandler(self)

    def restore(self) -> None:
        """Give the logger its handlers back (nothing when not installed)."""
        logger = logging.getLogger("repx")
        if self not in logger.handlers:
            return
        logger.removeHandler(self)
        for handler in self._saved:
            logger.addHandler(handler)
        self._saved = []

    def emit(self, record: logging.LogRecord) -> None:
        """Post the record to the app (thread-safe, never blocks)."""
        severity: SeverityLevel = "error" if record.levelno >= logging.ERROR else "warning"
        self.app.post_message(RepxTui.Warned(record.getMessage(), severity))
