"""Articulated USD robots vlatwin did not write: the ones shipped inside the newton package, referenced by
a config (``robot.source: usd``) into the default table scene, simulated on the Newton CPU backend.

Each must start where its asset says plus the placement, and then rest or fall at speeds free fall
explains; assets that cannot work are refused with one line that says why.
"""

from __future__ import annotations

import math
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from vlatwin.config.loader import config_from_dict
from vlatwin.errors import ConfigError, StageError
from vlatwin.sim.newton import SimBackendNewton
from vlatwin.usd.scene_builder import write_scene
from vlatwin.utils.transforms import quat_wxyz_to_matrix, rot_z

G = 9.81
TABLE_TOP = 0.75
"""Height of the default table's top [m]."""
STEPS, CHUNK = 300, 15
"""0.5 s at 600 Hz, speeds checked every 25 ms."""
SPEED_MARGIN = 1.0
"""[m/s] Added to the free-fall speed from the robot's highest start point (drives and contacts)."""


def _newton_asset(name: str) -> Path:
    spec = find_spec("newton")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "examples" / "assets" / name


def _load(tmp_path, robot: dict, *, name: str = "scene", **backend):
    cfg = config_from_dict({"scene": {"robot": {"source": "usd", **robot}}})
    stage = write_scene(cfg.scene, tmp_path / f"{name}.usda")
    sim = SimBackendNewton(device="cpu", **backend)
    return sim, sim.load(stage)


def _robot(info) -> np.ndarray:
    return np.array([i for i, p in enumerate(info.body_paths) if p.startswith("/World/Robot/")])


