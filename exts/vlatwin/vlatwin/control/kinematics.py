"""Serial kinematic chains in numpy: forward kinematics and the geometric Jacobian.

A chain runs from a base link to an end-effector (EE) link through 1-DoF revolute/prismatic joints and
fixed transforms. Everything is in the **base link frame** (``_b``): ``fk`` gives the EE pose in it and
the Jacobian's rows are [linear (3); angular (3)] velocities in it. Joint coordinates are the
simulator's (same sign and zero as :attr:`SimState.joint_q`) [rad | m].

Frame model (as in USD, see :meth:`KinematicChain.from_usd`)::

    T_ee_b = F[0] @ M_0(q_0) @ F[1] @ M_1(q_1) @ ... @ M_{n-1}(q_{n-1}) @ F[n]

where ``F[i]`` are fixed 4x4 transforms and ``M_i`` rotates about / translates along joint i's unit
axis (given in joint i's frame, which is ``F[0] @ ... @ F[i]`` with the earlier motions applied).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from vlatwin.control.rotations import rotvec_to_matrix, skew
from vlatwin.errors import StageError, VlatwinError
from vlatwin.utils.transforms import quat_wxyz_to_matrix

JointKind = Literal["revolute", "prismatic"]
_AXES = {"X": (1.0, 0.0, 0.0), "Y": (0.0, 1.0, 0.0), "Z": (0.0, 0.0, 1.0)}


@dataclass(frozen=True, kw_only=True, eq=False)
class ChainJoint:
    """One movable joint of a chain."""

    name: str
    """Joint name: the USD prim path (``from_usd``) or the description's joint name (``from_description``)."""
    kind: JointKind
    axis: np.ndarray
    """Unit axis (3,) in the joint frame; rotation about it (revolute) or translation along it (prismatic)."""
    lower: float
    """Lower limit [rad | m] (-inf when unlimited)."""
    upper: float
    """Upper limit [rad | m] (+inf when unlimited)."""


def joint_motion(kind: JointKind, axis: np.ndarray, q: float) -> np.ndarray:
    """4x4 motion of a 1-DoF joint at coordinate ``q`` [rad | m] about / along unit ``axis``."""
    motion = np.eye(4)
    if kind == "revolute":
        motion[:3, :3] = rotvec_to_matrix(axis * q)
    else:
        motion[:3, 3] = axis * q
    return motion


