"""The JSON Schema of the lab format, generated from the models."""

from __future__ import annotations

import json
from typing import Any, Final

from pydantic.json_schema import models_json_schema

from repx.lab.models import LAB_FORMAT, LabMetadata, RevisionMetadata, RunManifest

#: Where the generated schema is committed, relative to the repository root.
SCHEMA_PATH: Final = "docs/schema/lab-format.schema.json"


def lab_json_schema() -> dict[str, Any]:
    """Return one JSON Schema document describing the three JSON file kinds of a lab."""
    _, schema = models_json_schema(
        [(m, "validation") for m in (LabMetadata, RevisionMetadata, RunManifest)],
        title=f"repx lab format ({LAB_FORMAT})",
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": schema.pop("title"),
        "description": (
            "lab/lab-metadata.json (LabMetadata), revision/metadata.json (RevisionMetadata) "
            "and revision/<run-hash>.json (RunManifest); see docs/lab-format.md"
        ),
        "anyOf": [
            {"$ref": f"#/$defs/{name}"}
            for name in ("LabMetadata", "RevisionMetadata", "RunManifest")
        ],
        **schema,
    }


def render_schema() -> str:
    """Return the schema as stable, pretty-printed JSON text (ending in a newline)."""
    return json.dumps(lab_json_schema(), indent=2, ensure_ascii=False) + "\n"
