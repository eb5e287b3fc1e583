"""``vlatwin replay``: re-simulate a recorded episode's actions from its initial state and measure divergence.

The simulator is rebuilt from the dataset's own stage (``meta/vlatwin/scene.usda``) with the recorded
physics settings, the episode's initial state is applied with the recorded reset seed, and the recorded
actions go through the same controller at the same control rate. The divergence is the twin's metric

    J = integral of || x_rec(t) - x_sim(t) ||^2 dt  ~  sum_k || x_rec[k] - x_sim[k] ||^2 * dt

over the joint state (``observation.state``; the simulated state is rounded to float32 like the
recording, so a deterministic replay gives exactly 0) and, separately, over object positions
(``observation.environment_state``, x/y/z only). Per-joint contributions are reported too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError


@dataclass
class ReplayResult:
    episode: int
    frames: int
    dt: float
    J: float
    """Joint-state divergence [rad^2 s (m^2 s for prismatic joints)]."""
    J_per_joint: dict[str, float]
    J_objects: float | None = None
    """Object-position divergence [m^2 s] (None without objects)."""
    max_abs_error: float = 0.0
    video: Path | None = None
    sim_states: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def read_episode(root: Path, episode: int) -> tuple[dict, dict, dict]:
    """(info.json, episodes-parquet row, {column: ndarray}) of ``episode``, read with pyarrow."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise VlatwinError(f"{root}: not a LeRobot dataset (no meta/info.json)")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("codebase_version") != "v3.0":
        raise VlatwinError(f"{root}: dataset version {info.get('codebase_version')!r}; replay reads v3.0")
    rows = None
    for path in sorted((root / "meta" / "episodes").glob("*/*.parquet")):
        table = pq.read_table(path)
        hit = table.filter(pc.equal(table["episode_index"], episode))
        if hit.num_rows:
            rows = {k: v[0] for k, v in hit.to_pydict().items() if not k.startswith("stats/")}
            break
    if rows is None:
        raise VlatwinError(f"{root}: no episode {episode} (the dataset has {info.get('total_episodes', 0)})")
    data_path = root / info["data_path"].format(chunk_index=rows["data/chunk_index"], file_index=rows["data/file_index"])
    table = pq.read_table(data_path)
    table = table.filter(pc.equal(table["episode_index"], episode))
    cols = {}
    for name in table.column_names:
        values = table[name].to_pylist()
        cols[name] = np.asarray(values)
    order = np.argsort(cols["frame_index"])
    cols = {k: v[order] for k, v in cols.items()}
    return info, rows, cols


