"""The manifest's provenance field is optional: manifests written before it still verify."""

from __future__ import annotations

import json
from pathlib import Path

from alphaops.registry import Bundle, open_registry
from alphaops.registry.testing import build_tiny_bundle


def test_a_manifest_without_provenance_loads_verifies_and_publishes(tmp_path: Path) -> None:
    folder = build_tiny_bundle(tmp_path / "old")
    manifest = folder / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["provenance"]  # exactly what a manifest written before the field holds
    manifest.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    bundle = Bundle.load(folder)
    assert bundle.manifest.provenance is None
    with open_registry(tmp_path / "home") as reg:
        version = reg.publish(bundle)
        assert reg.load(version.ref).manifest.provenance is None
