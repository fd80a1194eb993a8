"""The dispatcher with a fake executor: admission, failure policy, barriers, interrupts."""

from __future__ import annotations

import networkx as nx

from repx.run.events import JobBlocked, JobFinished, Notice
from repx.run.executor import Finished, Started
from repx.run.graph import EdgeKind, JobGraph
from repx.run.scheduler import Interrupts, Limits, NodeState, Scheduler
from repx.run.spec import JobSpec
from repx.run.store_models import JobResult, JobStatus


class FakeExecutor:
    """Finishes the oldest running job at each poll, with a scripted status."""

    holds_dependencies = False

    def __init__(self, fail=(), on_poll=None):
        self.fail = set(fail)
        self.running: list[JobSpec] = []
        self.submitted: list[str] = []
        self.max_running = 0
        self.max_cpus = 0
        self.cancelled = 0
        self.on_poll = on_poll

    @property
    def active(self):
        return len(self.running)

    def submit(self, spec):
        self.running.append(spec)
        self.submitted.append(spec.job)
        self.max_running = max(self.max_running, len(self.running))
        self.max_cpus = max(self.max_cpus, sum(s.cpus for s in self.running))

    def poll(self, timeout):
        if self.on_poll:
            self.on_poll(self)
        spec = self.running.pop(0)
        status = JobStatus.FAILED if spec.job in self.fail else JobStatus.SUCCEEDED
        if self.cancelled:
            status = JobStatus.INTERRUPTED
        result = JobResult(
            job=spec.job,
            status=status,
            exit_code=0 if status is JobStatus.SUCCEEDED else 1,
            start=0.0,
            end=1.0,
            host="h",
            runtime="native",
            lab_id="l",
            attempt="a",
        )
        return [Started(spec.job), Finished(spec.job, result)]

    def cancel(self, *, force=False):
        self.cancelled += 1
        return []

    def close(self):
        pass


def job(name):
    return f"{'0' * 32}-{name}"


def make(edges, nodes=(), cpus=None, mem=None):
    """A JobGraph from (source, target, kind) edges; names are turned into job ids
    unless they start with 'run:' (barriers)."""

    def node(n):
        return n if n.startswith("run:") else job(n)

    graph = nx.DiGraph()
    graph.add_nodes_from(node(n) for n in nodes)
    for a, b, kind in edges:
        graph.add_edge(node(a), node(b), kind=kind)
    order = tuple(nx.lexicographical_topological_sort(graph))
    specs = {
        n: JobSpec(
            job=n,
            stage=n.split("-", 1)[1],
            lab_root="/",
            lab_id="l",
            executable="/x",
            parameters_file="/p",
            cpus=(cpus or {}).get(n.split("-", 1)[1], 1),
            mem_bytes=(mem or {}).get(n.split("-", 1)[1], 0),
        )
        for n in order
        if not n.startswith("run:")
    }
    return JobGraph(graph, order), specs


TWO = Limits(2, 2, 0)


def run(graph, specs, executor, limits=TWO, **kwargs):
    events = []
    scheduler = Scheduler(graph, executor, specs.__getitem__, events.append, limits, **kwargs)
    return scheduler.run(), events


D, H, S = EdgeKind.DATA, EdgeKind.HARD, EdgeKind.SOFT


def test_runs_in_dependency_order_within_max_jobs():
    graph, specs = make([("a", "c", D), ("b", "c", D)], nodes=["d", "e"])
    executor = FakeExecutor()
    outcome, _ = run(graph, specs, executor, Limits(max_jobs=2, cpus=8, mem_bytes=0))
    assert executor.submitted.index(job("c")) > executor.submitted.index(job("a"))
    assert executor.submitted.index(job("c")) > executor.submitted.index(job("b"))
    assert executor.max_running == 2
    assert outcome.count(NodeState.SUCCEEDED) == 5


def test_cpu_admission_never_oversubscribes():
    graph, specs = make([], nodes=["a", "b", "c", "d"], cpus={"a": 2, "b": 1, "c": 1, "d": 2})
    executor = FakeExecutor()
    run(graph, specs, executor, Limits(max_jobs=4, cpus=3, mem_bytes=0))
    assert executor.max_cpus <= 3


def test_memory_admission():
    gib = 1024**3
    graph, specs = make([], nodes=["a", "b", "c"], mem={"a": 3 * gib, "b": 3 * gib, "c": 1})
    executor = FakeExecutor()
    run(graph, specs, executor, Limits(max_jobs=4, cpus=4, mem_bytes=4 * gib))
    assert executor.max_running == 2  # a+b never together; c fits beside either


def test_job_larger_than_machine_runs_alone_with_a_warning():
    graph, specs = make([], nodes=["big", "x", "y"], cpus={"big": 16})
    seen = []
    executor = FakeExecutor(on_poll=lambda ex: seen.append([s.job for s in ex.running]))
    outcome, events = run(graph, specs, executor, Limits(max_jobs=4, cpus=2, mem_bytes=0))
    assert [job("big")] in seen
    assert all(len(r) == 1 for r in seen if job("big") in r)
    [notice] = [e for e in events if isinstance(e, Notice)]
    assert "running it alone" in notice.message
    assert outcome.count(NodeState.SUCCEEDED) == 3


def test_failure_blocks_dependents_and_stops_new_jobs():
    graph, specs = make([("a", "b", D), ("b", "c", D)], nodes=["x", "y"])
    executor = FakeExecutor(fail=[job("a")])
    outcome, events = run(graph, specs, executor, Limits(1, 1, 0))
    assert outcome.states[job("a")] is NodeState.FAILED
    assert outcome.states[job("b")] is NodeState.BLOCKED
    assert outcome.states[job("c")] is NodeState.BLOCKED
    assert outcome.blocked_by[job("c")] == job("a")
    assert executor.submitted == [job("a")]
    assert outcome.states[job("x")] is NodeState.SKIPPED
    blocked = [e.job for e in events if isinstance(e, JobBlocked)]
    assert blocked == [job("b"), job("c")]


