"""Running a lab: selection, job graph, output store, executors, scheduler and reporters.

The pieces are separate so that another backend (SLURM) plugs in behind the same
:class:`~repx.run.executor.Executor` interface:

- :mod:`repx.run.selection`: command-line selectors -> the jobs to run (and their upstream);
- :mod:`repx.run.graph`: the validated DAG of those jobs, with run-dependency barriers;
- :mod:`repx.run.store` / :mod:`repx.run.store_models`: the output store under a base dir;
- :mod:`repx.run.spec`: what one job needs to run, independent of the lab loader;
- :mod:`repx.run.runtime`: native or bubblewrap, and the job's environment;
- :mod:`repx.run.job`: the per-job lifecycle (prepare, spawn, commit), also a CLI wrapper;
- :mod:`repx.run.scatter`: the process of a scatter-gather job (its pieces, each committed);
- :mod:`repx.run.executor`: the executor protocol and the local executor;
- :mod:`repx.run.scheduler`: the dispatcher of ready jobs (admission, failure policy);
- :mod:`repx.run.reporter`: the event interface (rich, plain, JSON, recording).
"""