class KinematicChain:
    """A serial chain from ``base_link`` to ``ee_link`` (see the module docstring for the frame model).

    Args:
        joints: the movable joints, base to tip.
        fixed: ``len(joints) + 1`` fixed 4x4 transforms ``F[0..n]``; ``F[n]`` includes any tool offset.
        base_link: name or prim path of the base link (the frame everything is expressed in).
        ee_link: name or prim path of the link the EE frame rides on.
    """

    def __init__(self, joints, fixed, *, base_link: str = "", ee_link: str = "") -> None:
        self.joints: tuple[ChainJoint, ...] = tuple(joints)
        self.fixed: tuple[np.ndarray, ...] = tuple(np.asarray(f, dtype=float).copy() for f in fixed)
        if len(self.fixed) != len(self.joints) + 1 or any(f.shape != (4, 4) for f in self.fixed):
            raise ValueError(f"need {len(self.joints) + 1} fixed 4x4 transforms for {len(self.joints)} joints")
        self.base_link = base_link
        self.ee_link = ee_link
        # Rodrigues terms per joint, precomputed because fk/jacobian run inside IK loops.
        self._axes = np.array([j.axis for j in self.joints], dtype=float).reshape(-1, 3)
        self._axes /= np.linalg.norm(self._axes, axis=1, keepdims=True)  # Rodrigues needs unit axes
        self._skews = np.array([skew(a) for a in self._axes]).reshape(-1, 3, 3)
        self._outer = np.einsum("ni,nj->nij", self._axes, self._axes)
        self._revolute = np.array([j.kind == "revolute" for j in self.joints], dtype=bool)

    # ------------------------------------------------------------ properties
    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Joint names (USD prim paths for chains read from a stage), base to tip."""
        return tuple(j.name for j in self.joints)

    @property
    def kinds(self) -> tuple[JointKind, ...]:
        return tuple(j.kind for j in self.joints)

    @property
    def lower(self) -> np.ndarray:
        """Lower joint limits (n,) [rad | m]."""
        return np.array([j.lower for j in self.joints])

    @property
    def upper(self) -> np.ndarray:
        """Upper joint limits (n,) [rad | m]."""
        return np.array([j.upper for j in self.joints])

    def with_tool(self, tool_offset: np.ndarray) -> KinematicChain:
        """A copy whose EE frame is moved by ``tool_offset`` (4x4, in the current EE frame)."""
        fixed = [*self.fixed[:-1], self.fixed[-1] @ np.asarray(tool_offset, dtype=float)]
        return KinematicChain(self.joints, fixed, base_link=self.base_link, ee_link=self.ee_link)

    # ------------------------------------------------------------ kinematics
    def _check_q(self, q) -> np.ndarray:
        q = np.asarray(q, dtype=float)
        if q.shape != (self.num_joints,):
            raise ValueError(f"expected {self.num_joints} joint positions, got shape {q.shape}")
        return q

    def joint_frames(self, q) -> tuple[np.ndarray, np.ndarray]:
        """Joint frames before their own motion (n, 4, 4) and the EE pose (4, 4), in the base frame."""
        q = self._check_q(q)
        frames = np.empty((self.num_joints, 4, 4))
        tf = np.eye(4)
        motion = np.eye(4)
        for i, qi in enumerate(q):
            tf = tf @ self.fixed[i]
            frames[i] = tf
            if self._revolute[i]:
                c, s = np.cos(qi), np.sin(qi)
                motion[:3, :3] = c * np.eye(3) + s * self._skews[i] + (1.0 - c) * self._outer[i]
                motion[:3, 3] = 0.0
            else:
                motion[:3, :3] = np.eye(3)
                motion[:3, 3] = self._axes[i] * qi
            tf = tf @ motion
        return frames, tf @ self.fixed[-1]

    def fk(self, q) -> np.ndarray:
        """EE pose in the base frame (4x4) at joint positions ``q`` (n,) [rad | m]."""
        return self.joint_frames(q)[1]

    def jacobian(self, q) -> np.ndarray:
        """Geometric Jacobian (6, n) of the EE frame origin, base frame, linear rows first.

        ``[v_b; w_b] = J @ qd``: column i is ``[z_i x (p_ee - p_i); z_i]`` for a revolute joint and
        ``[z_i; 0]`` for a prismatic one, with ``z_i`` joint i's axis and ``p_i`` its origin in the base
        frame. A joint's own motion moves neither its axis nor its origin, so the pre-motion frame serves.
        """
        return self.fk_jacobian(q)[1]

    def fk_jacobian(self, q) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`fk` and :meth:`jacobian` together, sharing one pass over the chain."""
        frames, ee = self.joint_frames(q)
        z = np.einsum("nij,nj->ni", frames[:, :3, :3], self._axes)
        lever = ee[:3, 3] - frames[:, :3, 3]
        jac = np.zeros((6, self.num_joints))
        rev = self._revolute
        jac[:3, rev] = np.cross(z[rev], lever[rev]).T
        jac[3:, rev] = z[rev].T
        jac[:3, ~rev] = z[~rev].T
        return ee, jac

    # ------------------------------------------------------------ builders
    @classmethod
    def from_description(
        cls, robot, ee_link: str, tool_offset: np.ndarray | None = None, *, base_link: str | None = None
    ):
        """The chain of a :class:`~vlatwin.robots.description.RobotDescription` from ``base_link`` to ``ee_link``.

        Args:
            robot: the description (joints are named as in it, e.g. ``panda_joint1``).
            ee_link: link the EE frame rides on, e.g. ``panda_link7``.
            tool_offset: 4x4 EE frame in ``ee_link``'s frame (e.g. the flange or the fingertip centre).
            base_link: chain base; the robot's base link (``links[0]``) by default.
        """
        base_link = robot.links[0].name if base_link is None else base_link
        by_child = {j.child: j for j in robot.joints}
        path, link = [], ee_link
        while link != base_link:
            if link not in by_child:
                raise VlatwinError(f"robot {robot.name!r}: no joint path from {base_link!r} to {ee_link!r}")
            path.append(by_child[link])
            link = by_child[link].parent
        joints, fixed = [], []
        for spec in reversed(path):
            joints.append(
                ChainJoint(
                    name=spec.name, kind=spec.kind, axis=np.array(_AXES[spec.axis]), lower=spec.lower, upper=spec.upper
                )
            )
            # The description puts the child frame at parent @ parent_tf @ motion (no child-side offset).
            fixed.append(spec.parent_tf)
        fixed.append(np.eye(4) if tool_offset is None else np.asarray(tool_offset, dtype=float))
        return cls(joints, fixed, base_link=base_link, ee_link=ee_link)

    @classmethod
    def from_usd(cls, stage, base_body_path: str, ee_body_path: str, tool_offset: np.ndarray | None = None):
        """The chain between two rigid bodies of a USD stage, read from its UsdPhysics joints.

        A joint places body1 at ``body0 @ T(localPos0, localRot0) @ M(q) @ inv(T(localPos1, localRot1))``
        (quaternions (w, x, y, z)); joints whose body0 is the child side are walked in reverse. Fixed
        joints on the way fold into the fixed transforms. Revolute limits are read in degrees, lengths
        are scaled to meters with the stage's metersPerUnit. Body scale is assumed to be 1.

        Args:
            stage: an open ``Usd.Stage``.
            base_body_path: prim path of the base body, e.g. ``/World/Robot/panda_link0``.
            ee_body_path: prim path of the EE body, e.g. ``/World/Robot/panda_link7``.
            tool_offset: 4x4 EE frame in the EE body's frame [m].

        Raises:
            StageError: a body is missing, no joint path connects them, or a joint on it is not
                revolute/prismatic/fixed.
        """
        from vlatwin.usd.stage import pxr

        pxr()
        from pxr import UsdGeom

        meters = float(UsdGeom.GetStageMetersPerUnit(stage) or 1.0)
        for path in (base_body_path, ee_body_path):
            prim = stage.GetPrimAtPath(path)
            if not prim or not prim.IsValid():
                raise StageError(f"{stage.GetRootLayer().identifier}: no body at {path}")
        edges = _usd_joint_edges(stage, meters)
        route = _find_route(edges, base_body_path, ee_body_path)
        if route is None:
            raise StageError(
                f"{stage.GetRootLayer().identifier}: no joint path from {base_body_path} to {ee_body_path}"
            )

        joints, fixed, pending = [], [], np.eye(4)
        for edge, forward in route:
            pre, post = (
                (edge.frame0, np.linalg.inv(edge.frame1)) if forward else (edge.frame1, np.linalg.inv(edge.frame0))
            )
            if edge.kind == "fixed":
                pending = pending @ pre @ post
                continue
            if edge.kind not in ("revolute", "prismatic"):
                raise StageError(f"{edge.path}: {edge.kind} joints are not supported on a kinematic chain")
            # Walking a joint from body1 to body0 inverts its motion: M(q)^-1 = M(q) about the negated axis.
            axis = edge.axis if forward else -edge.axis
            joints.append(ChainJoint(name=edge.path, kind=edge.kind, axis=axis, lower=edge.lower, upper=edge.upper))
            fixed.append(pending @ pre)
            pending = post
        if not joints:
            raise StageError(f"no revolute/prismatic joint between {base_body_path} and {ee_body_path}")
        tool = np.eye(4) if tool_offset is None else np.asarray(tool_offset, dtype=float)
        fixed.append(pending @ tool)
        return cls(joints, fixed, base_link=base_body_path, ee_link=ee_body_path)