def test_running_jobs_finish_after_a_failure():
    graph, specs = make([], nodes=["a", "b", "c"])
    executor = FakeExecutor(fail=[job("a")])
    outcome, _ = run(graph, specs, executor, Limits(2, 2, 0))
    assert outcome.states[job("b")] is NodeState.SUCCEEDED  # was running: finished
    assert outcome.states[job("c")] is NodeState.SKIPPED


def test_continue_on_failure_runs_independent_jobs():
    graph, specs = make([("a", "b", D)], nodes=["x", "y"])
    executor = FakeExecutor(fail=[job("a")])
    outcome, events = run(graph, specs, executor, Limits(1, 1, 0), continue_on_failure=True)
    assert outcome.states[job("x")] is NodeState.SUCCEEDED
    assert outcome.states[job("y")] is NodeState.SUCCEEDED
    assert outcome.states[job("b")] is NodeState.BLOCKED
    finished = [e for e in events if isinstance(e, JobFinished)]
    assert len(finished) == 3


def test_hard_barrier_blocks_soft_barrier_waits_for_completion():
    edges = [
        ("a1", "run:A:ok", H),
        ("a2", "run:A:ok", H),
        ("run:A:ok", "h", H),
        ("a1", "run:A:done", S),
        ("a2", "run:A:done", S),
        ("run:A:done", "s", H),
    ]
    graph, specs = make(edges)
    executor = FakeExecutor(fail=[job("a1")])
    outcome, _ = run(graph, specs, executor, Limits(1, 1, 0), continue_on_failure=True)
    assert outcome.states[job("h")] is NodeState.BLOCKED
    assert outcome.states[job("s")] is NodeState.SUCCEEDED
    assert executor.submitted.index(job("s")) > executor.submitted.index(job("a2"))
    assert outcome.count(NodeState.BLOCKED) == 1  # barriers are not counted as jobs


def test_interrupt_cancels_and_starts_nothing_new():
    graph, specs = make([], nodes=["a", "b", "c", "d"])
    interrupts = Interrupts()

    def interrupt(executor):
        if len(executor.submitted) == 2 and not interrupts.count:
            interrupts.count = 1

    executor = FakeExecutor(on_poll=interrupt)
    outcome, _ = run(graph, specs, executor, Limits(2, 2, 0), interrupts=interrupts)
    assert outcome.interrupted
    assert executor.cancelled >= 1
    assert executor.submitted == [job("a"), job("b")]
    assert outcome.states[job("c")] is NodeState.SKIPPED


class HoldingExecutor(FakeExecutor):
    """Takes every job at once (as SLURM does) and reports them in submission order; a
    job whose dependency failed is reported as SLURM would (cancelled, never run)."""

    holds_dependencies = True

    def __init__(self, fail=(), never_run=()):
        super().__init__(fail)
        self.polls_before_first_result = None
        self.never_run = set(never_run)

    def poll(self, timeout):
        if self.polls_before_first_result is None:
            self.polls_before_first_result = list(self.submitted)
        spec = self.running.pop(0)
        if spec.job in self.never_run:
            status = JobStatus.INTERRUPTED
        else:
            status = JobStatus.FAILED if spec.job in self.fail else JobStatus.SUCCEEDED
        result = JobResult(
            job=spec.job,
            status=status,
            start=0.0,
            end=1.0,
            host="h",
            runtime="native",
            lab_id="l",
            attempt="a",
        )
        return [Finished(spec.job, result)]


def test_holding_executor_gets_every_job_before_the_first_poll():
    graph, specs = make([("a", "b", D), ("b", "c", D)], nodes=["d"])
    executor = HoldingExecutor()
    outcome, events = run(graph, specs, executor, Limits(1, 1, 0))
    # no admission limit applies: the executor orders and places them itself
    assert executor.polls_before_first_result == [job(n) for n in ("a", "b", "c", "d")]
    assert outcome.count(NodeState.SUCCEEDED) == 4
    assert [e.job for e in events if isinstance(e, JobFinished)] == [
        job(n) for n in ("a", "b", "c", "d")
    ]


def test_holding_executor_failure_blocks_held_dependents():
    graph, specs = make(
        [("a", "b", D), ("b", "c", D), ("a", "run:r:ok", H), ("run:r:ok", "e", H)],
        nodes=["d"],
    )
    # b and c never run in SLURM; the executor still reports them (ignored: blocked)
    executor = HoldingExecutor(fail={job("a")}, never_run={job("b"), job("c"), job("e")})
    outcome, events = run(graph, specs, executor)
    assert outcome.states[job("a")] is NodeState.FAILED
    assert outcome.states[job("d")] is NodeState.SUCCEEDED  # independent: SLURM runs it
    for name in ("b", "c", "e"):
        assert outcome.states[job(name)] is NodeState.BLOCKED
        assert outcome.blocked_by[job(name)] == job("a")
    finished = [e.job for e in events if isinstance(e, JobFinished)]
    assert finished == [job("a"), job("d")]
    assert {e.job for e in events if isinstance(e, JobBlocked)} == {job(n) for n in "bce"}


def test_holding_executor_soft_dependency_runs_after_a_failure():
    graph, specs = make([("a", "run:r:done", S), ("run:r:done", "b", H)])
    executor = HoldingExecutor(fail={job("a")})
    outcome, _ = run(graph, specs, executor)
    assert outcome.states[job("a")] is NodeState.FAILED
    assert outcome.states[job("b")] is NodeState.SUCCEEDED