def _run_checked(sim, info):
    """Step 0.5 s; no robot body may move faster than free fall from the robot's highest start point allows."""
    rob = _robot(info)
    start = sim.get_state()
    bound = math.sqrt(2.0 * G * max(start.body_pose_w[rob, 2].max(), 0.0)) + SPEED_MARGIN
    fastest = 0.0
    for _ in range(STEPS // CHUNK):
        sim.step(num_steps=CHUNK)
        state = sim.get_state()
        speed = np.linalg.norm(state.body_vel_w[rob, :3], axis=1)
        assert np.all(np.isfinite(speed))
        worst = int(np.argmax(speed))
        assert speed[worst] <= bound, f"{info.body_paths[rob[worst]]} at {speed[worst]:.2f} m/s > {bound:.2f} m/s"
        fastest = max(fastest, float(speed[worst]))
    return start, state, fastest


def _pos(state, info, body: str) -> np.ndarray:
    return state.body_pose_w[info.body_index(f"/World/Robot/{body}"), :3]


# ---------------------------------------------------------------- fixed base
@pytest.mark.parametrize(
    ("asset", "base", "child", "child_offset"),
    [
        # rail welded at the asset's origin; pole1 at (0.11, 0, 0.5) in the asset; no defaultPrim issue
        ("cartpole.usda", "rail", "pole1", (0.11, 0.0, 0.5)),
        # no defaultPrim: the one root prim holding an articulation (/cartpole) is referenced
        ("cartpole_single_pendulum.usda", "slider", "pole", (0.12, 0.0, 0.0)),
        # a hinged flap on an anchor at (0, 0, 0.01), with a free cube and sphere lying on the flap
        ("sensor_contact_scene.usda", "Anchor", "Flap", (0.0, 0.0, 1.96)),
    ],
)
def test_fixed_base_asset_stays_where_placed(tmp_path, asset, base, child, child_offset):
    """The welded base starts and stays at placement + the asset's own offset; nothing moves too fast."""
    position, yaw = np.array([0.4, 0.0, 0.9]), math.radians(90.0)
    sim, info = _load(tmp_path, {"path": str(_newton_asset(asset)), "position": position.tolist(), "yaw_deg": 90.0})
    asset_base = {"Anchor": (0.0, 0.0, 0.01)}.get(base, (0.0, 0.0, 0.0))
    start, end, _ = _run_checked(sim, info)
    expected_base = position + rot_z(yaw) @ np.array(asset_base)
    np.testing.assert_allclose(_pos(start, info, base), expected_base, atol=1e-5)
    np.testing.assert_allclose(_pos(end, info, base), expected_base, atol=1e-3)
    np.testing.assert_allclose(_pos(start, info, child), position + rot_z(yaw) @ np.array(child_offset), atol=1e-5)


# ------------------------------------------------------------- floating base
@pytest.mark.parametrize("solver", ["xpbd", "vbd"])
def test_ant_starts_at_its_own_height_and_lands_on_the_table(tmp_path, solver):
    """ant.usda's root stands 1 m up: placed on the table top it starts 1 m above it, falls and rests."""
    position = np.array([0.4, 0.0, TABLE_TOP])
    robot = {"path": str(_newton_asset("ant.usda")), "position": position.tolist(), "yaw_deg": 30.0}
    sim, info = _load(tmp_path, robot, solver=solver)
    start, end, fastest = _run_checked(sim, info)
    np.testing.assert_allclose(_pos(start, info, "torso"), position + [0.0, 0.0, 1.0], atol=1e-5)
    torso_rot = quat_wxyz_to_matrix(start.body_pose_w[info.body_index("/World/Robot/torso"), 3:])
    np.testing.assert_allclose(torso_rot, rot_z(math.radians(30)), atol=1e-5)
    torso = _pos(end, info, "torso")
    assert TABLE_TOP + 0.15 < torso[2] < TABLE_TOP + 0.6, torso  # on the table on its legs or torso, not through it
    assert np.linalg.norm(torso[:2] - position[:2]) < 0.3  # landed where it was dropped
    assert np.linalg.norm(end.body_vel_w[info.body_index("/World/Robot/torso"), :3]) < 0.3  # at rest
    assert fastest > 1.0  # it did fall


@pytest.mark.parametrize("solver", ["xpbd", "vbd"])
def test_humanoid_next_to_the_table_falls_onto_the_floor(tmp_path, solver):
    """humanoid.usda (torso at its origin, feet 1.26 m below) placed beside the table with its feet just
    above the floor: it drops onto its feet and sags or collapses, never through the floor."""
    position = np.array([1.5, 0.0, 1.4])
    robot = {"path": str(_newton_asset("humanoid.usda")), "position": position.tolist()}
    sim, info = _load(tmp_path, robot, solver=solver)
    start, end, _ = _run_checked(sim, info)
    np.testing.assert_allclose(_pos(start, info, "torso"), position, atol=1e-5)
    rob = _robot(info)
    z = end.body_pose_w[rob, 2]
    assert z.min() > -0.03, info.body_paths[rob[int(np.argmin(z))]]  # capsule centres stay (about) above the floor
    assert z.min() < 0.15  # standing on the floor, not hovering
    assert 0.3 < _pos(end, info, "torso")[2] < position[2]


# -------------------------------------------------------- authored settings
def test_authored_self_collision_settings_are_honoured(tmp_path):
    """The humanoid's collision groups let its limbs collide (jointed pairs excepted); the ant authors
    physxArticulation:enabledSelfCollisions = 0, so none of its shapes collide with each other."""
    for asset, expect_self in (("humanoid.usda", True), ("ant.usda", False)):
        position = [1.5, 0.0, 1.4] if expect_self else [0.4, 0.0, TABLE_TOP]
        sim, info = _load(tmp_path, {"path": str(_newton_asset(asset)), "position": position}, name=asset)
        body = [info.body_paths[b] if b >= 0 else "" for b in info.shape_body]
        pairs = {
            frozenset((body[a], body[b]))
            for a, b in sim.model.shape_contact_pairs.numpy()[: sim.model.shape_contact_pair_count]
            if body[a].startswith("/World/Robot/") and body[b].startswith("/World/Robot/")
        }
        if expect_self:
            assert frozenset(("/World/Robot/left_thigh", "/World/Robot/right_thigh")) in pairs
            assert frozenset(("/World/Robot/right_thigh", "/World/Robot/right_shin")) not in pairs  # jointed
        else:
            assert not pairs
        sim.close()


# ------------------------------------------------------------------ refused
def test_closed_loop_asset_is_refused_in_one_line(tmp_path):
    """boxes_fourbar.usda is a four-bar loop with no joint excluded from the articulation."""
    with pytest.raises(StageError, match=r"joint_1, .*joint_4 form a closed loop .*excludeFromArticulation") as err:
        _load(tmp_path, {"path": str(_newton_asset("boxes_fourbar.usda")), "position": [0.4, 0.0, 0.8]})
    assert "\n" not in str(err.value)


def test_robot_starting_inside_the_floor_is_refused_in_one_line(tmp_path):
    """The humanoid at the default robot position (torso at table-top height) has its feet 0.5 m in the floor."""
    expected = r"/World/Robot/\w+ starts 0\.\d+ m inside /World/.* raise robot\.position z"
    with pytest.raises(StageError, match=expected) as err:
        _load(tmp_path, {"path": str(_newton_asset("humanoid.usda"))})
    assert "\n" not in str(err.value)


# --------------------------------------------------- placement composition
ASSET = """#usda 1.0
(
    defaultPrim = "arm"
    metersPerUnit = {mpu}
    kilogramsPerUnit = 1
    upAxis = "{up}"
)

def Xform "arm" (
    prepend apiSchemas = ["PhysicsArticulationRootAPI"]
)
{{
    double3 xformOp:translate = (0.3, 0, 0.2)
    double3 xformOp:rotateXYZ = (0, 0, 90)
    uniform token[] xformOpOrder = ["xformOp:translate", "xformOp:rotateXYZ"]

    def Xform "base" (
        prepend apiSchemas = ["PhysicsRigidBodyAPI", "PhysicsMassAPI"]
    )
    {{
        float physics:mass = 2
        def Cube "box" (
            prepend apiSchemas = ["PhysicsCollisionAPI"]
        )
        {{
            double size = 0.1
        }}
    }}

    def Xform "link" (
        prepend apiSchemas = ["PhysicsRigidBodyAPI", "PhysicsMassAPI"]
    )
    {{
        double3 xformOp:translate = (0.2, 0, 0)
        uniform token[] xformOpOrder = ["xformOp:translate"]
        float physics:mass = 0.5
        def Cube "box" (
            prepend apiSchemas = ["PhysicsCollisionAPI"]
        )
        {{
            double size = 0.05
        }}
    }}

    def PhysicsFixedJoint "weld"
    {{
        rel physics:body1 = </arm/base>
        point3f physics:localPos0 = (0.3, 0, 0.2)
        quatf physics:localRot0 = (0.70710677, 0, 0, 0.70710677)
    }}

    def PhysicsRevoluteJoint "hinge" (
        prepend apiSchemas = ["PhysicsDriveAPI:angular"]
    )
    {{
        uniform token physics:axis = "Z"
        rel physics:body0 = </arm/base>
        rel physics:body1 = </arm/link>
        point3f physics:localPos0 = (0.2, 0, 0)
        point3f physics:localPos1 = (0, 0, 0)
        float drive:angular:physics:stiffness = 10
        float drive:angular:physics:damping = 1
    }}
}}
"""


def test_placement_composes_with_the_asset_root_transform(tmp_path):
    """An asset whose root is offset (0.3, 0, 0.2) and turned 90 deg: placed at p with yaw 30 deg, its
    base starts (and, welded, stays) at p + Rz(30) (0.3, 0, 0.2), turned 120 deg."""
    asset = tmp_path / "arm.usda"
    asset.write_text(ASSET.format(mpu=1, up="Z"))
    position, yaw = np.array([0.1, 0.2, 1.0]), math.radians(30.0)
    sim, info = _load(tmp_path, {"path": str(asset), "position": position.tolist(), "yaw_deg": 30.0})
    start, end, _ = _run_checked(sim, info)
    base = info.body_index("/World/Robot/base")
    np.testing.assert_allclose(start.body_pose_w[base, :3], position + rot_z(yaw) @ [0.3, 0.0, 0.2], atol=1e-5)
    np.testing.assert_allclose(quat_wxyz_to_matrix(start.body_pose_w[base, 3:]), rot_z(math.radians(120)), atol=1e-5)
    np.testing.assert_allclose(_pos(start, info, "link"), position + rot_z(yaw) @ [0.3, 0.2, 0.2], atol=1e-5)
    np.testing.assert_allclose(end.body_pose_w[base, :3], start.body_pose_w[base, :3], atol=1e-4)
    np.testing.assert_allclose(_pos(end, info, "link"), _pos(start, info, "link"), atol=1e-3)


def test_y_up_asset_is_turned_z_up_and_other_units_are_refused(tmp_path):
    """A Y-up asset is turned Z-up (+90 deg about X) before the placement; an asset in centimetres is
    refused (masses, gains and limits would keep their units under a scale)."""
    from pxr import Usd, UsdGeom

    from vlatwin.utils.transforms import rot_x

    def scene(name, mpu, up):
        asset = tmp_path / f"{name}.usda"
        asset.write_text(ASSET.format(mpu=mpu, up=up))
        cfg = config_from_dict({"scene": {"robot": {"source": "usd", "path": str(asset), "position": [0.0, 0.0, 1.0]}}})
        return write_scene(cfg.scene, tmp_path / f"scene_{name}.usda")

    stage = Usd.Stage.Open(str(scene("arm_y", 1, "Y")))
    root = np.array(UsdGeom.Xformable(stage.GetPrimAtPath("/World/Robot")).ComputeLocalToWorldTransform(0.0)).T
    # Y-up (0.3, 0, 0.2) is Z-up (0.3, -0.2, 0): the asset's +Y (up) becomes +Z.
    np.testing.assert_allclose(root[:3, 3], [0.3, -0.2, 1.0], atol=1e-9)
    np.testing.assert_allclose(root[:3, :3], rot_x(math.pi / 2) @ rot_z(math.pi / 2), atol=1e-9)

    with pytest.raises(ConfigError, match=r"arm_cm.usda: authored with metersPerUnit = 0.01, the scene uses 1") as err:
        scene("arm_cm", 0.01, "Z")
    assert "\n" not in str(err.value)
