"""Initial states: seeded sampling, applying one to a backend, and the fixed evaluation sets on disk.

Objects are placed resting on the table, upright as configured plus a random yaw, their centres inside
the task's spawn rectangle (default x in [0.35, 0.65] m, |y| <= 0.25 m: within the Panda's top-down grasp
reach from its base at x = y = 0), bounding circles apart by ``spawn.min_gap``, clear of keep-out regions
(e.g. a push target). Every dynamic task-shaped object in the scene is placed (distractors too).

The fixed evaluation states (LIBERO-style, 50 per task) live in ``configs/tasks/init_states/<task>.json``,
rounded to 1e-6 so regeneration gives identical files on every machine. Regenerate with
``python -m vlatwin.tasks.initial_states configs/tasks/*.yaml`` (``--check`` only compares).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from vlatwin.errors import ConfigError
from vlatwin.tasks.base import InitialState
from vlatwin.utils.transforms import matrix_to_quat_wxyz, rot_z

MAX_TRIES = 2000
DECIMALS = 6
FORMAT_VERSION = 1


def _round(v: float) -> float:
    r = round(float(v), DECIMALS)
    return 0.0 if r == 0.0 else r  # no -0.0


def _yaw_quat(base_rot: np.ndarray, yaw: float) -> np.ndarray:
    q = matrix_to_quat_wxyz(rot_z(yaw) @ base_rot)
    return q if q[0] >= 0 else -q


def _rect_clear(xy, radius, center, half) -> bool:
    """Whether a circle (xy, radius) stays outside the rectangle (center, half)."""
    d = np.maximum(np.abs(np.asarray(xy) - center) - half, 0.0)
    return bool(np.hypot(d[0], d[1]) >= radius)


def placed_objects(task) -> list:
    """The objects initial states place: dynamic, task-shaped, in scene order."""
    return [g for g in task.objects.values() if g.dynamic]


def sample_layout(task, rng: np.random.Generator, *, seed: int | None = None) -> InitialState:
    """A random non-overlapping layout of the task's objects (see the module docstring)."""
    spawn = task.cfg.spawn
    center, half = np.asarray(spawn.center, float), np.asarray(spawn.size, float) / 2.0
    objects = placed_objects(task)
    for _ in range(MAX_TRIES):
        placed: dict[str, np.ndarray] = {}
        poses = {}
        ok = True
        for geom in objects:
            r = geom.footprint_radius
            for _ in range(MAX_TRIES):
                xy = center + rng.uniform(-half, half)
                if not all(_rect_clear(xy, r + spawn.min_gap, c, h) for c, h in task.keep_out()):
                    continue
                if all(np.hypot(*(xy - p[:2])) >= r + q + spawn.min_gap for p, q in placed.values()):
                    break
            else:
                ok = False
                break
            yaw = float(rng.uniform(-math.pi, math.pi)) if spawn.yaw else 0.0
            placed[geom.name] = (np.array([xy[0], xy[1], geom.rest_z]), r)
            quat = _yaw_quat(geom.base_rot, yaw)
            poses[geom.path] = tuple(_round(v) for v in (xy[0], xy[1], geom.rest_z, *quat))
        if ok and task.accept_start({k: v[0] for k, v in placed.items()}):
            return InitialState(object_poses=poses, robot_q=None, seed=seed)
    raise ConfigError(f"task {task.name}: cannot place {len(objects)} objects in the spawn region; enlarge task.spawn.size")


def fixed_initial_states(task) -> list[InitialState]:
    """The task's evaluation set drawn afresh: ``num_init_states`` states, state i from seed init_seed*10000+i."""
    out = []
    for i in range(task.cfg.num_init_states):
        seed = task.cfg.init_seed * 10000 + i
        out.append(sample_layout(task, np.random.default_rng(seed), seed=seed))
    return out


def states_to_json(task, states: list[InitialState]) -> str:
    """One state a line (diffs stay readable), keys sorted, numbers as rounded when sampled."""
    head = {"format": FORMAT_VERSION, "task": task.name, "type": task.type, "init_seed": task.cfg.init_seed}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    rows = ",\n".join("    " + json.dumps(s.to_dict(), sort_keys=True) for s in states)
    return "{\n" + "\n".join(lines) + '\n  "states": [\n' + rows + "\n  ]\n}\n"


def load_initial_states(path: str | Path) -> list[InitialState]:
    """The evaluation initial states stored at ``path`` (JSON written by :func:`write_initial_states`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: initial-state file not found; generate it with python -m vlatwin.tasks.initial_states CONFIG")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [InitialState.from_dict(s) for s in data["states"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not an initial-state file ({exc})") from None


def task_initial_states(task) -> list[InitialState]:
    """The task's stored evaluation states (``task.init_states`` of its config)."""
    if task.cfg.init_states is None:
        raise ConfigError(f"task {task.name}: no init_states file (load the task from a config file)")
    return load_initial_states(task.cfg.init_states)


def write_initial_states(config_path: str | Path, *, check: bool = False) -> tuple[Path, bool]:
    """(Re)generate the evaluation states of the task config at ``config_path``.

    Returns (file, changed). With ``check`` nothing is written; ``changed`` says whether it would change.
    """
    from vlatwin.config.loader import load_config
    from vlatwin.tasks.factory import task_from_config

    config = load_config(config_path)
    task = task_from_config(config)
    text = states_to_json(task, fixed_initial_states(task))
    path = Path(config.task.init_states)
    changed = not path.is_file() or path.read_text(encoding="utf-8") != text
    if changed and not check:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return path, changed


def apply_initial_state(sim, init: InitialState, *, seed: int | None = None):
    """Reset ``sim``, put each object at its pose (zero velocity) and the robot at ``robot_q`` (if given).

    Returns the state after placing (no physics step taken).
    """
    sim.reset(seed=seed)
    for path, pose in init.object_poses.items():
        sim.set_body_pose(path, np.asarray(pose, dtype=np.float64))
    if init.robot_q is not None:
        q = np.asarray(init.robot_q, dtype=np.float64)
        sim.set_joint_state(q, np.zeros_like(q))
    return sim.get_state()


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vlatwin.tasks.initial_states", description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="+", help="task configs (configs/tasks/*.yaml)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a file would change")
    args = parser.parse_args(argv)
    stale = 0
    for cfg in args.configs:
        path, changed = write_initial_states(cfg, check=args.check)
        stale += changed
        print(f"{path}: {'differs' if args.check and changed else 'written' if changed else 'up to date'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
