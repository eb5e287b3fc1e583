"""Normalization statistics read from a model's own files, and the normalize / un-normalize maths.

Models see normalized states and emit normalized actions; the statistics come with the checkpoint:

================ ============================================================= ===========================
source           file and layout                                               loader
================ ============================================================= ===========================
OpenVLA          ``config.json`` ``norm_stats[unnorm_key]["action"]`` or       :func:`load_openvla_stats`
                 ``dataset_statistics.json`` ``{unnorm_key: {"action": {mean,
                 std, min, max, q01, q99, mask}, "proprio": {...}}}``
openpi           ``norm_stats.json`` ``{"norm_stats": {"state": {mean, std,    :func:`load_openpi_stats`
                 q01, q99}, "actions": {...}}}`` (``openpi.shared.normalize``;
                 checkpoints keep it under ``assets/<asset_id>/``)
LeRobot          dataset ``meta/stats.json`` ``{feature: {min, max, mean, std,  :func:`load_lerobot_stats`
                 count, q01, ..., q99}}``, or a policy folder's normalizer
                 state (``policy_preprocessor.json`` names a ``.safetensors``
                 file with ``<feature>.<stat>`` tensors; LeRobot >= 0.4)
================ ============================================================= ===========================

Modes (:class:`NormMode`), all per dimension; where ``mask`` is False a dimension passes unchanged (OpenVLA
leaves the gripper un-normalized that way):

- ``mean_std``: ``(x - mean) / (std + eps)``, back with ``x * std + mean`` (eps 1e-8, as LeRobot; openpi
  uses 1e-6).
- ``min_max``: ``[min, max] -> [-1, 1]`` (LeRobot ``MIN_MAX``, OpenVLA-OFT ``BOUNDS``).
- ``q01_q99``: ``[q01, q99] -> [-1, 1]``, clipped to [-1, 1] (OpenVLA's ``BOUNDS_Q99``); un-normalizing is
  OpenVLA's ``0.5 * (a + 1) * (q99 - q01) + q01``.
- ``identity``: unchanged.

For ``min_max`` and ``q01_q99`` a dimension whose bounds coincide normalizes to 0 and un-normalizes to
the bound (OpenVLA: "dims with min == max become 0").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from vlatwin.errors import VlatwinError

#: Denominator guard of ``mean_std`` (LeRobot's ``NormalizerProcessorStep.eps``).
EPS = 1e-8
STAT_NAMES = ("mean", "std", "min", "max", "q01", "q99")


class NormMode(StrEnum):
    """How a vector is normalized (see the module docstring)."""

    MEAN_STD = "mean_std"
    MIN_MAX = "min_max"
    Q01_Q99 = "q01_q99"
    IDENTITY = "identity"


#: Other names of the modes (LeRobot's ``NormalizationMode`` values, OpenVLA's ``NormalizationType``).
MODE_ALIASES = {
    "MEAN_STD": NormMode.MEAN_STD, "normal": NormMode.MEAN_STD, "MIN_MAX": NormMode.MIN_MAX, "bounds": NormMode.MIN_MAX,
    "QUANTILES": NormMode.Q01_Q99, "bounds_q99": NormMode.Q01_Q99, "quantiles": NormMode.Q01_Q99, "IDENTITY": NormMode.IDENTITY,
}


def parse_mode(mode) -> NormMode:
    """The :class:`NormMode` named ``mode`` (also LeRobot / OpenVLA spellings), or a one-line error."""
    if isinstance(mode, NormMode):
        return mode
    text = str(getattr(mode, "value", mode))
    if text in MODE_ALIASES:
        return MODE_ALIASES[text]
    try:
        return NormMode(text.lower())
    except ValueError:
        raise VlatwinError(f"unknown normalization mode {mode!r}; known: {', '.join(m.value for m in NormMode)}") from None


@dataclass(frozen=True, kw_only=True)
class NormStats:
    """Per-dimension statistics of one vector feature (state or action); any may be None when unknown."""

    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    min: np.ndarray | None = None
    max: np.ndarray | None = None
    q01: np.ndarray | None = None
    """1st percentile."""
    q99: np.ndarray | None = None
    """99th percentile."""
    mask: np.ndarray | None = None
    """(D,) bool, True where the dimension is normalized; None: all are."""

    def __post_init__(self) -> None:
        dims = set()
        for name in STAT_NAMES:
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
            if not np.all(np.isfinite(arr)):
                raise VlatwinError(f"normalization stats: {name} has non-finite values {arr.tolist()}")
            object.__setattr__(self, name, arr)
            dims.add(arr.size)
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=bool).reshape(-1)
            object.__setattr__(self, "mask", mask)
            dims.add(mask.size)
        if len(dims) > 1:
            sizes = {n: getattr(self, n).size for n in (*STAT_NAMES, "mask") if getattr(self, n) is not None}
            raise VlatwinError(f"normalization stats disagree on the number of dimensions: {sizes}")

    @property
    def dim(self) -> int | None:
        """Number of dimensions D (None when no statistic is set)."""
        for name in (*STAT_NAMES, "mask"):
            value = getattr(self, name)
            if value is not None:
                return int(value.size)
        return None

    @classmethod
    def from_dict(cls, data: dict, *, where: str = "normalization stats") -> NormStats:
        """From a JSON-style dict (``mean``, ``std``, ``min``, ``max``, ``q01``, ``q99``, ``mask``; others ignored)."""
        if not isinstance(data, dict):
            raise VlatwinError(f"{where}: expected a mapping of statistics, got {type(data).__name__}")
        kwargs = {}
        for name in (*STAT_NAMES, "mask"):
            value = data.get(name)
            if value is None:
                continue
            try:
                kwargs[name] = np.asarray(value, dtype=bool if name == "mask" else np.float64)
            except (TypeError, ValueError):
                raise VlatwinError(f"{where}: {name} is not a list of numbers") from None
        try:
            return cls(**kwargs)
        except VlatwinError as exc:
            raise VlatwinError(f"{where}: {str(exc).removeprefix('normalization stats: ')}") from None

    def to_dict(self) -> dict:
        """JSON-ready (lists; unset statistics left out)."""
        return {n: getattr(self, n).tolist() for n in (*STAT_NAMES, "mask") if getattr(self, n) is not None}

    # ------------------------------------------------------------------ maths
    def normalize(self, x, mode, *, clip: bool | None = None) -> np.ndarray:
        """``x`` (..., D) in model units; ``clip`` to [-1, 1] (default: only for ``q01_q99``)."""
        return self._apply(x, parse_mode(mode), inverse=False, clip=clip)

    def unnormalize(self, x, mode) -> np.ndarray:
        """``x`` (..., D) back in the data's units (float64)."""
        return self._apply(x, parse_mode(mode), inverse=True, clip=False)

    def _apply(self, x, mode: NormMode, *, inverse: bool, clip: bool | None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if mode is NormMode.IDENTITY:
            return x.copy()
        lo_name, hi_name = {NormMode.MEAN_STD: ("mean", "std"), NormMode.MIN_MAX: ("min", "max"), NormMode.Q01_Q99: ("q01", "q99")}[mode]
        lo, hi = getattr(self, lo_name), getattr(self, hi_name)
        if lo is None or hi is None:
            have = ", ".join(n for n in STAT_NAMES if getattr(self, n) is not None) or "none"
            raise VlatwinError(f"normalization mode {mode.value} needs {lo_name} and {hi_name}; the stats have {have}")
        if x.ndim == 0 or x.shape[-1] != lo.size:
            raise VlatwinError(f"normalization stats have {lo.size} dimensions, the vector has shape {x.shape}")
        if mode is NormMode.MEAN_STD:
            out = x * hi + lo if inverse else (x - lo) / (hi + EPS)
        else:
            span = hi - lo
            flat = span == 0
            if inverse:
                out = 0.5 * (x + 1.0) * span + lo
            else:
                out = np.where(flat, 0.0, 2.0 * (x - lo) / np.where(flat, 1.0, span) - 1.0)
                if clip if clip is not None else mode is NormMode.Q01_Q99:
                    out = np.clip(out, -1.0, 1.0)
        if self.mask is not None:
            out = np.where(self.mask, out, x)
        return out


# ------------------------------------------------------------------------------------------ loaders
def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise VlatwinError(f"{what}: no such file {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise VlatwinError(f"{what}: cannot read {path} as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise VlatwinError(f"{what}: {path} does not hold a JSON object")
    return data


def load_openvla_stats(path, unnorm_key: str | None = None) -> dict[str, NormStats]:
    """OpenVLA's statistics of one dataset: ``{"action": NormStats, "proprio": NormStats (when present)}``.

    Args:
        path: a checkpoint folder (``dataset_statistics.json``, else ``config.json``'s ``norm_stats``) or
            either file.
        unnorm_key: the dataset (``bridge_orig``, ``fractal20220817_data``, ...); may be omitted only when
            the file has exactly one (as OpenVLA's ``_check_unnorm_key``).
    """
    path = Path(path)
    if path.is_dir():
        stats_file, config_file = path / "dataset_statistics.json", path / "config.json"
        path = stats_file if stats_file.is_file() else config_file
        if not path.is_file():
            raise VlatwinError(f"OpenVLA stats: {path.parent} has neither dataset_statistics.json nor config.json")
    data = _read_json(path, "OpenVLA stats")
    if path.name == "config.json" or "norm_stats" in data:
        if "norm_stats" not in data:
            raise VlatwinError(f"OpenVLA stats: {path} has no 'norm_stats' (not an OpenVLA checkpoint config)")
        data = data["norm_stats"]
    datasets = sorted(k for k, v in data.items() if isinstance(v, dict))
    if unnorm_key is None:
        if len(datasets) != 1:
            raise VlatwinError(f"OpenVLA stats in {path} cover {len(datasets)} datasets; pick one with unnorm_key= ({', '.join(datasets)})")
        unnorm_key = datasets[0]
    if unnorm_key not in datasets:
        raise VlatwinError(f"OpenVLA stats: unnorm_key {unnorm_key!r} is not in {path}; known: {', '.join(datasets) or 'none'}")
    entry = data[unnorm_key]
    if "action" not in entry:
        raise VlatwinError(f"OpenVLA stats: {path} [{unnorm_key!r}] has no 'action' statistics")
    out = {"action": NormStats.from_dict(entry["action"], where=f"OpenVLA stats {unnorm_key}/action")}
    if isinstance(entry.get("proprio"), dict):
        out["proprio"] = NormStats.from_dict(entry["proprio"], where=f"OpenVLA stats {unnorm_key}/proprio")
    return out


def load_openpi_stats(path, asset_id: str | None = None) -> dict[str, NormStats]:
    """openpi's ``norm_stats.json``: ``{"state": NormStats, "actions": NormStats, ...}`` (mean, std, q01, q99).

    Args:
        path: the file, the folder holding it, or a checkpoint folder with ``assets/<asset_id>/norm_stats.json``.
        asset_id: which asset folder (may be omitted when there is exactly one).
    """
    path = Path(path)
    if path.is_dir():
        if (path / "norm_stats.json").is_file():
            path = path / "norm_stats.json"
        else:
            found = sorted((path / "assets").glob("*/norm_stats.json")) if (path / "assets").is_dir() else []
            ids = [p.parent.name for p in found]
            if asset_id is not None:
                if asset_id not in ids:
                    raise VlatwinError(f"openpi stats: no assets/{asset_id}/norm_stats.json in {path}; found: {', '.join(ids) or 'none'}")
                path = found[ids.index(asset_id)]
            elif len(found) == 1:
                path = found[0]
            elif not found:
                raise VlatwinError(f"openpi stats: no norm_stats.json in {path} (nor assets/*/norm_stats.json)")
            else:
                raise VlatwinError(f"openpi stats: {path} has several assets; pick one with asset_id= ({', '.join(ids)})")
    data = _read_json(path, "openpi stats")
    if not isinstance(data.get("norm_stats"), dict):
        raise VlatwinError(f"openpi stats: {path} has no 'norm_stats' mapping (expected {{\"norm_stats\": {{\"state\": ..., \"actions\": ...}}}})")
    return {key: NormStats.from_dict(value, where=f"openpi stats {key}") for key, value in data["norm_stats"].items()}


def load_lerobot_stats(path) -> dict[str, NormStats]:
    """LeRobot statistics per feature (``observation.state``, ``action``, ``observation.images.<cam>``...).

    Args:
        path: a dataset root (``meta/stats.json``), a ``stats.json`` file, or a LeRobot >= 0.4 policy folder
            (its ``policy_preprocessor.json`` normalizer state; needs ``safetensors``).

    Image statistics are (C, 1, 1) in LeRobot; they are flattened to (C,) here.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "meta" / "stats.json").is_file():
            path = path / "meta" / "stats.json"
        elif (path / "stats.json").is_file():
            path = path / "stats.json"
        elif (path / "policy_preprocessor.json").is_file():
            return _lerobot_policy_stats(path)
        else:
            raise VlatwinError(f"LeRobot stats: {path} has no meta/stats.json, stats.json or policy_preprocessor.json")
    data = _read_json(path, "LeRobot stats")
    return {key: NormStats.from_dict(value, where=f"LeRobot stats {key}") for key, value in data.items() if isinstance(value, dict)}


def _lerobot_policy_stats(folder: Path) -> dict[str, NormStats]:
    from vlatwin._deps import require

    config = _read_json(folder / "policy_preprocessor.json", "LeRobot stats")
    files = [s.get("state_file") for s in config.get("steps", []) if "normaliz" in str(s.get("registry_name", s.get("class", ""))).lower()]
    files = [f for f in files if f]
    if not files:
        raise VlatwinError(f"LeRobot stats: {folder / 'policy_preprocessor.json'} has no normalizer step with a state file")
    state_path = folder / files[0]
    if not state_path.is_file():
        raise VlatwinError(f"LeRobot stats: no such file {state_path}")
    tensors = require("safetensors.numpy", extra="").load_file(str(state_path))
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        feature, _, stat = key.rpartition(".")
        grouped.setdefault(feature, {})[stat] = np.asarray(value, dtype=np.float64).reshape(-1)
    return {feature: NormStats.from_dict(stats, where=f"LeRobot stats {feature}") for feature, stats in grouped.items()}


def stats_for(stats: dict[str, NormStats], key: str, *, where: str = "normalization stats") -> NormStats:
    """``stats[key]`` or a one-line error naming the keys there are."""
    if key not in stats:
        raise VlatwinError(f"{where}: no statistics for {key!r}; have: {', '.join(sorted(stats)) or 'none'}")
    return stats[key]


__all__ = [
    "EPS",
    "NormMode",
    "NormStats",
    "load_lerobot_stats",
    "load_openpi_stats",
    "load_openvla_stats",
    "parse_mode",
    "stats_for",
]
