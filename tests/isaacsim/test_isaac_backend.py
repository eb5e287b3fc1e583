"""The Isaac backend and Replicator path inside Isaac Sim (needs Kit; skipped here).

Run with Isaac Sim's python:  ./python.sh -m pytest tests/isaacsim
"""

import json

import numpy as np
import pytest

pytest.importorskip("isaacsim")


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_generate_on_isaac_matches_layout_and_contents(tmp_path, repo_root, kit_app):
    """Two frames on Replicator write the same files as the Newton backend, with the same kinds of content:
    identical metadata.txt, the same JSON keys, the same npy dtypes and shapes, labels of the scene's classes."""
    from vlatwin.sdg.pipeline import generate

    config = repo_root / "tests" / "data" / "small_sdg.yaml"
    generate(config, tmp_path / "isaac", frames=2, backend="isaacsim", progress=False)
    generate(config, tmp_path / "newton", frames=2, backend="newton", progress=False)
    isaac, newton = tmp_path / "isaac", tmp_path / "newton"
    assert _files(isaac) == _files(newton)
    assert (isaac / "metadata.txt").read_bytes() == (newton / "metadata.txt").read_bytes()
    assert json.loads((isaac / "metadata.txt").read_text())["name"] == "BasicWriter"
    for rel in _files(newton):
        a, b = isaac / rel, newton / rel
        if rel.suffix == ".npy":
            x, y = np.load(a, allow_pickle=False), np.load(b, allow_pickle=False)
            assert x.dtype == y.dtype, rel
            if x.dtype.names is None and "pointcloud" not in rel.name and x.ndim >= 2:
                assert x.shape == y.shape, rel  # images; point and box counts may differ between renderers
        elif rel.suffix == ".json" and "labels" in rel.name:
            classes = lambda d: {v["class"] if isinstance(v, dict) else v for v in json.loads(d.read_text()).values()}  # noqa: E731
            assert classes(a) <= classes(b) | {"BACKGROUND", "UNLABELLED"}, rel
        elif rel.name.startswith("camera_params"):
            assert set(json.loads(a.read_text())) >= set(json.loads(b.read_text())) - {"cameraIntrinsics", "cameraDistortion"}, rel
    lidar = sorted(isaac.rglob("*.npy"))
    assert lidar  # at least the camera arrays exist
