"""Controllers and action spaces: joint position (absolute/delta), joint velocity, EE delta pose, gripper conventions.

Pure numpy; :meth:`KinematicChain.from_usd` imports pxr when called. Build a controller with
:func:`make_controller`, e.g.::

    chain = KinematicChain.from_usd(stage, "/World/Robot/panda_link0", "/World/Robot/panda_link7")
    ctrl = make_controller("ee_delta_pose", info=info, chain=chain, control_dt=0.05, gripper="open_0_1")
    ctrl.reset(state)
    command = ctrl.compute(action, state)   # a JointCommand; ctrl.spec describes the action
"""

from vlatwin.control.base import ActionSpec, Controller, RobotJoints, match_joint_names
from vlatwin.control.ee import EndEffectorDeltaController, apply_ee_delta
from vlatwin.control.factory import CONTROLLER_KINDS, make_controller, robot_joints_from_info
from vlatwin.control.gripper import (
    GripperConvention,
    GripperMapping,
    closure_to_gripper,
    closure_to_joint_targets,
    gripper_to_closure,
    joints_to_closure,
)
from vlatwin.control.ik import IKResult, dls_step, solve_ik
from vlatwin.control.joint import JointPositionController, JointVelocityController
from vlatwin.control.kinematics import ChainJoint, KinematicChain

__all__ = [
    "CONTROLLER_KINDS",
    "ActionSpec",
    "ChainJoint",
    "Controller",
    "EndEffectorDeltaController",
    "GripperConvention",
    "GripperMapping",
    "IKResult",
    "JointPositionController",
    "JointVelocityController",
    "KinematicChain",
    "RobotJoints",
    "apply_ee_delta",
    "closure_to_gripper",
    "closure_to_joint_targets",
    "dls_step",
    "gripper_to_closure",
    "joints_to_closure",
    "make_controller",
    "match_joint_names",
    "robot_joints_from_info",
    "solve_ik",
]
