"""A lab image's OCI image layout: where it is in the lab, its id, and a tar for docker.

Each ``images/<hash>/image.json`` names (``oci``) the image's OCI layout, a store path of
the lab's closure (``store/<name>-repx-oci-image``, built by nix/lib/oci-image.nix):
``oci-layout``, ``index.json``, ``blobs/sha256/…`` and ``repx-image.json`` (format
``repx-oci/1``: the image id — the digest of its config — and a tag). Engines load it
from that directory (podman) or from a tar of it (docker): no registry, no network.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Annotated, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from repx.errors import LabError
from repx.lab.loader import LoadedLab
from repx.lab.models import LabPath

IMAGE_JSON: Final = "image.json"
OCI_JSON: Final = "repx-image.json"
OCI_FORMAT: Final = "repx-oci/1"

_M = TypeVar("_M", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ImageDescription(_Model):
    """``images/<hash>/image.json`` (only what the container runtimes read)."""

    format: str
    #: the image's OCI layout (absent: a lab built before images had one)
    oci: LabPath | None = None


class OciImage(_Model):
    """``repx-image.json`` of an OCI layout."""

    format: Annotated[str, Field(pattern=f"^{OCI_FORMAT}$")]
    #: the image id: ``sha256:<hex>``, the digest of the image's config
    id: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    #: the name it is tagged with once loaded (``repx-image:<16 hex>``)
    tag: Annotated[str, Field(pattern=r"^repx-image:[0-9a-f]{16}$")]


class LabImage(_Model):
    """One image of a lab, ready to be loaded."""

    #: the OCI layout directory
    layout: str
    id: str
    tag: str


def lab_images(lab: LoadedLab) -> dict[str, LabImage]:
    """The lab's images by the key of ``images`` ("unified", or run names for "per-run")."""
    found: dict[str, LabImage] = {}
    for key, rel in lab.meta.images.items():
        where = f"{rel}/{IMAGE_JSON}"
        description = _read(lab.root / rel / IMAGE_JSON, ImageDescription, where)
        if description.oci is None:
            raise LabError(
                f"{where}: the image has no OCI layout (a lab built by an older repx);"
                " rebuild the lab to run it with podman or docker"
            )
        layout = lab.root / description.oci
        image = _read(layout / OCI_JSON, OciImage, f"{description.oci}/{OCI_JSON}")
        found[key] = LabImage(layout=os.fspath(layout), id=image.id, tag=image.tag)
    return found


def write_tar(layout: Path, dest: Path) -> None:
    """Write the layout as an uncompressed tar (what ``docker load`` reads), its links
    followed: in a lab the layout's blobs may be links into the store."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT, dereference=True) as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=os.fspath(path.relative_to(layout)), recursive=False)


def _read(path: Path, model: type[_M], where: str) -> _M:
    try:
        return model.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise LabError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise LabError(f"{where}: {field}: {first['msg']}") from None
