"""Artifacts are verified (sha256, feature schema) before anything is unpickled."""

import json
import pickle
import shutil
from pathlib import Path

import pytest

from risk_model import artifact
from risk_model.errors import ArtifactError
from risk_model.predictor import Predictor


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """A copy of the packaged artifact and its sidecar, safe to tamper with."""
    source = artifact.default_path()
    target = tmp_path / source.name
    shutil.copy(source, target)
    shutil.copy(artifact.sidecar_path(source), artifact.sidecar_path(target))
    return target


def test_packaged_artifact_loads_and_is_small() -> None:
    loaded = artifact.load()
    assert loaded.payload["kind"] == "linear"
    assert loaded.path.stat().st_size < 2_000_000
    meta = loaded.metadata
    assert meta["feature_schema_hash"] == artifact.schema_hash()
    for key in ("library_versions", "data_fingerprint", "metrics"):
        assert meta[key]


def test_flipped_byte_is_refused(copied: Path) -> None:
    data = bytearray(copied.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copied.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        Predictor.load(copied)


class _Explodes:
    """Unpickling this would create a marker file: proof that nothing was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (self.marker, "unpickled"))  # type: ignore[return-value]


def test_swapped_payload_is_never_unpickled(copied: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    copied.write_bytes(pickle.dumps(_Explodes(marker)))
    with pytest.raises(ArtifactError):
        artifact.load(copied)
    assert not marker.exists()


def test_feature_schema_mismatch_is_refused(copied: Path) -> None:
    side = artifact.sidecar_path(copied)
    meta = json.loads(side.read_text())
    meta["feature_schema"]["names"] = [*meta["feature_schema"]["names"], "shoe_size"]
    from risk_model.features import schema_hash

    meta["feature_schema_hash"] = schema_hash(meta["feature_schema"])
    side.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="feature schema"):
        artifact.load(copied)


def test_schema_edited_without_its_hash_is_refused(copied: Path) -> None:
    side = artifact.sidecar_path(copied)
    meta = json.loads(side.read_text())
    meta["feature_schema"]["version"] = "999"
    side.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="recorded hash"):
        artifact.load(copied)


def test_missing_or_broken_sidecar_is_refused(copied: Path) -> None:
    side = artifact.sidecar_path(copied)
    side.write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        artifact.load(copied)
    side.unlink()
    with pytest.raises(ArtifactError, match="missing"):
        artifact.load(copied)
