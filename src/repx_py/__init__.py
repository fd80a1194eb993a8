"""``repx_py``: RepX's analysis API, for analysis code written for RepX runs.

    from repx_py import Experiment

    exp = Experiment("result")                                  # a built repx lab
    exp = Experiment.from_run_metadata(meta, store)             # inside a job (metadata__<run>)
    producer = exp.jobs().filter(name__contains="producer")[0]
    frame = producer.load_csv("data.csv")

See docs/python-api.md ("Coming from RepX: repx_py"). Importing this package needs neither
pydantic nor pandas; opening a lab needs repx's own dependencies.
"""

from __future__ import annotations

from repx import __version__
from repx_py.models import (
    ArtifactResolver,
    Experiment,
    JobCollection,
    JobView,
    LocalCacheResolver,
    ManifestResolver,
)

__all__ = [
    "ArtifactResolver",
    "Experiment",
    "JobCollection",
    "JobView",
    "LocalCacheResolver",
    "ManifestResolver",
    "__version__",
]