@dataclass(frozen=True, eq=False)
class _UsdJointEdge:
    path: str
    kind: str
    body0: str
    body1: str
    frame0: np.ndarray
    frame1: np.ndarray
    axis: np.ndarray
    lower: float
    upper: float


def _usd_joint_edges(stage, meters: float) -> list[_UsdJointEdge]:
    """Every joint of the stage that connects two bodies, with its frames in meters."""
    from pxr import UsdPhysics

    edges = []
    for prim in stage.Traverse():
        if not prim.IsA(UsdPhysics.Joint):
            continue
        joint = UsdPhysics.Joint(prim)
        enabled = joint.GetJointEnabledAttr().Get()
        body0, body1 = joint.GetBody0Rel().GetTargets(), joint.GetBody1Rel().GetTargets()
        if enabled is False or not body0 or not body1:
            continue  # a weld to the world (one body) is not part of a chain between two bodies
        kind, axis, lower, upper = _joint_kind_and_limits(prim, meters)
        edges.append(
            _UsdJointEdge(
                path=str(prim.GetPath()),
                kind=kind,
                body0=str(body0[0]),
                body1=str(body1[0]),
                frame0=_local_frame(joint.GetLocalPos0Attr().Get(), joint.GetLocalRot0Attr().Get(), meters),
                frame1=_local_frame(joint.GetLocalPos1Attr().Get(), joint.GetLocalRot1Attr().Get(), meters),
                axis=axis,
                lower=lower,
                upper=upper,
            )
        )
    return edges


