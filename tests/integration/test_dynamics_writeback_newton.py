"""A stage with identified dynamics reproduces what set_params simulated on the nominal stage (Newton, CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from vlatwin.sim.types import JointCommand, SimParams

REACH_BALL = Path(__file__).resolve().parents[2] / "configs" / "tasks" / "reach_ball.yaml"
LINKS = [f"panda_link{i}" for i in range(1, 8)]
OFFSETS = np.array([0.3, 0.25, -0.2, 0.3, 0.2, -0.3, 0.2, 0.0, 0.0])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Nominal stage + params; the dynamics block (stiffness x1.1, link masses x1.2, ...) and its stage."""
    from vlatwin.config.loader import config_from_dict
    from vlatwin.record.recorder import load_sim
    from vlatwin.usd.scene_builder import write_scene

    folder = tmp_path_factory.mktemp("dynamics")
    data = yaml.safe_load(REACH_BALL.read_text())
    physics = {"dt": data["scene"]["physics"]["dt"], "iterations": 4, "solver": "xpbd"}
    nominal_usda = write_scene(config_from_dict(data, source=REACH_BALL).scene, folder / "nominal.usda")
    sim = load_sim(nominal_usda, physics)
    info, p0 = sim.info, sim.get_params()
    sim.close()
    names = [p.rsplit("/", 1)[-1] for p in info.joint_names]
    bodies = [p.rsplit("/", 1)[-1] for p in info.body_paths]
    joints = {name: {"drive_stiffness": float(p0.drive_stiffness[i]) * 1.1} for i, name in enumerate(names[:7])}
    joints["panda_joint4"].update(armature=0.02, friction=0.3)
    joints["panda_joint2"]["damping"] = 1.5
    links = {name: {"mass": float(p0.body_mass[bodies.index(name)]) * 1.2} for name in LINKS}
    dynamics = {"joints": joints, "links": links}
    data["scene"]["robot"]["dynamics"] = dynamics
    authored_usda = write_scene(config_from_dict(data, source=REACH_BALL).scene, folder / "authored.usda")
    return {"folder": folder, "physics": physics, "nominal": nominal_usda, "authored": authored_usda,
            "dynamics": dynamics, "p0": p0, "info": info, "names": names, "bodies": bodies}


def _expected(setup) -> SimParams:
    p0, names, bodies = setup["p0"], setup["names"], setup["bodies"]
    p = p0.copy()
    for name, values in setup["dynamics"]["joints"].items():
        i = names.index(name)
        p.drive_stiffness[i] = values["drive_stiffness"]
        p.joint_armature[i] = values.get("armature", 0.0)
        p.joint_friction[i] = values.get("friction", 0.0)
        p.joint_damping[i] = values.get("damping", 0.0)
    for name, values in setup["dynamics"]["links"].items():
        b = bodies.index(name)
        p.body_inertia[b] *= values["mass"] / p.body_mass[b]
        p.body_mass[b] = values["mass"]
    return p


def _trajectory(sim) -> np.ndarray:
    state = sim.reset()
    target = state.joint_q + OFFSETS
    out = [state.joint_q]
    for _ in range(30):  # 300 steps = 0.5 s of a step change in every arm joint's target
        out.append(sim.step(JointCommand(target_q=target), num_steps=10).joint_q)
    return np.array(out)


def test_authored_stage_reproduces_set_params(setup):
    """get_params() on the authored stage returns the authored values; the motion matches set_params on the nominal
    stage within 1e-5 rad over 300 steps; write_stage_dynamics on the nominal stage gives the same stage behaviour."""
    from vlatwin.record.recorder import load_sim
    from vlatwin.sysid.writeback import dynamics_from_params, write_stage_dynamics

    expected = _expected(setup)
    authored = load_sim(setup["authored"], setup["physics"])
    got = authored.get_params()
    for field in ("drive_stiffness", "drive_damping", "joint_damping", "joint_friction", "joint_armature", "body_mass"):
        np.testing.assert_allclose(getattr(got, field), getattr(expected, field), rtol=2e-6, atol=1e-7, err_msg=field)
    np.testing.assert_allclose(got.body_inertia, expected.body_inertia, rtol=1e-5, atol=1e-9)
    authored_q = _trajectory(authored)
    authored.close()

    # The fit's view: nominal stage + set_params (armature / inertial first, then the passive terms, as the backend
    # applies authored values; see SimBackendNewton._apply_authored_joint_dynamics).
    nominal = load_sim(setup["nominal"], setup["physics"])
    nominal.set_params(SimParams(drive_stiffness=expected.drive_stiffness, joint_armature=expected.joint_armature,
                                 body_mass=expected.body_mass, body_inertia=expected.body_inertia))
    nominal.set_params(SimParams(joint_damping=expected.joint_damping, joint_friction=expected.joint_friction))
    nominal_q = _trajectory(nominal)
    fitted = nominal.get_params()
    nominal.close()
    assert np.abs(authored_q[-1] - authored_q[0])[:7].max() > 0.05  # the arm really moved
    np.testing.assert_allclose(authored_q, nominal_q, rtol=0.0, atol=1e-5)

    # sysid's write path: params -> dynamics block -> stage; same behaviour as the config-built stage.
    info = setup["info"]
    robot = [p.startswith(info.articulation_root + "/") for p in info.body_paths]
    dynamics = dynamics_from_params(fitted, info.joint_names, info.body_paths, nominal=setup["p0"], bodies=robot, rel_tol=1e-6)
    assert set(dynamics["links"]) == set(LINKS)
    assert set(dynamics["joints"]["panda_joint4"]) == {"drive_stiffness", "armature", "friction"}
    written = write_stage_dynamics(setup["nominal"], setup["folder"] / "written.usda", dynamics)
    sim = load_sim(written, setup["physics"])
    np.testing.assert_allclose(sim.get_params().joint_friction, expected.joint_friction, rtol=2e-6)
    written_q = _trajectory(sim)
    sim.close()
    np.testing.assert_allclose(written_q, authored_q, rtol=0.0, atol=1e-5)
