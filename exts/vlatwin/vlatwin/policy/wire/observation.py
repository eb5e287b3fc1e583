"""The "vlatwin" wire layout: a loop :class:`~vlatwin.loop.control_loop.Observation` as a flat msgpack dict.

A vlatwin policy served with ``vlatwin serve`` sees over the wire exactly what it would see in process:
the whole :class:`~vlatwin.sim.types.SimState` (float64 arrays, bit for bit) and the RGB frames of the
chosen cameras, so even the scripted expert (which reads body poses) acts identically.

=================================== ===============================================================
key                                 value
=================================== ===============================================================
``vlatwin/layout``                  ``1`` (layout version; marks a vlatwin observation)
``vlatwin/time``, ``vlatwin/step``  :attr:`Observation.time` [s] (float), :attr:`Observation.step` (int)
``prompt``                          :attr:`Observation.instruction` (openpi's key; absent when None)
``vlatwin/state/<field>``           every :class:`SimState` field (``time``, ``step``, ``joint_q``,
                                    ``joint_qd``, ``body_pose_w``, ``body_vel_w``, ``joint_effort``...)
``observation/images/<cam>``        (H, W, 3) uint8 RGB of scene camera ``<cam>``
``vlatwin/sensor_times/<cam>``      capture start time [s] of that frame (when known)
=================================== ===============================================================

On the way back each image becomes sensor data ``{"rgb": image}`` under the camera's name (a read-only
view of the received bytes; state arrays are writeable copies).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vlatwin.policy.wire import WireError

LAYOUT_VERSION = 1
IMAGE_PREFIX = "observation/images/"
STATE_PREFIX = "vlatwin/state/"
TIMES_PREFIX = "vlatwin/sensor_times/"


def _has_rgb(data: Any) -> bool:
    rgb = data.get("rgb") if isinstance(data, dict) else data
    return isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] >= 3


def observation_to_wire(obs, *, cameras: list[str] | tuple[str, ...] | None = None) -> dict:
    """The observation as the vlatwin wire dict (see the module docstring).

    Args:
        obs: a :class:`~vlatwin.loop.control_loop.Observation`.
        cameras: scene camera names whose RGB frames to send; None: every sensor holding an RGB image.
    """
    from vlatwin.errors import VlatwinError
    from vlatwin.policy.observation import camera_rgb

    out: dict[str, Any] = {"vlatwin/layout": LAYOUT_VERSION, "vlatwin/time": float(obs.time), "vlatwin/step": int(obs.step)}
    if obs.instruction is not None:
        out["prompt"] = str(obs.instruction)
    for f in _simstate_fields(type(obs.state)):
        value = getattr(obs.state, f.name)
        if isinstance(value, np.ndarray):
            out[STATE_PREFIX + f.name] = np.ascontiguousarray(value)
        elif isinstance(value, (bool, int, float, str, np.generic)) or value is None:
            out[STATE_PREFIX + f.name] = value.item() if isinstance(value, np.generic) else value
        else:
            out[STATE_PREFIX + f.name] = np.asarray(value)
    names = list(obs.sensors) if cameras is None else list(cameras)
    for name in names:
        if not _has_rgb(obs.sensors.get(name)):
            if cameras is None:
                continue
            have = ", ".join(sorted(obs.sensors)) or "none"
            raise VlatwinError(f"camera {name!r} has no RGB image in the observation (sensors: {have})")
        out[IMAGE_PREFIX + name] = np.ascontiguousarray(camera_rgb(obs, name))
        if name in obs.sensor_times:
            out[TIMES_PREFIX + name] = float(obs.sensor_times[name])
    return out


def is_vlatwin_wire(d: Any) -> bool:
    """True for a dict written by :func:`observation_to_wire`."""
    return isinstance(d, dict) and "vlatwin/layout" in d


def _array(d: dict, key: str, ndim: int, width: int | None = None) -> np.ndarray:
    value = d[key]
    if isinstance(value, list):
        value = np.asarray(value, dtype=np.float64) if value else np.zeros((0,) * ndim if width is None else (0, width))
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise WireError(f"vlatwin observation: {key!r} must be a numeric array, got {type(value).__name__}")
    if value.ndim != ndim or (width is not None and value.shape[1] != width):
        want = "(N,)" if ndim == 1 else f"(N, {width})"
        raise WireError(f"vlatwin observation: {key!r} must be {want}, got shape {list(value.shape)}")
    return np.array(value, dtype=np.float64)  # a writeable copy (received arrays are read-only views)


_FIELDS: dict[type, tuple] = {}


def _simstate_fields(cls: type) -> tuple:
    if cls not in _FIELDS:
        _FIELDS[cls] = dataclasses.fields(cls)
    return _FIELDS[cls]


_STATE_ARRAYS = {"joint_q": (1, None), "joint_qd": (1, None), "body_pose_w": (2, 7), "body_vel_w": (2, 6), "joint_effort": (1, None)}


def wire_to_observation(d: dict):
    """A vlatwin wire dict back to an :class:`~vlatwin.loop.control_loop.Observation`.

    Raises:
        WireError: missing keys or values of the wrong type or shape.
    """
    from vlatwin.loop.control_loop import Observation
    from vlatwin.sim.types import SimState

    if not is_vlatwin_wire(d):
        raise WireError("not a vlatwin observation (no 'vlatwin/layout' key)")
    if d["vlatwin/layout"] != LAYOUT_VERSION:
        raise WireError(f"vlatwin observation layout {d['vlatwin/layout']!r} is not supported (this side speaks {LAYOUT_VERSION})")
    kwargs: dict[str, Any] = {}
    for f in _simstate_fields(SimState):
        key = STATE_PREFIX + f.name
        if key not in d:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise WireError(f"vlatwin observation: missing {key!r}")
            continue
        if f.name in _STATE_ARRAYS:
            kwargs[f.name] = _array(d, key, *_STATE_ARRAYS[f.name])
        elif f.name == "time":
            kwargs["time"] = _number(d, key, float)
        elif f.name == "step":
            kwargs["step"] = _number(d, key, int)
        else:  # fields added to SimState later travel as they are
            value = d[key]
            kwargs[f.name] = np.array(value) if isinstance(value, np.ndarray) else value
    state = SimState(**kwargs)
    sensors: dict[str, Any] = {}
    times: dict[str, float] = {}
    for key, value in d.items():
        if not isinstance(key, str) or not key.startswith(IMAGE_PREFIX):
            continue
        name = key[len(IMAGE_PREFIX):]
        if not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.ndim != 3 or value.shape[2] != 3:
            raise WireError(f"vlatwin observation: {key!r} must be an (H, W, 3) uint8 image")
        sensors[name] = {"rgb": value}  # read-only view of the frame (no copy); treat sensor data as read-only
        if TIMES_PREFIX + name in d:
            times[name] = _number(d, TIMES_PREFIX + name, float)
    prompt = d.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise WireError(f"vlatwin observation: 'prompt' must be a string, got {type(prompt).__name__}")
    return Observation(
        time=_number(d, "vlatwin/time", float), step=_number(d, "vlatwin/step", int), state=state,
        sensors=sensors, sensor_times=times, instruction=prompt,
    )


def _number(d: dict, key: str, kind: type) -> Any:
    if key not in d:
        raise WireError(f"vlatwin observation: missing {key!r}")
    value = d[key]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise WireError(f"vlatwin observation: {key!r} must be a{'n int' if kind is int else ' number'}, got {type(value).__name__}")
    return kind(value)


# ------------------------------------------------------------------------------- foreign observations
def generic_to_observation(d: dict):
    """Best effort for a dict in another layout (openpi LIBERO/DROID/ALOHA keys, LeRobot keys): every
    uint8 image (HWC or CHW, at any nesting) becomes ``{"rgb": ...}`` sensor data named by its last key part,
    the first state-like vector becomes ``joint_q``, ``prompt``/``task`` the instruction."""
    from vlatwin.loop.control_loop import Observation
    from vlatwin.sim.types import SimState

    if not isinstance(d, dict):
        raise WireError(f"observation must be a map, got {type(d).__name__}")
    sensors: dict[str, Any] = {}
    vectors: dict[str, np.ndarray] = {}

    def walk(prefix: str, obj: Any, depth: int) -> None:
        if depth > 8 or not isinstance(obj, dict):
            return
        for key, value in obj.items():
            if not isinstance(key, str):
                continue
            path = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(path + "/", value, depth + 1)
            elif isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 3:
                img = value if value.shape[2] in (3, 4) else np.moveaxis(value, 0, -1) if value.shape[0] in (3, 4) else None
                if img is not None:
                    sensors[key.replace(".", "/").rsplit("/", 1)[-1]] = {"rgb": np.array(img[..., :3])}
            elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.ndim == 1:
                vectors[path] = np.array(value, dtype=np.float64)

    walk("", d, 0)
    q = np.zeros(0)
    for key in ("observation/state", "observation.state", "state", "observation/joint_position"):
        if key in vectors:
            q = vectors[key]
            break
    prompt = d.get("prompt", d.get("task"))
    state = SimState(time=0.0, step=0, joint_q=q, joint_qd=np.zeros_like(q), body_pose_w=np.zeros((0, 7)), body_vel_w=np.zeros((0, 6)))
    return Observation(time=0.0, step=0, state=state, sensors=sensors, instruction=prompt if isinstance(prompt, str) else None)


__all__ = ["IMAGE_PREFIX", "LAYOUT_VERSION", "generic_to_observation", "is_vlatwin_wire", "observation_to_wire", "wire_to_observation"]