def _joint_kind_and_limits(prim, meters: float) -> tuple[str, np.ndarray, float, float]:
    from pxr import UsdPhysics

    if prim.IsA(UsdPhysics.RevoluteJoint):
        joint, kind, scale = UsdPhysics.RevoluteJoint(prim), "revolute", np.pi / 180.0
    elif prim.IsA(UsdPhysics.PrismaticJoint):
        joint, kind, scale = UsdPhysics.PrismaticJoint(prim), "prismatic", meters
    elif prim.IsA(UsdPhysics.FixedJoint):
        return "fixed", np.zeros(3), 0.0, 0.0
    else:
        return prim.GetTypeName() or "untyped", np.zeros(3), 0.0, 0.0
    axis = np.array(_AXES[str(joint.GetAxisAttr().Get() or "X")])
    lower = _limit(joint.GetLowerLimitAttr().Get(), scale, -np.inf)
    upper = _limit(joint.GetUpperLimitAttr().Get(), scale, np.inf)
    return kind, axis, lower, upper


def _limit(value, scale: float, unlimited: float) -> float:
    # UsdPhysics writes "no limit" as +-inf; some exporters use huge finite values instead.
    if value is None or not np.isfinite(value) or abs(value) >= 1e30:
        return unlimited
    return float(value) * scale


def _local_frame(pos, rot, meters: float) -> np.ndarray:
    frame = np.eye(4)
    if pos is not None:
        frame[:3, 3] = np.array(pos, dtype=float) * meters
    if rot is not None:
        frame[:3, :3] = quat_wxyz_to_matrix([rot.GetReal(), *rot.GetImaginary()])
    return frame


def _find_route(edges: list[_UsdJointEdge], start: str, goal: str) -> list[tuple[_UsdJointEdge, bool]] | None:
    """Shortest joint path from body ``start`` to ``goal`` (breadth first); each step says if it runs body0 -> body1."""
    links: dict[str, list[tuple[_UsdJointEdge, bool, str]]] = {}
    for edge in edges:
        links.setdefault(edge.body0, []).append((edge, True, edge.body1))
        links.setdefault(edge.body1, []).append((edge, False, edge.body0))
    came_from: dict[str, tuple[str, _UsdJointEdge, bool] | None] = {start: None}
    frontier = [start]
    while frontier and goal not in came_from:
        nxt = []
        for body in frontier:
            for edge, forward, other in links.get(body, []):
                if other not in came_from:
                    came_from[other] = (body, edge, forward)
                    nxt.append(other)
        frontier = nxt
    if goal not in came_from:
        return None
    route, body = [], goal
    while came_from[body] is not None:
        prev, edge, forward = came_from[body]
        route.append((edge, forward))
        body = prev
    return route[::-1]


__all__ = ["ChainJoint", "KinematicChain", "joint_motion"]
