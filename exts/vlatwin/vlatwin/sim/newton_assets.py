"""What the Newton backend decides about USD assets it did not write (robots referenced from elsewhere).

Pure functions, called by :meth:`SimBackendNewton.load`:

- :data:`SELF_COLLISIONS_WHEN_UNAUTHORED`: the self-collision default for articulations that author none;
- :func:`check_joint_loops`: a closed chain of joints with none excluded from the articulation is refused
  with one line (Newton and PhysX articulations are trees);
- :func:`clamp_initial_joint_positions`: initial joint positions outside their limits start at the limit;
- :func:`armature_joints`: joints whose authored armature XPBD/VBD ignore (reported, not emulated);
- :func:`check_start_overlaps`: a body that starts deep inside another collider is refused with one line;
- :func:`align_revolute_axes_with_twist`: revolute joints re-framed so XPBD reads their angle exactly.

Measured with the articulated USD robots shipped in ``newton/examples/assets`` (cartpole, cartpole single
pendulum, ant, humanoid, the contact-sensor hinge; XPBD and VBD at 600 Hz, 4 iterations, on CPU): placed
where their asset says, every one rests or falls at speeds free fall explains. What made them explode
was never the solver but the start: bodies inside the table top or the floor (the ant lost its asset's
1 m root offset; the humanoid at the default robot position has its feet 0.5 m in the floor), and the
ant's feet authored at 0 deg with limits [30, 100] deg. XPBD has no depenetration limit and corrects an
overlap or a violated limit within about one step, i.e. at about depth/dt: 0.5 m at 600 Hz is 300 m/s.
More iterations, substeps or another solver do not make such a start physical, so no solver is chosen
per asset: overlaps are refused (where, how deep, what to do) and limits are clamped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlatwin.errors import StageError

SELF_COLLISIONS_WHEN_UNAUTHORED = True
"""``enable_self_collisions`` passed to Newton's USD importer. Newton resolves the authored value per
articulation itself (``newton:selfCollisionEnabled``, else ``physxArticulation:enabledSelfCollisions`` on
the articulation root) and applies UsdPhysics collision groups, ``physics:filteredPairs`` and jointed
pairs (``physics:collisionEnabled``) on top; this is only the value for articulations that author
nothing, and UsdPhysics/PhysX say colliders collide unless filtered. vlatwin's own robots filter their
links with a collision group, so they are unaffected."""

MAX_DEPENETRATION_SPEED = 10.0
"""[m/s] The fastest an overlap present at the start may be pushed apart. PhysX caps this per body
(``physxRigidBody:maxDepenetrationVelocity``, 10 in Newton's humanoid.usda); XPBD has no cap, so a
start overlap deeper than this times dt is refused instead of being simulated."""


def check_joint_loops(stage, stage_path) -> None:
    """Refuse joints that close a kinematic loop with none of them excluded from the articulation.

    PhysX and Newton build articulations as trees; a loop (e.g. a four-bar linkage) needs one of its
    joints marked ``physics:excludeFromArticulation = true`` (then solved as a loop constraint).
    """
    from pxr import UsdPhysics

    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    tree: dict[str, list[tuple[str, str]]] = {}
    for prim in stage.Traverse():
        if not prim.IsA(UsdPhysics.Joint):
            continue
        joint = UsdPhysics.Joint(prim)
        if joint.GetExcludeFromArticulationAttr().Get() or joint.GetJointEnabledAttr().Get() is False:
            continue
        body0, body1 = joint.GetBody0Rel().GetTargets(), joint.GetBody1Rel().GetTargets()
        if not body0 or not body1:
            continue  # tied to the world: a fixed or floating base, never part of a loop here
        a, b = str(body0[0]), str(body1[0])
        if a != b and find(a) == find(b):
            loop = [str(prim.GetPath()), *_tree_path(tree, a, b)]
            raise StageError(
                f"{stage_path}: joints {', '.join(sorted(loop))} form a closed loop and none is excluded from the "
                "articulation; Newton (like PhysX) builds articulations as trees: set physics:excludeFromArticulation "
                "= true on one joint of the loop"
            )
        parent[find(a)] = find(b)
        tree.setdefault(a, []).append((b, str(prim.GetPath())))
        tree.setdefault(b, []).append((a, str(prim.GetPath())))


def _tree_path(tree: dict[str, list[tuple[str, str]]], start: str, goal: str) -> list[str]:
    """Joints on the path between two bodies of a joint forest (breadth-first)."""
    came: dict[str, tuple[str, str] | None] = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        if node == goal:
            break
        for other, joint in tree.get(node, []):
            if other not in came:
                came[other] = (node, joint)
                queue.append(other)
    joints = []
    node = goal
    while came.get(node):
        node, joint = came[node]
        joints.append(joint)
    return joints


def clamp_initial_joint_positions(model, newton) -> list[tuple[str, float, float, float]]:
    """Move initial joint positions that lie outside their limits onto the nearest limit, in place.

    Solvers enforce limits as hard constraints: XPBD corrects a violated limit within about one step,
    so a start 30 deg outside (ant.usda's feet: position 0, limits [30, 100] deg) swings the link at
    ~10 m/s before anything else happens. Call after ``finalize`` and before the first ``eval_fk``.

    Returns (joint label, authored position, lower, upper) per clamped DOF [rad | m].
    """
    joint_type = model.joint_type.numpy()
    one_dof = {int(newton.JointType.REVOLUTE), int(newton.JointType.PRISMATIC), int(newton.JointType.D6)}
    q = model.joint_q.numpy()
    q_start = model.joint_q_start.numpy()
    qd_start = model.joint_qd_start.numpy()
    dof_dim = model.joint_dof_dim.numpy()
    lower = model.joint_limit_lower.numpy()
    upper = model.joint_limit_upper.numpy()
    clamped = []
    for j, jtype in enumerate(joint_type):
        if int(jtype) not in one_dof:
            continue  # revolute/prismatic/D6 store one coordinate per DOF; free/ball joints use quaternions
        for k in range(int(dof_dim[j][0]) + int(dof_dim[j][1])):
            qi, di = int(q_start[j]) + k, int(qd_start[j]) + k
            lo, hi = float(lower[di]), float(upper[di])
            if lo <= hi and not lo <= q[qi] <= hi:
                clamped.append((model.joint_label[j], float(q[qi]), lo, hi))
                q[qi] = min(max(q[qi], lo), hi)
    if clamped:
        model.joint_q.assign(q)
    return clamped


def align_revolute_axes_with_twist(builder, wp, newton) -> int:
    """Re-frame every revolute joint so its axis is the joint frame's x axis; returns how many were re-framed.

    XPBD (Newton 1.8 ``solve_body_joints``) splits the relative rotation of a joint's two frames into a twist
    about x and a swing about an axis in the y-z plane. The twist angle is exact (``2 asin``), but the swing
    is rescaled from quaternion to angle units only once it exceeds ``angularEps``: below about 0.02 rad
    the swing reads half the angle. A revolute joint about y or z (every USD joint whose ``physics:axis``
    is not X, e.g. the Panda's) is driven through the swing, so within +-20 mrad of its zero it tracks twice
    its target (measured: target 5 mrad -> 10.3 mrad; 15 mrad chatters about 22 mrad) and its drive law
    jumps as the angle crosses 20 mrad; a twin then departs from its robot by up to 2 mrad in single
    steps. Rotating both joint frames by the same rotation R (x onto the axis) and setting the axis to x
    changes nothing else: ``X_p R rot(x, q) R^-1 X_c^-1 = X_p rot(axis, q) X_c^-1``, so joint
    coordinates, body poses, limits and drives are the same, and every solver sees the same joint.
    Call on the builder before ``finalize``.
    """
    revolute = int(newton.JointType.REVOLUTE)
    x_axis = np.array([1.0, 0.0, 0.0])
    count = 0
    for j, jtype in enumerate(builder.joint_type):
        if int(jtype) != revolute:
            continue
        dof = int(builder.joint_qd_start[j])
        axis = np.array(builder.joint_axis[dof], dtype=np.float64)
        norm = np.linalg.norm(axis)
        if not norm > 1e-12 or axis @ x_axis > (1.0 - 1e-12) * norm:
            continue  # already about x (or no axis at all, e.g. a URDF's xyz="0 0 0": left for Newton to judge)
        axis /= norm
        rotation = _shortest_arc_xyzw(x_axis, axis)
        for frames in (builder.joint_X_p, builder.joint_X_c):
            frame = np.array(frames[j], dtype=np.float64)
            quat = quat_mul_xyzw(frame[3:7], rotation)
            frames[j] = wp.transform(wp.vec3(*frame[:3]), wp.quat(*(quat / np.linalg.norm(quat))))
        builder.joint_axis[dof] = wp.vec3(1.0, 0.0, 0.0)
        count += 1
    return count


def _shortest_arc_xyzw(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of the smallest rotation taking unit vector ``a`` onto ``b``."""
    dot = float(a @ b)
    if dot < -1.0 + 1e-12:  # opposite: half a turn about any axis perpendicular to a
        perp = np.cross(a, [0.0, 0.0, 1.0] if abs(a[2]) < 0.9 else [1.0, 0.0, 0.0])
        return np.append(perp / np.linalg.norm(perp), 0.0)
    quat = np.append(np.cross(a, b), 1.0 + dot)
    return quat / np.linalg.norm(quat)


def quat_mul_xyzw(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of (..., 4) quaternions in Warp's (x, y, z, w) order."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ], axis=-1)


def armature_joints(model) -> list[str]:
    """Joints that author armature (``physxJoint:armature``, ``mjc:armature``, ...): XPBD and VBD ignore it.

    Armature is a motor's reflected rotor inertia, added to the joint's own entry of the joint-space
    mass matrix. On light links it is most of what a drive moves (ant.usda: 0.01 kg m^2 on feet of
    ~3e-4 kg m^2), so there those drives respond several times faster than authored. Adding it to the
    child body's inertia instead was tried and rejected: it also resists the whole robot turning (the
    ant would tumble ~20x slower), which a rotor does not.
    """
    armature = model.joint_armature.numpy()
    qd_start = model.joint_qd_start.numpy()
    bounds = list(qd_start) + [len(armature)]
    return [model.joint_label[j] for j in range(model.joint_count) if np.any(armature[bounds[j] : bounds[j + 1]] > 0.0)]


def immovable_bodies(model, newton) -> set[int]:
    """Bodies that cannot move: zero inverse mass, or welded to the world through fixed joints."""
    inv_mass = model.body_inv_mass.numpy()
    fixed = int(newton.JointType.FIXED)
    joint_type = model.joint_type.numpy()
    joint_parent = model.joint_parent.numpy()
    joint_child = model.joint_child.numpy()
    stuck = {int(b) for b in np.flatnonzero(inv_mass == 0.0)}
    stuck |= {int(c) for t, p, c in zip(joint_type, joint_parent, joint_child) if int(t) == fixed and int(p) == -1}
    grown = True
    while grown:  # bodies welded to a welded body
        grown = False
        for t, p, c in zip(joint_type, joint_parent, joint_child):
            if int(t) == fixed and int(p) in stuck and int(c) not in stuck:
                stuck.add(int(c))
                grown = True
    return stuck


def start_overlaps(model, state, newton, *, pipeline=None, contacts=None) -> list[tuple[float, int, int]]:
    """Colliding shape pairs in ``state`` with a movable body on one side: (depth [m], shape, other shape).

    Depth is the penetration of the two effective surfaces (shape radius and margin included), the
    quantity the solvers push apart; deepest first. Runs a collision pipeline once: pass the backend's
    own (``pipeline`` + its ``contacts``), a new one costs ~0.5 s on CPU for its first run.
    """
    if pipeline is None:
        pipeline = newton.CollisionPipeline(model, broad_phase="explicit")
        contacts = pipeline.contacts()
    pipeline.collide(state, contacts)
    count = min(int(contacts.rigid_contact_count.numpy()[0]), len(contacts.rigid_contact_shape0))
    if count == 0:
        return []
    shape0 = contacts.rigid_contact_shape0.numpy()[:count]
    shape1 = contacts.rigid_contact_shape1.numpy()[:count]
    point0 = contacts.rigid_contact_point0.numpy()[:count].astype(np.float64)
    point1 = contacts.rigid_contact_point1.numpy()[:count].astype(np.float64)
    normal = contacts.rigid_contact_normal.numpy()[:count].astype(np.float64)
    margin = contacts.rigid_contact_margin0.numpy()[:count] + contacts.rigid_contact_margin1.numpy()[:count]
    shape_body = model.shape_body.numpy()
    body_q = state.body_q.numpy().astype(np.float64)

    def to_world(points, shapes):
        bodies = shape_body[shapes]
        out = points.copy()
        for i in np.flatnonzero(bodies >= 0):
            pose = body_q[bodies[i]]  # px, py, pz, qx, qy, qz, qw
            out[i] = pose[:3] + _rotate(pose[3:], points[i])
        return out

    separation = np.einsum("ij,ij->i", normal, to_world(point1, shape1) - to_world(point0, shape0)) - margin
    stuck = immovable_bodies(model, newton)
    found = []
    for i in np.argsort(separation):
        if separation[i] >= 0.0:
            break
        a, b = int(shape0[i]), int(shape1[i])
        if _movable(shape_body[a], stuck) or _movable(shape_body[b], stuck):
            if not _movable(shape_body[a], stuck):
                a, b = b, a  # the movable side first
            found.append((float(-separation[i]), a, b))
    return found


def check_start_overlaps(
    model, state, newton, *, dt: float, stage_path: str | Path, pipeline=None, contacts=None
) -> None:
    """Refuse a start state in which a movable body overlaps another collider deeper than
    :data:`MAX_DEPENETRATION_SPEED` x ``dt`` (one line: body, other prim, depth, what to do)."""
    overlaps = start_overlaps(model, state, newton, pipeline=pipeline, contacts=contacts)
    if not overlaps or overlaps[0][0] <= MAX_DEPENETRATION_SPEED * dt:
        return
    depth, shape, other = overlaps[0]
    body = model.body_label[int(model.shape_body.numpy()[shape])]
    raise StageError(
        f"{stage_path}: {body} starts {depth:.3f} m inside {model.shape_label[other]}; a solver would push it "
        f"out at about {depth / dt:.0f} m/s (more than {MAX_DEPENETRATION_SPEED:g} m/s at dt {dt:.4g} s). Move it "
        f"clear (for a robot, raise robot.position z by at least {depth:.2f} m; an asset's own root offset "
        "is added to the placement)"
    )


def _movable(body: int, stuck: set[int]) -> bool:
    return int(body) >= 0 and int(body) not in stuck


def _rotate(quat_xyzw, vec):
    """Rotate ``vec`` by a unit quaternion (x, y, z, w)."""
    q = np.asarray(quat_xyzw[:3], dtype=np.float64)
    w = float(quat_xyzw[3])
    t = 2.0 * np.cross(q, vec)
    return vec + w * t + np.cross(q, t)