def decode_episode_video(root: Path, info: dict, row: dict, key: str) -> list[np.ndarray]:
    """The episode's frames of video feature ``key`` (by timestamp, as LeRobot reads them)."""
    import av

    path = root / info["video_path"].format(
        video_key=key, chunk_index=row[f"videos/{key}/chunk_index"], file_index=row[f"videos/{key}/file_index"]
    )
    lo, hi = row[f"videos/{key}/from_timestamp"], row[f"videos/{key}/to_timestamp"]
    half = 0.5 / info["fps"]
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.pts * frame.time_base)
            if lo - 1e-4 <= t < hi - half + 1e-4:
                frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def replay(
    dataset: str | Path,
    episode: int,
    *,
    out: str | Path | None = None,
    video: bool = True,
    perturb: Callable | None = None,
    progress: bool = False,
) -> ReplayResult:
    """Replay ``episode`` of a dataset written by ``vlatwin record``; ``perturb(sim)`` may change the twin
    (e.g. ``sim.set_params``) before the replay, to see how far a different twin drifts."""
    from vlatwin.config.scene_cfg import CameraCfg
    from vlatwin.record.recorder import RUN_FILE, SCENE_FILE, SIDE_EPISODES_FILE, annotators_for, build_rig
    from vlatwin.tasks.base import InitialState

    root = Path(dataset)
    if not (root / RUN_FILE).is_file() or not (root / SCENE_FILE).is_file():
        raise VlatwinError(f"{root}: not a dataset recorded by vlatwin record (no {RUN_FILE} / {SCENE_FILE})")
    run = json.loads((root / RUN_FILE).read_text(encoding="utf-8"))
    if episode < 0:
        raise VlatwinError(f"--episode must be >= 0, got {episode}")
    info, row, cols = read_episode(root, episode)
    side = None
    side_path = root / SIDE_EPISODES_FILE
    if side_path.is_file():
        for line in side_path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry["episode_index"] == episode:
                side = entry
    if side is None:
        raise VlatwinError(f"{root}: episode {episode} has no initial state in {SIDE_EPISODES_FILE}")
    cams = [CameraCfg.model_validate(c) for c in run["cameras"]] if video else []
    rig = build_rig(root / SCENE_FILE, run["physics"], cams, side["action_space"], float(side["control_hz"]), annotators_for(()))
    try:
        if perturb is not None:
            perturb(rig.sim)
        rig.started.initial_state = InitialState.from_dict(side["initial_state"])
        states_rec = np.asarray(cols["observation.state"], dtype=np.float32)
        actions = np.asarray(cols["action"], dtype=np.float64)
        env_rec = np.asarray(cols["observation.environment_state"], dtype=np.float32) if "observation.environment_state" in cols else None
        n = len(actions)
        obs = rig.loop.reset(seed=int(side["sim_seed"]), episode=int(side["work_index"]), instruction=run.get("instruction"))
        sim_states, sim_env, frames = [], [], []
        objects = run.get("object_bodies") or []
        body_idx = [rig.sim.info.body_paths.index(p) for p in objects]
        for k in range(n):
            sim_states.append(np.asarray(obs.state.joint_q, dtype=np.float32))
            if body_idx:
                sim_env.append(np.asarray(obs.state.body_pose_w, dtype=np.float32)[body_idx].reshape(-1))
            if cams:
                frames.append(np.asarray(obs.sensors[cams[0].name]["rgb"])[..., :3])
            _, obs = rig.loop.step(obs, actions[k])
    finally:
        close = getattr(rig.sim, "close", None)
        if close is not None:
            close()
    sim_q = np.stack(sim_states)
    dt = 1.0 / float(side["control_hz"])
    diff = states_rec.astype(np.float64) - sim_q.astype(np.float64)
    per_joint = (diff**2).sum(axis=0) * dt
    names = info["features"]["observation.state"].get("names") or [f"q{j}" for j in range(diff.shape[1])]
    result = ReplayResult(
        episode=episode, frames=n, dt=dt, J=float(per_joint.sum()), J_per_joint=dict(zip(names, per_joint.tolist(), strict=True)),
        max_abs_error=float(np.abs(diff).max()) if diff.size else 0.0, sim_states=sim_q,
    )
    if env_rec is not None and sim_env:
        e = env_rec.astype(np.float64).reshape(n, -1, 7)[..., :3] - np.stack(sim_env).astype(np.float64).reshape(n, -1, 7)[..., :3]
        result.J_objects = float((e**2).sum() * dt)
    if video and cams:
        key = f"observation.images.{cams[0].name}"
        original = decode_episode_video(root, info, row, key)
        out_path = Path(out) if out is not None else Path(f"replay_episode_{episode}.mp4")
        if out_path.suffix != ".mp4":
            out_path = out_path / f"replay_episode_{episode}.mp4"
        out_path.parent.mkdir(parents=True, exist_ok=True)
        write_side_by_side(out_path, original, frames, int(info["fps"]), info["features"][key].get("info", {}).get("video.encoder", "auto"))
        result.video = out_path
    return result


def write_side_by_side(path: Path, left: list[np.ndarray], right: list[np.ndarray], fps: int, codec: str) -> None:
    """original | replay, one MP4 (the codec of the dataset's videos)."""
    from vlatwin.writers.lerobot import _VideoEncoder, choose_codec

    n = min(len(left), len(right))
    if n == 0:
        return
    h, w = left[0].shape[:2]
    if codec in ("auto", None, "none"):
        codec = choose_codec(2 * w, h)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    enc = _VideoEncoder(tmp, codec, fps, 2 * w, h, crf=23, gop=2)
    for a, b in zip(left[:n], right[:n], strict=True):
        enc.add(np.concatenate([a, b], axis=1))
    enc.close()
    tmp.replace(path)
