"""Save and load model artifacts: a joblib file plus a JSON sidecar that vouches for it.

Unpickling runs code, so nothing is unpickled until the sidecar's sha256 matches the file's bytes
and its feature schema hash matches the features this code computes. The bytes that are hashed
are the very bytes that are then unpickled (read once), so the file cannot change in between.
"""

import hashlib
import io
import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import Any

import joblib

from risk_model.errors import ArtifactError
from risk_model.features import feature_schema, schema_hash

ARTIFACT_FORMAT = 1
DEFAULT_POINTER = "default.json"


@dataclass(frozen=True)
class Artifact:
    """A verified, loaded artifact: its payload and the sidecar metadata."""

    path: Path
    payload: Mapping[str, Any]
    metadata: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def sha256(self) -> str:
        return str(self.metadata["sha256"])


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def packaged_dir() -> Path:
    return Path(str(resources.files("risk_model").joinpath("artifacts")))


def default_path() -> Path:
    """The artifact shipped inside the package, named by ``artifacts/default.json``."""
    pointer = packaged_dir() / DEFAULT_POINTER
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["artifact"]
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"no default model artifact: cannot read {pointer.name}") from exc
    return packaged_dir() / str(name)


def model_card_text(path: Path | None = None) -> str | None:
    """The Markdown model card stored beside an artifact (the packaged one by default)."""
    card = (path or default_path()).with_suffix(".md")
    try:
        return card.read_text(encoding="utf-8")
    except OSError:
        return None


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("scikit-learn", "numpy", "joblib"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return versions


def save(
    payload: Mapping[str, Any],
    path: Path,
    *,
    name: str,
    version: str,
    metrics: Mapping[str, Any],
    data_fingerprint: str,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``path`` (joblib) and its sidecar; returns the sidecar's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    joblib.dump(dict(payload), buffer, compress=3)
    data = buffer.getvalue()
    path.write_bytes(data)
    schema = feature_schema()
    meta = {
        "format": ARTIFACT_FORMAT,
        "name": name,
        "version": version,
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "feature_schema": schema,
        "feature_schema_hash": schema_hash(schema),
        "library_versions": library_versions(),
        "data_fingerprint": data_fingerprint,
        "metrics": dict(metrics),
        **dict(extra or {}),
    }
    side = sidecar_path(path)
    side.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return side


def _read_metadata(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ArtifactError(f"artifact metadata {side.name} is missing or unreadable") from exc
    except ValueError as exc:
        raise ArtifactError(f"artifact metadata {side.name} is not valid JSON") from exc
    if not isinstance(meta, dict):
        raise ArtifactError(f"artifact metadata {side.name} is not a JSON object")
    for key in ("name", "version", "sha256", "feature_schema", "feature_schema_hash"):
        if key not in meta:
            raise ArtifactError(f"artifact metadata {side.name} lacks {key!r}")
    return meta


def load(path: Path | None = None) -> Artifact:
    """Verify then load an artifact (the packaged default when ``path`` is None)."""
    path = path or default_path()
    meta = _read_metadata(path)
    if meta.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"{path.name}: artifact format {meta.get('format')!r} not supported")
    declared = meta["feature_schema"]
    if schema_hash(declared) != meta["feature_schema_hash"]:
        raise ArtifactError(f"{path.name}: feature schema does not match its recorded hash")
    if meta["feature_schema_hash"] != schema_hash():
        raise ArtifactError(
            f"{path.name}: trained for feature schema {meta['feature_schema_hash'][:12]}, "
            f"but this code computes {schema_hash()[:12]}; retrain or install a matching version"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"artifact file {path.name} is missing or unreadable") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != meta["sha256"]:
        raise ArtifactError(
            f"{path.name}: sha256 {digest[:12]}… does not match the recorded "
            f"{str(meta['sha256'])[:12]}…; the file was altered, refusing to load it"
        )
    try:
        payload = joblib.load(io.BytesIO(data))
    except Exception as exc:  # a verified file that still fails to load is a build error
        raise ArtifactError(f"{path.name}: verified file failed to load: {exc}") from exc
    if not isinstance(payload, dict) or list(payload.get("feature_names", [])) != list(
        declared["names"]
    ):
        raise ArtifactError(f"{path.name}: payload features differ from its metadata")
    return Artifact(path=path, payload=payload, metadata=meta)
