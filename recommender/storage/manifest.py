"""A version's manifest (``manifest.json``): format version, model, dimension and settings,
fixed per version and read before anything else is opened. A ``checksum`` field over the rest
is checked when it is read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import IncompatibleIndexError, IndexDamagedError
from .files import write_new

FORMAT = "recommender-index"
FORMAT_VERSION = 4
#: The oldest format this version opens for queries and updates (3: before ``search``, flat).
READABLE_FORMAT = 3
#: The oldest format whose stored vectors a build may reuse (same segments and hashes).
REUSABLE_FORMAT = 2


MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What a version is: read before anything else is opened."""

    model: str
    dimension: int
    settings: dict[str, Any]
    built_at: str
    build_seconds: float
    versions: dict[str, str] = field(default_factory=dict)
    model_choice: str = ""  # why this model (e.g. what "auto" saw); empty before 0.2
    # The vector search of the build's segment (see ``search_of``); empty before format 4: flat.
    search: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION


def read_manifest(version: Path, *, oldest: int = READABLE_FORMAT) -> Manifest:
    """The manifest of a version; ``oldest`` is the oldest format version accepted."""
    path = version / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # also undecodable bytes and bad JSON
        raise IndexDamagedError(
            f"index at {version.parent} is damaged: {MANIFEST}: {exc}; build it again"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IndexDamagedError(f"{path} is not a recommender index manifest")
    found = data.get("format_version")
    if not isinstance(found, int) or found > FORMAT_VERSION:
        raise IncompatibleIndexError(
            f"index at {version.parent} has format version {found}; this version of "
            f"recommender reads version {FORMAT_VERSION}: upgrade recommender"
        )
    if found < oldest:
        raise IncompatibleIndexError(
            f"index at {version.parent} has the older format version {found}; "
            f"build it again with: recommend build-index FILE --index {version.parent}"
        )
    checksum = data.pop("checksum", None)  # None: written by a version that wrote none
    if checksum is not None and checksum != manifest_checksum(data):
        raise IndexDamagedError(
            f"index at {version.parent} is damaged: {MANIFEST} does not match its checksum "
            "(changed by hand?); build it again"
        )
    try:
        return Manifest(**data)
    except TypeError as exc:
        raise IndexDamagedError(
            f"index at {version.parent} is damaged: {MANIFEST}: {exc}; build it again"
        ) from None


def manifest_checksum(data: dict[str, Any]) -> str:
    """The checksum of a manifest's fields (all but ``checksum``), over their canonical JSON."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def write_manifest(version: Path, manifest: Manifest, *, name: str = MANIFEST) -> None:
    """Write a manifest, with its checksum, as a new file (flushed)."""
    data = asdict(manifest)
    data["checksum"] = manifest_checksum(data)
    write_new(version / name, (json.dumps(data, indent=2) + "\n").encode("utf-8"))
