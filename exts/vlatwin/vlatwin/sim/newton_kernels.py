"""Warp kernel vlatwin adds to Newton's step: Coulomb joint friction.

XPBD applies drive gains and ``Control.joint_f`` but not ``Model.joint_friction`` (Newton 1.8 solver
docs), so the backend turns friction into a joint force computed from the joint velocities at the start
of each step. Imported only after Warp is.
"""

from __future__ import annotations

import warp as wp


@wp.kernel
def passive_joint_forces(
    joint_qd: wp.array(dtype=wp.float32),
    dof_index: wp.array(dtype=wp.int32),
    friction: wp.array(dtype=wp.float32),
    friction_velocity: wp.array(dtype=wp.float32),
    feed_forward: wp.array(dtype=wp.float32),
    joint_f: wp.array(dtype=wp.float32),
):
    """joint_f = feed-forward - friction * sat(qd / v0) for each commanded DOF (a smooth sign())."""
    i = wp.tid()
    dof = dof_index[i]
    sat = wp.clamp(joint_qd[dof] / friction_velocity[i], -1.0, 1.0)
    joint_f[dof] = feed_forward[i] - friction[i] * sat
