"""A LeRobotDataset v3.0 writer (pyarrow + PyAV, no torch/datasets/lerobot dependency).

On disk (exactly LeRobot's v3.0 layout, ``lerobot/datasets/utils.py``)::

    meta/info.json                                   codebase_version "v3.0", fps, features, paths, totals
    meta/stats.json                                  per feature: min, max, mean, std, count, q01..q99
    meta/tasks.parquet                               index "task" (str) -> column task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode (+ flattened stats/<feature>/<stat>)
    data/chunk-000/file-000.parquet                  one row per frame, many episodes per file
    videos/<video key>/chunk-000/file-000.mp4        many episodes per file, back to back in time

Crash safety (``kill -9`` at any instant): each finished episode is first written as its own parts in a
staging area, ``meta/vlatwin/staging/episode-NNNNNN/`` (``data.parquet``, one ``.mp4`` per video key),
and becomes durable when its commit record ``episode.json`` (length, task, file assignment, stats) is
renamed into place. The consolidated files are then rebuilt from the committed parts: only the *current*
data/video file (the one the new episode went into; earlier files are closed and never rewritten) plus
the small meta files, each written to a temp name and renamed, ``meta/info.json`` last. Opening the
dataset again (:meth:`LeRobotDatasetWriter.open`) drops uncommitted parts and rebuilds the current
files, so the result equals an uninterrupted run. The cost per episode is a parquet concat and a video
remux (packet copy, no re-encode) of the current file, bounded by ``data_files_size_in_mb`` /
``video_files_size_in_mb`` like LeRobot's own rollover; staging parts of closed files are deleted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.writers.storage import atomic_write_bytes

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
STAGING_DIR = "meta/vlatwin/staging"
WRITER_STATE = "meta/vlatwin/writer.json"
SIDE_EPISODES = "meta/vlatwin/episodes.jsonl"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)

DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": (1,), "names": None},
    "frame_index": {"dtype": "int64", "shape": (1,), "names": None},
    "episode_index": {"dtype": "int64", "shape": (1,), "names": None},
    "index": {"dtype": "int64", "shape": (1,), "names": None},
    "task_index": {"dtype": "int64", "shape": (1,), "names": None},
}

#: Encoders tried in order: LeRobot's default (SVT-AV1), then other AV1, then H.264, then MPEG-4 part 2
#: (FFmpeg's native encoder, present in every build, so one always works).
CODEC_PREFERENCE = ("libsvtav1", "libaom-av1", "libx264", "h264", "mpeg4")


# ------------------------------------------------------------------------------------------ video
def _codec_options(codec: str, crf: int, gop: int) -> dict[str, str]:
    if codec == "libsvtav1":
        return {"g": str(gop), "crf": str(crf), "preset": "12", "svtav1-params": "lp=1"}
    if codec == "libaom-av1":
        return {"g": str(gop), "crf": str(crf), "cpu-used": "8", "row-mt": "1"}
    if codec in ("libx264", "h264"):
        return {"g": str(gop), "crf": str(crf), "preset": "veryfast", "bf": "0", "threads": "1"}
    return {"g": str(gop), "qscale": "2", "bf": "0", "threads": "1"}  # mpeg4: near-lossless fixed quality


def choose_codec(width: int = 64, height: int = 64, preference=CODEC_PREFERENCE) -> str:
    """The first encoder in ``preference`` that the installed FFmpeg (PyAV's) has and can open at this size."""
    import av

    _quiet_encoders()
    available = av.codecs_available
    for codec in preference:
        if codec not in available:
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                enc = _VideoEncoder(Path(tmp) / "probe.mp4", codec, 10, width, height, crf=30, gop=2)
                enc.add(np.zeros((height, width, 3), np.uint8))
                enc.close()
            return codec
        except Exception as exc:  # noqa: BLE001 - an encoder that fails to open is simply skipped
            logging.getLogger(__name__).info("video encoder %s unusable here: %s", codec, exc)
    raise VlatwinError(f"no usable video encoder in PyAV's FFmpeg (tried {', '.join(preference)})")


def _quiet_encoders() -> None:
    """SVT-AV1 prints its configuration to stderr unless told otherwise."""
    os.environ.setdefault("SVT_LOG", "1")


class _VideoEncoder:
    """Frames (H, W, 3) uint8 -> one MP4 file, pts = frame index in a 1/fps time base."""

    def __init__(self, path: Path, codec: str, fps: int, width: int, height: int, *, crf: int, gop: int):
        import av

        _quiet_encoders()
        self.path = Path(path)
        self.container = av.open(str(self.path), mode="w")
        self.stream = self.container.add_stream(codec, rate=fps, options=_codec_options(codec, crf, gop))
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.count = 0

    def add(self, image: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.count
        self.count += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def concatenate_videos(inputs: list[Path], output: Path) -> None:
    """Back-to-back concatenation by packet copy (no re-encode), as LeRobot's ``concatenate_video_files``."""
    import av

    if len(inputs) == 1:
        shutil.copyfile(inputs[0], output)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".ffconcat", delete=False, dir=output.parent) as listing:
        listing.write("ffconcat version 1.0\n")
        for path in inputs:
            listing.write(f"file '{Path(path).resolve()}'\n")
        list_path = listing.name
    try:
        src = av.open(list_path, mode="r", format="concat", options={"safe": "0"})
        dst = av.open(str(output), mode="w", format="mp4", options={"movflags": "faststart"})
        out_stream = None
        for in_stream in src.streams:
            if in_stream.type == "video":
                out_stream = dst.add_stream_from_template(template=in_stream, opaque=True)
                out_stream.time_base = in_stream.time_base
                break
        for packet in src.demux():
            if packet.dts is None or packet.stream.type != "video":
                continue
            packet.stream = out_stream
            dst.mux(packet)
        src.close()
        dst.close()
    finally:
        os.unlink(list_path)


def video_info(path: Path, codec: str, crf: int, gop: int) -> dict:
    """The ``info`` of a video feature, with the keys LeRobot's ``get_video_info`` writes (+ encoder settings)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": stream.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(stream.base_rate),
            "video.channels": 3,
            "has_audio": False,
        }
    info.update({"video.encoder": codec, "video.g": gop, "video.crf": crf if codec != "mpeg4" else None})
    return info


# ------------------------------------------------------------------------------------------ stats
def _quantiles_from_histogram(column: np.ndarray, lo: float, hi: float, bins: int = 5000) -> list[float]:
    """LeRobot's ``RunningQuantileStats`` quantiles (one update: a histogram on [min, max], interpolated)."""
    edges = np.linspace(lo - 1e-10, hi + 1e-10, bins + 1)
    hist, _ = np.histogram(column, bins=edges)
    return _quantiles_from_counts(hist, edges, column.shape[0])


def feature_stats(rows: np.ndarray) -> dict[str, np.ndarray]:
    """Per-column stats of (N, D) samples: min, max, mean, std, count (N) and the quantiles (float64).

    Non-finite samples (a depth image's inf = no hit) carry no statistics: each column's stats come from
    its finite values (0 for a column with none), so stats.json stays finite and comparable.
    """
    rows = rows.astype(np.result_type(rows.dtype, np.float32), copy=False).reshape(rows.shape[0], -1)
    n = rows.shape[0]
    finite = np.isfinite(rows)
    if not finite.all():
        per_column = [feature_stats(rows[finite[:, d], d][:, None]) if finite[:, d].any() else None for d in range(rows.shape[1])]
        keys = ("min", "max", "mean", "std", *QUANTILE_KEYS)
        stats = {k: np.array([c[k][0] if c is not None else 0.0 for c in per_column], dtype=np.float64) for k in keys}
        stats["count"] = np.array([n], dtype=np.int64)
        return stats
    stats = {
        "min": rows.min(axis=0).astype(np.float64),
        "max": rows.max(axis=0).astype(np.float64),
        "mean": rows.mean(axis=0).astype(np.float64),
        "std": rows.std(axis=0).astype(np.float64),
        "count": np.array([n], dtype=np.int64),
    }
    if n < 2:
        for key in QUANTILE_KEYS:
            stats[key] = stats["mean"].copy()
        return stats
    qs = np.array([_quantiles_from_histogram(rows[:, d], stats["min"][d], stats["max"][d]) for d in range(rows.shape[1])])
    for i, key in enumerate(QUANTILE_KEYS):
        stats[key] = qs[:, i]
    return stats


def sample_indices(length: int) -> list[int]:
    """LeRobot's frame sampling for image stats (``compute_stats.sample_indices``)."""
    num = length if length < 100 else max(100, min(int(length**0.75), 10_000))
    return np.round(np.linspace(0, length - 1, num)).astype(int).tolist()


def downsample_for_stats(image: np.ndarray) -> np.ndarray:
    """LeRobot's ``auto_downsample_height_width`` on an (H, W, C) image."""
    h, w = image.shape[:2]
    if max(w, h) < 300:
        return image
    f = int(w / 150) if w > h else int(h / 150)
    return image[::f, ::f]


def _uint8_stats(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`feature_stats` of (N, C) uint8 samples from one 256-bin count per channel (same quantile
    algorithm: the counts are re-binned into the min..max histogram exactly, since each value lands in one bin)."""
    n, channels = pixels.shape
    values = np.arange(256, dtype=np.float64)
    stats = {k: np.zeros(channels) for k in ("min", "max", "mean", "std", *QUANTILE_KEYS)}
    stats["count"] = np.array([n], dtype=np.int64)
    for c in range(channels):
        counts = np.bincount(pixels[:, c], minlength=256).astype(np.float64)
        present = np.flatnonzero(counts)
        lo, hi = values[present[0]], values[present[-1]]
        mean = counts @ values / n
        stats["min"][c], stats["max"][c], stats["mean"][c] = lo, hi, mean
        stats["std"][c] = np.sqrt(max(counts @ (values - mean) ** 2 / n, 0.0))
        if n < 2:
            for key in QUANTILE_KEYS:
                stats[key][c] = mean
            continue
        edges = np.linspace(lo - 1e-10, hi + 1e-10, 5000 + 1)
        bins = np.clip(np.searchsorted(edges, values[present], side="right") - 1, 0, 4999)
        hist = np.bincount(bins, weights=counts[present], minlength=5000)
        for key, q in zip(QUANTILE_KEYS, _quantiles_from_counts(hist, edges, n)):
            stats[key][c] = q
    return stats


def _quantiles_from_counts(hist: np.ndarray, edges: np.ndarray, n: int) -> list[float]:
    cumsum = np.cumsum(hist)
    out = []
    for q in QUANTILES:
        target = q * n
        idx = int(np.searchsorted(cumsum, target))
        if idx == 0:
            out.append(float(edges[0]))
        elif idx >= len(cumsum):
            out.append(float(edges[-1]))
        else:
            before = cumsum[idx - 1]
            inside = cumsum[idx] - before
            out.append(float(edges[idx]) if inside == 0 else float(edges[idx] + (target - before) / inside * (edges[idx + 1] - edges[idx])))
    return out


def image_stats(frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-channel stats of sampled uint8 frames scaled to [0, 1]; shapes (C, 1, 1), count = frames sampled."""
    picked = [downsample_for_stats(frames[i]) for i in sample_indices(len(frames))]
    arr = np.stack(picked)  # (N, H, W, C)
    pixels = arr.reshape(-1, arr.shape[-1])
    stats = _uint8_stats(pixels) if pixels.dtype == np.uint8 else feature_stats(pixels)
    out = {k: (v if k == "count" else (v / 255.0).reshape(-1, 1, 1)) for k, v in stats.items()}
    out["count"] = np.array([len(picked)], dtype=np.int64)
    return out


def aggregate_stats(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """LeRobot's ``aggregate_stats``: count-weighted mean and pooled variance, min/max envelopes, and the
    quantiles as a conservative envelope (min of the lower ones, max of the upper ones)."""
    keys = []
    for stats in per_episode:
        keys += [k for k in stats if k not in keys]
    out = {}
    for key in keys:
        items = [s[key] for s in per_episode if key in s]
        means = np.stack([s["mean"] for s in items])
        variances = np.stack([s["std"] ** 2 for s in items])
        counts = np.array([float(s["count"][0]) for s in items])
        total = counts.sum()
        c = counts.reshape(-1, *([1] * (means.ndim - 1)))
        mean = (means * c).sum(axis=0) / total
        var = ((variances + (means - mean) ** 2) * c).sum(axis=0) / total
        agg = {
            "min": np.min(np.stack([s["min"] for s in items]), axis=0),
            "max": np.max(np.stack([s["max"] for s in items]), axis=0),
            "mean": mean,
            "std": np.sqrt(var),
            "count": np.array([int(total)], dtype=np.int64),
        }
        for q in QUANTILE_KEYS:
            vals = np.stack([s[q] for s in items])
            agg[q] = vals.min(axis=0) if int(q[1:]) <= 50 else vals.max(axis=0)
        out[key] = agg
    return out


def _stats_to_json(stats: dict) -> dict:
    return {k: {s: np.asarray(v).tolist() for s, v in ft.items()} for k, ft in stats.items()}


def _stats_from_json(data: dict) -> dict:
    return {k: {s: np.asarray(v, dtype=np.int64 if s == "count" else np.float64) for s, v in ft.items()} for k, ft in data.items()}


# ------------------------------------------------------------------------------------------ writer
def _arrow_type(ft: dict):
    import pyarrow as pa

    base = pa.from_numpy_dtype(np.dtype(ft["dtype"]))
    shape = tuple(ft["shape"])
    if shape == (1,):
        return base
    t = base
    for n in reversed(shape):
        t = pa.list_(t, n)
    return t


def _atomic_replace(tmp: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)


def _tmp_path(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    return Path(name)


def _write_table_atomic(table, dest: Path) -> None:
    import pyarrow.parquet as pq

    tmp = _tmp_path(dest)
    try:
        pq.write_table(table, tmp, compression="snappy")
        _atomic_replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


@dataclass
class _Episode:
    """The open (not yet saved) episode."""

    index: int
    columns: dict[str, list] = field(default_factory=dict)
    stat_frames: dict[str, list] = field(default_factory=dict)
    encoders: dict[str, _VideoEncoder] = field(default_factory=dict)
    size: int = 0
    dir: Path | None = None


class LeRobotDatasetWriter:
    """Write a LeRobotDataset v3.0 episode by episode (see the module doc for layout and crash safety).

    ``features``: LeRobot feature dicts ``{key: {"dtype", "shape", "names"}}``; ``dtype "video"`` features
    take (H, W, 3) uint8 frames (RGBA is cut to RGB); the default features (timestamp, frame_index,
    episode_index, index, task_index) are added and filled in by the writer.
    """

    def __init__(self, root: Path, state: dict):
        self.root = Path(root)
        self.fps = int(state["fps"])
        self.robot_type = state.get("robot_type")
        self.features: dict[str, dict] = {k: dict(v) for k, v in state["features"].items()}
        for ft in self.features.values():
            ft["shape"] = tuple(ft["shape"])
        self.codec = state["codec"]
        self.crf = int(state.get("crf", 30))
        self.gop = int(state.get("gop", 2))
        self.chunks_size = int(state.get("chunks_size", DEFAULT_CHUNK_SIZE))
        self.data_mb = float(state.get("data_files_size_in_mb", DEFAULT_DATA_FILE_SIZE_IN_MB))
        self.video_mb = float(state.get("video_files_size_in_mb", DEFAULT_VIDEO_FILE_SIZE_IN_MB))
        self._state = state
        self.episodes: list[dict] = []  # committed episode records, in order
        self._current: _Episode | None = None

    # ----------------------------------------------------------------- create / open
    @classmethod
    def create(
        cls,
        root: str | Path,
        fps: int,
        features: dict[str, dict],
        robot_type: str | None = None,
        *,
        codec: str = "auto",
        crf: int = 30,
        gop: int = 2,
        chunks_size: int = DEFAULT_CHUNK_SIZE,
        data_files_size_in_mb: float = DEFAULT_DATA_FILE_SIZE_IN_MB,
        video_files_size_in_mb: float = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        extra_state: dict | None = None,
    ) -> LeRobotDatasetWriter:
        """A new dataset in ``root`` (missing or empty)."""
        root = Path(root)
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise VlatwinError(f"{root}: output folder is not empty; choose another folder")
        if int(fps) != fps or fps <= 0:
            raise VlatwinError(f"fps must be a positive whole number, got {fps}")
        feats = {}
        for key, ft in features.items():
            if key in DEFAULT_FEATURES:
                continue
            if ft["dtype"] == "image":
                raise VlatwinError(f"feature {key}: dtype 'image' is not supported, use 'video'")
            feats[key] = {"dtype": ft["dtype"], "shape": list(ft["shape"]), "names": ft.get("names")}
        for key, ft in DEFAULT_FEATURES.items():
            feats[key] = {"dtype": ft["dtype"], "shape": list(ft["shape"]), "names": None}
        video_keys = [k for k, f in feats.items() if f["dtype"] == "video"]
        if codec == "auto":
            if video_keys:
                h, w = feats[video_keys[0]]["shape"][:2]
                codec = choose_codec(w, h)
            else:
                codec = "none"
        state = {
            "fps": int(fps),
            "robot_type": robot_type,
            "features": feats,
            "codec": codec,
            "crf": crf,
            "gop": gop,
            "chunks_size": chunks_size,
            "data_files_size_in_mb": data_files_size_in_mb,
            "video_files_size_in_mb": video_files_size_in_mb,
            **(extra_state or {}),
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / STAGING_DIR).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(root / WRITER_STATE, json.dumps(state, indent=2).encode())
        writer = cls(root, state)
        writer._consolidate(rebuild_all=True)
        return writer

    @classmethod
    def open(cls, root: str | Path) -> LeRobotDatasetWriter:
        """Continue a dataset this writer made: uncommitted parts are dropped, current files rebuilt."""
        root = Path(root)
        path = root / WRITER_STATE
        if not path.is_file():
            raise VlatwinError(f"{root}: not a vlatwin-recorded LeRobot dataset (no {WRITER_STATE})")
        state = json.loads(path.read_text(encoding="utf-8"))
        writer = cls(root, state)
        staging = root / STAGING_DIR
        staging.mkdir(parents=True, exist_ok=True)
        for entry in sorted(staging.iterdir()):
            if entry.is_dir() and entry.name.startswith("episode-") and (entry / "episode.json").is_file():
                try:
                    writer.episodes.append(json.loads((entry / "episode.json").read_text(encoding="utf-8")))
                except (OSError, ValueError) as exc:
                    raise VlatwinError(
                        f"{entry / 'episode.json'}: unreadable commit record ({exc}); remove {entry.name} and rerun with --resume"
                    ) from None
            elif entry.is_dir():
                shutil.rmtree(entry)
            elif entry.name.endswith(".tmp"):
                entry.unlink()
        writer.episodes.sort(key=lambda e: e["episode_index"])
        for i, ep in enumerate(writer.episodes):
            if ep["episode_index"] != i:
                raise VlatwinError(f"{root}: episode {i} is missing from the staging area; the dataset is damaged")
        for tmp in root.rglob(".*.tmp"):
            tmp.unlink()
        writer._consolidate(rebuild_all=False)
        return writer

    @property
    def state(self) -> dict:
        return dict(self._state)

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    @property
    def total_frames(self) -> int:
        return self.episodes[-1]["dataset_to_index"] if self.episodes else 0

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    # ----------------------------------------------------------------- frames
    def _open_episode(self) -> _Episode:
        if self._current is None:
            ep = _Episode(index=len(self.episodes))
            ep.dir = self.root / STAGING_DIR / f"episode-{ep.index:06d}.partial"
            if ep.dir.exists():
                shutil.rmtree(ep.dir)
            ep.dir.mkdir(parents=True)
            for key, ft in self.features.items():
                if key in DEFAULT_FEATURES:
                    continue
                if ft["dtype"] == "video":
                    h, w = ft["shape"][:2]
                    ep.encoders[key] = _VideoEncoder(ep.dir / f"{key}.mp4", self.codec, self.fps, w, h, crf=self.crf, gop=self.gop)
                    ep.stat_frames[key] = []
                else:
                    ep.columns[key] = []
            self._current = ep
        return self._current

    def add_frame(self, frame: dict) -> None:
        """One frame: every non-default feature (``"task"``, if given, is ignored: see :meth:`save_episode`)."""
        ep = self._open_episode()
        missing = [k for k in self.features if k not in DEFAULT_FEATURES and k not in frame]
        if missing:
            raise VlatwinError(f"frame is missing features: {', '.join(missing)}")
        for key, value in frame.items():
            if key == "task" or key in DEFAULT_FEATURES:
                continue
            ft = self.features.get(key)
            if ft is None:
                raise VlatwinError(f"frame feature {key!r} is not in the dataset features")
            if ft["dtype"] == "video":
                img = np.asarray(value)
                if img.ndim == 3 and img.shape[2] == 4:
                    img = img[..., :3]
                if img.shape != tuple(ft["shape"]) or img.dtype != np.uint8:
                    raise VlatwinError(f"{key}: expected a {tuple(ft['shape'])} uint8 image, got {img.shape} {img.dtype}")
                ep.encoders[key].add(img)
                ep.stat_frames[key].append(downsample_for_stats(img).copy())
            else:
                arr = np.asarray(value, dtype=ft["dtype"])
                if arr.size != int(np.prod(ft["shape"])):
                    raise VlatwinError(f"{key}: expected shape {tuple(ft['shape'])}, got {arr.shape}")
                ep.columns[key].append(arr.reshape(ft["shape"]))
        ep.size += 1

    def discard_episode(self) -> None:
        """Drop the open episode (nothing of it reaches the dataset)."""
        ep, self._current = self._current, None
        if ep is None:
            return
        for enc in ep.encoders.values():
            try:
                enc.close()
            except Exception as exc:  # noqa: BLE001 - the file is deleted anyway
                logging.getLogger(__name__).debug("closing a discarded episode's encoder: %s", exc)
        shutil.rmtree(ep.dir, ignore_errors=True)

    # ----------------------------------------------------------------- episodes
    def _task_index(self, task: str) -> int:
        tasks = []
        for ep in self.episodes:
            if ep["task"] not in tasks:
                tasks.append(ep["task"])
        return tasks.index(task) if task in tasks else len(tasks)

    def _next_file(self, chunk: int, file: int) -> tuple[int, int]:
        file += 1
        if file >= self.chunks_size:
            return chunk + 1, 0
        return chunk, file

    def _assign(self, kind: str, size_bytes: int, limit_mb: float) -> tuple[int, int, bool]:
        """(chunk, file, starts_new_file) for the next episode's part of ``kind`` (``data`` or a video key)."""
        if not self.episodes:
            return 0, 0, True
        last = self.episodes[-1]["files"][kind]
        chunk, file = last["chunk_index"], last["file_index"]
        current = sum(e["files"][kind]["bytes"] for e in self.episodes if (e["files"][kind]["chunk_index"], e["files"][kind]["file_index"]) == (chunk, file))
        if (current + size_bytes) / 1e6 >= limit_mb:
            return (*self._next_file(chunk, file), True)
        return chunk, file, False

    def save_episode(self, task: str, extra: dict | None = None) -> int:
        """Commit the open episode (durable when this returns); returns its episode_index.

        ``extra`` (JSON-safe) is kept with the episode in ``meta/vlatwin/episodes.jsonl``.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        ep = self._current
        if ep is None or ep.size == 0:
            raise VlatwinError("save_episode: the episode has no frames")
        if not isinstance(task, str) or not task:
            raise VlatwinError("save_episode: task must be a non-empty string")
        for enc in ep.encoders.values():
            enc.close()
        n, start = ep.size, self.total_frames
        task_index = self._task_index(task)
        cols = dict(ep.columns)
        cols["timestamp"] = [np.float32(i / self.fps) for i in range(n)]
        cols["frame_index"] = list(range(n))
        cols["episode_index"] = [ep.index] * n
        cols["index"] = list(range(start, start + n))
        cols["task_index"] = [task_index] * n
        arrays, names, stats = [], [], {}
        for key, ft in self.features.items():
            if ft["dtype"] == "video":
                stats[key] = image_stats(ep.stat_frames[key])
                continue
            values = np.stack([np.asarray(v, dtype=ft["dtype"]) for v in cols[key]]).reshape(n, *ft["shape"])
            flat = values.reshape(n, -1)
            if len(ft["shape"]) <= 1:
                stats[key] = feature_stats(flat)
            else:  # images-as-arrays (depth, segmentation): one scalar summary over all pixels
                stats[key] = feature_stats(flat.reshape(-1, 1))
            if tuple(ft["shape"]) == (1,):
                arrays.append(pa.array(values.reshape(n), type=_arrow_type(ft)))
            else:
                arrays.append(pa.array(values.tolist(), type=_arrow_type(ft)))
            names.append(key)
        table = pa.Table.from_arrays(arrays, names=names)
        pq.write_table(table, ep.dir / "data.parquet", compression="snappy")

        files = {}
        c, f, _ = self._assign("data", (ep.dir / "data.parquet").stat().st_size, self.data_mb)
        files["data"] = {"chunk_index": c, "file_index": f, "bytes": (ep.dir / "data.parquet").stat().st_size}
        for key in self.video_keys:
            size = (ep.dir / f"{key}.mp4").stat().st_size
            c, f, new = self._assign(key, size, self.video_mb)
            prev = [e for e in self.episodes if (e["files"][key]["chunk_index"], e["files"][key]["file_index"]) == (c, f)]
            from_ts = 0.0 if new or not prev else prev[-1]["files"][key]["to_timestamp"]
            files[key] = {"chunk_index": c, "file_index": f, "bytes": size, "from_timestamp": from_ts, "to_timestamp": from_ts + n / self.fps}
        record = {
            "episode_index": ep.index,
            "task": task,
            "task_index": task_index,
            "length": n,
            "dataset_from_index": start,
            "dataset_to_index": start + n,
            "files": files,
            "stats": _stats_to_json(stats),
            "extra": extra or {},
        }
        final_dir = self.root / STAGING_DIR / f"episode-{ep.index:06d}"
        if final_dir.exists():
            shutil.rmtree(final_dir)
        os.replace(ep.dir, final_dir)
        # The commit: written last, atomically, and synced.
        data = json.dumps(record, indent=1).encode()
        atomic_write_bytes(final_dir / "episode.json", data, durable=True)
        fd = os.open(final_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._current = None
        self.episodes.append(record)
        self._consolidate(rebuild_all=False, new_episode=record)
        return ep.index

    # ----------------------------------------------------------------- consolidation
    def _file_groups(self, kind: str) -> dict[tuple[int, int], list[dict]]:
        groups: dict[tuple[int, int], list[dict]] = {}
        for ep in self.episodes:
            loc = ep["files"][kind]
            groups.setdefault((loc["chunk_index"], loc["file_index"]), []).append(ep)
        return groups

    def _part(self, ep: dict, name: str) -> Path:
        return self.root / STAGING_DIR / f"episode-{ep['episode_index']:06d}" / name

    def _rebuild_file(self, kind: str, loc: tuple[int, int], eps: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if kind == "data":
            dest = self.root / DATA_PATH.format(chunk_index=loc[0], file_index=loc[1])
            table = pa.concat_tables([pq.read_table(self._part(e, "data.parquet")) for e in eps])
            _write_table_atomic(table, dest)
        else:
            dest = self.root / VIDEO_PATH.format(video_key=kind, chunk_index=loc[0], file_index=loc[1])
            tmp = _tmp_path(dest)
            try:
                concatenate_videos([self._part(e, f"{kind}.mp4") for e in eps], tmp)
                _atomic_replace(tmp, dest)
            finally:
                if tmp.exists():
                    tmp.unlink()

    def _consolidate(self, *, rebuild_all: bool, new_episode: dict | None = None) -> None:
        """Rebuild the current data/video files and all meta files from the committed parts."""
        kinds = ["data", *self.video_keys]
        for kind in kinds:
            groups = self._file_groups(kind)
            if not groups:
                continue
            last_loc = max(groups)
            for loc, eps in groups.items():
                if loc != last_loc:
                    continue  # closed files are final (their parts may be gone)
                if new_episode is not None and (new_episode["files"][kind]["chunk_index"], new_episode["files"][kind]["file_index"]) != loc:
                    continue
                self._rebuild_file(kind, loc, eps)
            # parts of closed files are no longer needed
            for loc, eps in groups.items():
                if loc == last_loc:
                    continue
                for ep in eps:
                    part = self._part(ep, "data.parquet" if kind == "data" else f"{kind}.mp4")
                    if part.exists():
                        part.unlink()
        self._write_meta()

    def _write_meta(self) -> None:
        import pyarrow as pa

        fps = self.fps
        features = {k: dict(v, shape=list(v["shape"])) for k, v in self.features.items()}
        if self.episodes:
            for key in self.video_keys:
                loc = self.episodes[0]["files"][key]
                path = self.root / VIDEO_PATH.format(video_key=key, chunk_index=loc["chunk_index"], file_index=loc["file_index"])
                if path.is_file():
                    features[key]["info"] = video_info(path, self.codec, self.crf, self.gop)
        # tasks
        tasks: list[str] = []
        for ep in self.episodes:
            if ep["task"] not in tasks:
                tasks.append(ep["task"])
        if self.episodes:
            table = pa.table({"task_index": pa.array(range(len(tasks)), type=pa.int64()), "task": pa.array(tasks, type=pa.string())})
            # pandas metadata so that pd.read_parquet gives a DataFrame indexed by task, as LeRobot writes it
            pandas_meta = {
                "index_columns": ["task"],
                "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
                "columns": [
                    {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
                    {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
                ],
                "creator": {"library": "pyarrow", "version": pa.__version__},
                "pandas_version": "2.2.3",
            }
            table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
            _write_table_atomic(table, self.root / TASKS_PATH)
            # episodes
            rows: dict[str, list] = {
                "episode_index": [], "tasks": [], "length": [], "data/chunk_index": [], "data/file_index": [],
                "dataset_from_index": [], "dataset_to_index": [],
            }
            for key in self.video_keys:
                for col in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
                    rows[f"videos/{key}/{col}"] = []
            stat_cols: dict[str, list] = {}
            for ep in self.episodes:
                rows["episode_index"].append(ep["episode_index"])
                rows["tasks"].append([ep["task"]])
                rows["length"].append(ep["length"])
                rows["data/chunk_index"].append(ep["files"]["data"]["chunk_index"])
                rows["data/file_index"].append(ep["files"]["data"]["file_index"])
                rows["dataset_from_index"].append(ep["dataset_from_index"])
                rows["dataset_to_index"].append(ep["dataset_to_index"])
                for key in self.video_keys:
                    for col in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
                        rows[f"videos/{key}/{col}"].append(ep["files"][key][col])
                for feat, fstats in ep["stats"].items():
                    for stat, value in fstats.items():
                        stat_cols.setdefault(f"stats/{feat}/{stat}", []).append(value)
            rows.update(stat_cols)
            rows["meta/episodes/chunk_index"] = [0] * len(self.episodes)
            rows["meta/episodes/file_index"] = [0] * len(self.episodes)
            arrays = {}
            for name, values in rows.items():
                if name.endswith(("_index", "length", "/count")):
                    typ = pa.list_(pa.int64()) if name.endswith("/count") else pa.int64()
                elif name == "tasks":
                    typ = pa.list_(pa.string())
                elif name.endswith("_timestamp"):
                    typ = pa.float64()
                else:
                    depth = np.asarray(values[0]).ndim
                    typ = pa.float64()
                    for _ in range(depth):
                        typ = pa.list_(typ)
                arrays[name] = pa.array(values, type=typ)
            _write_table_atomic(pa.table(arrays), self.root / EPISODES_PATH.format(chunk_index=0, file_index=0))
            stats = aggregate_stats([_stats_from_json(ep["stats"]) for ep in self.episodes])
            atomic_write_bytes(self.root / STATS_PATH, json.dumps(_stats_to_json(stats), indent=4).encode())
            side = "".join(
                json.dumps({"episode_index": ep["episode_index"], "task": ep["task"], "length": ep["length"], **ep["extra"]}) + "\n"
                for ep in self.episodes
            )
            atomic_write_bytes(self.root / SIDE_EPISODES, side.encode())
        total_frames = self.total_frames
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(self.episodes),
            "total_frames": total_frames,
            "total_tasks": len(tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_mb if self.data_mb != int(self.data_mb) else int(self.data_mb),
            "video_files_size_in_mb": self.video_mb if self.video_mb != int(self.video_mb) else int(self.video_mb),
            "fps": fps,
            "splits": {"train": f"0:{len(self.episodes)}"} if self.episodes else {},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.video_keys else None,
            "features": features,
        }
        atomic_write_bytes(self.root / INFO_PATH, json.dumps(info, indent=4).encode())

    def finalize(self) -> None:
        """Drop an unsaved episode; the committed ones are already consolidated (nothing else is open)."""
        self.discard_episode()
