"""Inspecting a lab: what ``repx list|show|trace-params|viz|verify`` and ``repx.Lab`` use.

- :mod:`repx.inspect.view`: :class:`~repx.inspect.view.LabView`, a loaded lab with the
  derived facts every command needs (display order, short ids, consumers, statuses);
- :mod:`repx.inspect.resolve`: job-id prefixes, run, stage and parameter names -> errors
  that name the valid choices;
- :mod:`repx.inspect.params`: effective parameters and their provenance (trace-params);
- :mod:`repx.inspect.query`: the listings (runs, jobs, deps, groups) and the details
  (show job, show run) as the models of :mod:`repx.inspect.models` (the ``--json`` forms);
- :mod:`repx.inspect.graph` / :mod:`repx.inspect.viz`: networkx graphs of runs, stages and
  jobs, and their graphviz drawing;
- :mod:`repx.inspect.verify`: the integrity check of ``repx verify``;
- :mod:`repx.inspect.status`: the one place that reads job states from the output store.
"""
