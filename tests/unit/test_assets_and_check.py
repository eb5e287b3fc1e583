"""Shipped USD assets equal a fresh build; `check_stage` flags what Isaac Sim would reject."""

import pytest

pytest.importorskip("pxr")
from pxr import Usd, UsdGeom, UsdPhysics  # noqa: E402

from vlatwin.errors import StageError  # noqa: E402
from vlatwin.usd.check import check_stage  # noqa: E402
from vlatwin.usd.scene_builder import regenerate_assets  # noqa: E402


def test_committed_assets_equal_fresh_build(tmp_path, repo_root):
    """usd_assets/*.usda are exactly what `vlatwin scene assets` writes today (regenerate if this fails)."""
    fresh = regenerate_assets(repo_root / "configs" / "tabletop.yaml", tmp_path)
    for path in fresh:
        committed = repo_root / "usd_assets" / path.name
        assert committed.is_file(), f"{committed} missing: run `vlatwin scene assets` from the repo root"
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run `vlatwin scene assets`"


def test_robot_asset_is_referenceable(repo_root):
    """panda.usda has the robot root as defaultPrim, labelled, with everything it needs inside it."""
    stage = Usd.Stage.Open(str(repo_root / "usd_assets" / "panda.usda"))
    root = stage.GetDefaultPrim()
    assert root.GetPath() == "/panda" and root.HasAPI(UsdPhysics.ArticulationRootAPI)
    report = check_stage(repo_root / "usd_assets" / "panda.usda")
    assert report.ok and report.semantic_labels == {"/panda": "robot"}
    for prim in stage.Traverse():
        for rel in prim.GetRelationships():
            for target in rel.GetTargets():
                assert str(target).startswith("/panda"), (prim.GetPath(), target)


def _private_copy(tmp_path, tabletop_usda):
    """Open a copy: editing a stage opened from the shared file would edit its cached layer for every test."""
    import shutil

    copy = tmp_path / "copy.usda"
    shutil.copy(tabletop_usda, copy)
    return Usd.Stage.Open(str(copy))


def test_check_flags_units_and_missing_scene(tmp_path, tabletop_usda):
    """Centimetre stages, Y-up stages and stages without a physics scene are errors."""
    stage = _private_copy(tmp_path, tabletop_usda)
    UsdGeom.SetStageMetersPerUnit(stage, 0.01)
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    stage.RemovePrim("/World/PhysicsScene")
    path = tmp_path / "cm.usda"
    stage.GetRootLayer().Export(str(path))
    report = check_stage(path)
    assert not report.ok
    text = " ".join(report.errors)
    assert "metersPerUnit is 0.01" in text and "upAxis is Y" in text and "no UsdPhysics.Scene" in text


def test_check_reports_validator_errors(tmp_path, tabletop_usda):
    """A joint whose body relationship points nowhere is caught by the UsdPhysics validators."""
    stage = _private_copy(tmp_path, tabletop_usda)
    joint = UsdPhysics.RevoluteJoint(stage.GetPrimAtPath("/World/Robot/joints/panda_joint3"))
    joint.GetBody1Rel().SetTargets(["/World/DoesNotExist"])
    path = tmp_path / "badjoint.usda"
    stage.GetRootLayer().Export(str(path))
    report = check_stage(path)
    assert not report.ok
    assert any("panda_joint3" in e for e in report.errors), report.errors


def test_check_missing_and_broken_files(tmp_path):
    """Missing and unparsable files raise one-line StageErrors."""
    with pytest.raises(StageError, match="USD file not found"):
        check_stage(tmp_path / "nope.usda")
    broken = tmp_path / "broken.usda"
    broken.write_text("#usda 1.0\ndef Xform \"A\" {\n  float x = \n")
    with pytest.raises(StageError, match="cannot open USD stage") as info:
        check_stage(broken)
    assert "\n" not in str(info.value)
