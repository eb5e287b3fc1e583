"""Train the reach behaviour-cloning policy (:mod:`policy`) from ``vlatwin record`` datasets, on CPU.

Reads a LeRobotDataset v3.0 with pyarrow and PyAV only: ``data/*.parquet`` (``observation.state``,
``observation.environment_state``, ``action``), ``meta/episodes/*.parquet`` (which video file and time range
each episode's frames are in) and ``videos/observation.images.<cam>/*.mp4``. Frames are downsampled once,
up front, so an epoch over ~7,000 frames takes seconds.

    python examples/reach_bc/train.py /tmp/reach_bc/demos --out /tmp/reach_bc/model.pt

Supervision: the recorded action (normalized per dimension) plus an auxiliary loss on the target object's
position (from ``observation.environment_state``; ``--target`` names the object), which teaches the
image keypoints where the ball is. 10 % of the episodes are held out to report a validation loss.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _load_policy_module():
    """``policy.py`` next to this file, by path (examples are not a package; no sys.path changes)."""
    import importlib.util

    name = "reach_bc_policy"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().with_name("policy.py"))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


_policy = _load_policy_module()
ReachNet, resize_images, save_checkpoint = _policy.ReachNet, _policy.resize_images, _policy.save_checkpoint

#: Rows 96..224, columns 48..176 of the 224 x 224 front camera: every ball position of the task's spawn region
#: and the gripper above it, at twice the pixels per metre a whole-image resize would give.
CROP = (96 / 224, 48 / 224, 1.0, 176 / 224)


def load_dataset(root: str | Path, camera: str, image_size: int, target: str, crop=(0.0, 0.0, 1.0, 1.0)) -> dict:
    """All frames of a recorded dataset: images (N, 3, S, S) uint8, state (N, J), action (N, D), aux (N, 3),
    episode (N,) index."""
    import av
    import pyarrow.parquet as pq
    import torch

    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text(encoding="utf-8"))
    key = f"observation.images.{camera}"
    if key not in info["features"]:
        cams = [k.rsplit(".", 1)[-1] for k in info["features"] if k.startswith("observation.images.")]
        raise SystemExit(f"{root}: no camera {camera!r} in the dataset (it has {', '.join(cams) or 'none'})")
    env_names = info["features"].get("observation.environment_state", {}).get("names", [])
    try:
        aux_idx = [env_names.index(f"{target}.{c}") for c in "xyz"]
    except ValueError:
        raise SystemExit(f"{root}: no object {target!r} in observation.environment_state; pass --target") from None
    fps = float(info["fps"])
    data = pq.read_table(sorted((root / "data").rglob("*.parquet")))
    episodes = pq.read_table(sorted((root / "meta" / "episodes").rglob("*.parquet"))).to_pylist()

    def column(name):
        return np.stack(data[name].to_numpy(zero_copy_only=False)).astype(np.float32)

    state, action, env = column("observation.state"), column("action"), column("observation.environment_state")
    index = data["index"].to_numpy()
    row_of = {int(i): r for r, i in enumerate(index)}
    decoded: dict[tuple[int, int], list] = {}
    images, rows, ep_ids = [], [], []
    for ep in episodes:
        file = (int(ep[f"videos/{key}/chunk_index"]), int(ep[f"videos/{key}/file_index"]))
        if file not in decoded:
            path = root / info["video_path"].format(video_key=key, chunk_index=file[0], file_index=file[1])
            with av.open(str(path)) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            decoded = {file: frames}  # one file in memory at a time
        frames = decoded[file]
        first = round(float(ep[f"videos/{key}/from_timestamp"]) * fps)
        n = int(ep["length"])
        if first + n > len(frames):
            raise SystemExit(f"{root}: episode {ep['episode_index']} needs video frames {first}..{first + n - 1}, file has {len(frames)}")
        images.append(resize_images(np.stack(frames[first:first + n]), image_size, crop).round().to(torch.uint8))
        rows.extend(row_of[i] for i in range(int(ep["dataset_from_index"]), int(ep["dataset_to_index"])))
        ep_ids.extend([int(ep["episode_index"])] * n)
    rows = np.asarray(rows)
    return {
        "images": torch.cat(images).numpy(), "state": state[rows], "action": action[rows], "aux": env[rows][:, aux_idx],
        "episode": np.asarray(ep_ids), "fps": fps,
    }


def stats_of(x: np.ndarray) -> dict:
    # The floor keeps (near-)constant dimensions (gripper always open, no roll/pitch on reach) from turning a
    # small normalized error into a large action.
    return {"mean": x.mean(axis=0), "std": np.maximum(x.std(axis=0), 1e-4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", help="folders written by vlatwin record")
    parser.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    parser.add_argument("--camera", default="front")
    parser.add_argument("--target", default="yellow_ball", help="object whose position is the auxiliary target")
    parser.add_argument("--image-size", type=int, default=64, help="side of the downsampled image [px]")
    parser.add_argument("--crop", type=float, nargs=4, default=CROP, metavar=("TOP", "LEFT", "BOTTOM", "RIGHT"),
                        help="image region the network sees, fractions of height/width (default: the table in front of the robot)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--aux-weight", type=float, default=1.0)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from torch.nn import functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    parts = [load_dataset(d, args.camera, args.image_size, args.target, tuple(args.crop)) for d in args.datasets]
    offset, eps = 0, []
    for p in parts:  # episode ids unique across datasets
        eps.append(p["episode"] + offset)
        offset = int(eps[-1].max()) + 1
    ds = {k: np.concatenate([p[k] for p in parts]) for k in ("images", "state", "action", "aux")}
    episode = np.concatenate(eps)
    t_load = time.perf_counter() - t0
    n_eps = len(np.unique(episode))
    rng = np.random.default_rng(args.seed)
    n_val = round(n_eps * args.val_fraction) if n_eps >= 10 else 0
    val_eps = set(rng.choice(np.unique(episode), size=n_val, replace=False).tolist()) if n_val else set()
    is_val = np.isin(episode, list(val_eps))
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    stats = {k: stats_of(ds[k][train_idx]) for k in ("state", "action", "aux")}
    norm = {k: torch.from_numpy((ds[k] - stats[k]["mean"]) / stats[k]["std"]).float() for k in ("state", "action", "aux")}
    images = torch.from_numpy(ds["images"])
    print(f"data: {n_eps} episodes, {len(episode)} frames ({len(train_idx)} train, {len(val_idx)} val), "
          f"images {tuple(images.shape[1:])}, loaded in {t_load:.1f} s", flush=True)

    model = ReachNet(state_dim=ds["state"].shape[1], action_dim=ds["action"].shape[1], aux_dim=3, image_size=args.image_size,
                     crop=tuple(args.crop))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = max(1, len(train_idx) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.1)

    def losses(idx, train: bool):
        img = images[idx].float()
        if train:  # small brightness / contrast jitter (MP4 frames here, raw renders when the policy runs); no
            # shifts: where the ball is in the image is what the network must read
            b = img.shape[0]
            img = img * (1.0 + 0.1 * (torch.rand(b, 1, 1, 1) - 0.5)) + 10.0 * (torch.rand(b, 1, 1, 1) - 0.5)
        act, aux = model(img.clamp(0.0, 255.0), norm["state"][idx])
        return F.mse_loss(act, norm["action"][idx]), F.mse_loss(aux, norm["aux"][idx])

    def validate(idx) -> str:
        """Held-out errors in physical units: action dx, dy, dz RMSE [mm], target position RMSE [cm]."""
        model.eval()
        with torch.inference_mode():
            outs = [model(images[i].float(), norm["state"][i]) for i in np.array_split(idx, max(1, len(idx) // 256))]
        act = torch.cat([a for a, _ in outs]).numpy() * stats["action"]["std"] + stats["action"]["mean"]
        aux = torch.cat([x for _, x in outs]).numpy() * stats["aux"]["std"] + stats["aux"]["mean"]
        act_mm = 1000 * np.sqrt(np.mean((act[:, :3] - ds["action"][idx, :3]) ** 2, axis=0))
        aux_cm = 100 * np.sqrt(np.mean(np.sum((aux - ds["aux"][idx]) ** 2, axis=1)))
        return f"action dx/dy/dz RMSE {act_mm[0]:.2f}/{act_mm[1]:.2f}/{act_mm[2]:.2f} mm, target {aux_cm:.1f} cm"

    t_train = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(train_idx))
        tot = [0.0, 0.0]
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch_size:(s + 1) * args.batch_size]
            la, lx = losses(idx, True)
            loss = la + args.aux_weight * lx
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot[0] += la.item()
            tot[1] += lx.item()
        line = f"epoch {epoch + 1}/{args.epochs}: action {tot[0] / steps_per_epoch:.4f} aux {tot[1] / steps_per_epoch:.4f}"
        if len(val_idx):
            line += " | val " + validate(val_idx)
        print(f"{line} [{time.perf_counter() - t_train:.0f} s]", flush=True)
    train_s = time.perf_counter() - t_train
    meta = {"datasets": [str(d) for d in args.datasets], "episodes": n_eps, "frames": len(episode), "camera": args.camera,
            "target": args.target, "epochs": args.epochs, "train_seconds": round(train_s, 1), "threads": args.threads}
    save_checkpoint(args.out, model, stats, meta)
    print(f"wrote {args.out}: trained {args.epochs} epochs in {train_s:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
