"""Identified dynamics -> config block -> USD attributes (per-degree where USD wants it), and back into files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from vlatwin.errors import ConfigError, VlatwinError

REACH_BALL = Path(__file__).resolve().parents[2] / "configs" / "tasks" / "reach_ball.yaml"
RAD = math.pi / 180.0  # [x/rad] * RAD = [x/deg]

DYNAMICS = {
    "joints": {
        "panda_joint2": {"drive_stiffness": 61234.5, "drive_damping": 110.2, "damping": 1.5},
        "panda_joint4": {"friction": 0.3, "armature": 0.02},
        "panda_finger_joint_left": {"drive_stiffness": 900.0, "damping": 2.0, "friction": 4.0, "armature": 0.1},
    },
    "links": {"panda_link3": {"mass": 2.61}},
}


def _config(dynamics, source=REACH_BALL):
    from vlatwin.config.loader import config_from_dict

    data = yaml.safe_load(REACH_BALL.read_text())
    data["scene"]["robot"]["dynamics"] = dynamics
    return config_from_dict(data, source=source)


def _get(prim, name):
    attr = prim.GetAttribute(name)
    assert attr and attr.HasAuthoredValue(), f"{prim.GetPath()}: {name} not authored"
    return float(attr.Get())


def test_scene_build_authors_dynamics_with_usd_units():
    """Angular gains and passive damping per degree, friction / armature as given; prismatic as given."""
    from vlatwin.usd.scene_builder import build_scene

    stage = build_scene(_config(DYNAMICS).scene)
    j2 = stage.GetPrimAtPath("/World/Robot/joints/panda_joint2")
    assert _get(j2, "drive:angular:physics:stiffness") == pytest.approx(61234.5 * RAD, rel=1e-6)
    assert _get(j2, "drive:angular:physics:damping") == pytest.approx(110.2 * RAD, rel=1e-6)
    assert _get(j2, "newton:damping") == pytest.approx(1.5 * RAD, rel=1e-6)
    assert _get(j2, "physxJointAxis:angular:viscousFrictionCoefficient") == pytest.approx(1.5 * RAD, rel=1e-6)
    assert not j2.GetAttribute("newton:friction")

    j4 = stage.GetPrimAtPath("/World/Robot/joints/panda_joint4")
    schemas = j4.GetPrimTypeInfo().GetAppliedAPISchemas()
    assert "PhysxJointAPI" in schemas and "PhysxJointAxisAPI:angular" in schemas
    for name in ("newton:friction", "physxJointAxis:angular:staticFrictionEffort", "physxJointAxis:angular:dynamicFrictionEffort"):
        assert _get(j4, name) == pytest.approx(0.3, rel=1e-6)
    for name in ("physxJoint:armature", "physxJointAxis:angular:armature"):
        assert _get(j4, name) == pytest.approx(0.02, rel=1e-6)
    # Unlisted values keep the robot's own: joint 4's drive gain is the built-in one.
    j1 = stage.GetPrimAtPath("/World/Robot/joints/panda_joint1")
    assert _get(j4, "drive:angular:physics:stiffness") == pytest.approx(_get(j1, "drive:angular:physics:stiffness"))
    assert not j1.GetAttribute("physxJoint:armature")

    finger = stage.GetPrimAtPath("/World/Robot/joints/panda_finger_joint_left")
    assert "PhysxJointAxisAPI:linear" in finger.GetPrimTypeInfo().GetAppliedAPISchemas()
    assert _get(finger, "drive:linear:physics:stiffness") == pytest.approx(900.0, rel=1e-6)
    assert _get(finger, "newton:damping") == pytest.approx(2.0, rel=1e-6)
    assert _get(finger, "physxJointAxis:linear:viscousFrictionCoefficient") == pytest.approx(2.0, rel=1e-6)
    assert _get(finger, "physxJointAxis:linear:staticFrictionEffort") == pytest.approx(4.0, rel=1e-6)
    assert _get(finger, "physxJoint:armature") == pytest.approx(0.1, rel=1e-6)

    from pxr import UsdPhysics

    mass = UsdPhysics.MassAPI(stage.GetPrimAtPath("/World/Robot/panda_link3")).GetMassAttr().Get()
    assert mass == pytest.approx(2.61, rel=1e-6)


def test_scene_without_dynamics_authors_none_of_it():
    from vlatwin.usd.scene_builder import build_scene

    stage = build_scene(_config({}).scene)
    for prim in stage.Traverse():
        names = [a.GetName() for a in prim.GetAttributes()]
        assert not [n for n in names if n.startswith(("newton:", "physxJoint"))], prim.GetPath()


@pytest.mark.parametrize(
    ("dynamics", "expected"),
    [
        ({"joints": {"panda_joint9": {"damping": 1.0}}}, "scene.robot.dynamics.joints: unknown joint 'panda_joint9'; available: "),
        ({"links": {"panda_hand_x": {"mass": 1.0}}}, "scene.robot.dynamics.links: unknown link 'panda_hand_x'; available: "),
    ],
)
def test_unknown_names_fail_the_build_in_one_line(dynamics, expected):
    from vlatwin.usd.scene_builder import build_scene

    with pytest.raises(ConfigError) as err:
        build_scene(_config(dynamics).scene)
    message = str(err.value)
    assert message.startswith(expected) and "\n" not in message
    assert ("panda_joint1" if "joints" in dynamics else "panda_link1") in message


@pytest.mark.parametrize(
    ("dynamics", "field"),
    [
        ({"joints": {"panda_joint1": {"dampnig": 1.0}}}, "dampnig"),
        ({"joints": {"panda_joint1": {"drive_stiffness": 0.0}}}, "drive_stiffness"),
        ({"joints": {"panda_joint1": {"friction": -1.0}}}, "friction"),
        ({"joints": {"panda_joint1": {"armature": float("nan")}}}, "armature"),
        ({"links": {"panda_link1": {"mass": 0.0}}}, "mass"),
        ({"joint": {}}, "joint"),
    ],
)
def test_config_rejects_bad_dynamics(dynamics, field):
    with pytest.raises(ConfigError, match=field):
        _config(dynamics)


def test_dynamics_from_params_selects_changed_values_and_robot_links():
    from vlatwin.sim.types import SimParams
    from vlatwin.sysid.writeback import dynamics_from_params

    joints = ("/World/Robot/joints/j1", "/World/Robot/joints/j2")
    bodies = ("/World/Robot/link1", "/World/Robot/link2", "/World/Objects/cube")
    nominal = SimParams(
        drive_stiffness=np.array([100.0, 200.0]), joint_friction=np.zeros(2), body_mass=np.array([1.0, 2.0, 0.1])
    )
    fitted = SimParams(
        drive_stiffness=np.array([100.0, 220.0]), joint_friction=np.array([0.0, 0.5]), body_mass=np.array([1.5, 2.0, 0.2])
    )
    out = dynamics_from_params(fitted, joints, bodies, nominal=nominal, bodies=[True, True, False])
    assert out == {"joints": {"j2": {"drive_stiffness": 220.0, "friction": 0.5}}, "links": {"link1": {"mass": 1.5}}}
    full = dynamics_from_params(fitted, joints, bodies, bodies=[True, True, False])
    assert full["joints"]["j1"] == {"drive_stiffness": 100.0, "friction": 0.0}
    assert set(full["links"]) == {"link1", "link2"}
    with pytest.raises(VlatwinError, match="drive_stiffness"):
        dynamics_from_params(SimParams(drive_stiffness=np.array([0.0, 1.0])), joints, bodies)


def _built_stage(tmp_path, dynamics=None) -> Path:
    from vlatwin.usd.scene_builder import write_scene

    return write_scene(_config(dynamics or {}).scene, tmp_path / "scene.usda")


def test_write_stage_dynamics_authors_and_scales_inertia(tmp_path):
    from pxr import Gf, Sdf, Usd, UsdPhysics

    from vlatwin.sysid.writeback import write_stage_dynamics

    src = _built_stage(tmp_path)
    layer = Sdf.Layer.FindOrOpen(str(src))
    stage = Usd.Stage.Open(layer)
    mass_api = UsdPhysics.MassAPI(stage.GetPrimAtPath("/World/Robot/panda_link3"))
    mass_api.CreateMassAttr().Set(2.0)
    mass_api.CreateDiagonalInertiaAttr().Set(Gf.Vec3f(0.01, 0.02, 0.03))
    layer.Save()
    before = src.read_text()

    out = write_stage_dynamics(src, tmp_path / "fitted.usda", DYNAMICS)
    assert src.read_text() == before  # the input is not edited
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    fitted = Usd.Stage.Open(str(out))
    link = UsdPhysics.MassAPI(fitted.GetPrimAtPath("/World/Robot/panda_link3"))
    assert link.GetMassAttr().Get() == pytest.approx(2.61, rel=1e-6)
    np.testing.assert_allclose(np.array(link.GetDiagonalInertiaAttr().Get()), np.array([0.01, 0.02, 0.03]) * 2.61 / 2.0, rtol=1e-6)
    j2 = fitted.GetPrimAtPath("/World/Robot/joints/panda_joint2")
    assert _get(j2, "drive:angular:physics:stiffness") == pytest.approx(61234.5 * RAD, rel=1e-6)
    assert _get(j2, "newton:damping") == pytest.approx(1.5 * RAD, rel=1e-6)
    # The in-process copy of the input stage did not pick up the edits.
    assert not stage.GetPrimAtPath("/World/Robot/joints/panda_joint2").GetAttribute("newton:damping")


def test_write_stage_dynamics_unknown_name_is_one_line_and_writes_nothing(tmp_path):
    from vlatwin.sysid.writeback import write_stage_dynamics

    src = _built_stage(tmp_path)
    with pytest.raises(VlatwinError) as err:
        write_stage_dynamics(src, tmp_path / "out.usda", {"joints": {"elbow": {"damping": 1.0}}})
    assert "unknown joint 'elbow'; available: panda_finger_joint_left" in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out.usda").exists()


def test_write_config_dynamics_merges_and_validates(tmp_path):
    from vlatwin.config.loader import load_config
    from vlatwin.sysid.writeback import write_config_dynamics

    data = yaml.safe_load(REACH_BALL.read_text())
    data["scene"]["robot"]["dynamics"] = {"joints": {"panda_joint2": {"damping": 9.0, "friction": 0.1}}}
    src = tmp_path / "reach.yaml"
    src.write_text(yaml.safe_dump(data, sort_keys=False))
    out = write_config_dynamics(src, tmp_path / "reach_fitted.yaml", DYNAMICS)
    cfg = load_config(out).scene.robot.dynamics
    j2 = cfg.joints["panda_joint2"]
    assert (j2.damping, j2.friction, j2.drive_stiffness) == (1.5, 0.1, 61234.5)  # new wins, old kept
    assert cfg.joints["panda_joint4"].armature == 0.02
    assert cfg.links["panda_link3"].mass == 2.61
    assert load_config(out).scene.objects == load_config(REACH_BALL).scene.objects

    with pytest.raises(VlatwinError, match="dampnig"):
        write_config_dynamics(src, tmp_path / "bad.yaml", {"joints": {"panda_joint1": {"dampnig": 1.0}}})
    assert not (tmp_path / "bad.yaml").exists()


def test_write_config_dynamics_refuses_a_folder_that_breaks_relative_paths(tmp_path):
    from vlatwin.sysid.writeback import write_config_dynamics

    (tmp_path / "robot.usda").write_text("#usda 1.0\n")
    src = tmp_path / "cfg.yaml"
    src.write_text(yaml.safe_dump({"scene": {"robot": {"source": "usd", "path": "robot.usda"}}}))
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ConfigError, match="write it next to"):
        write_config_dynamics(src, tmp_path / "elsewhere" / "cfg.yaml", {"links": {"base": {"mass": 1.0}}})
