"""A client for OpenVLA's REST server (``openvla://HOST:PORT`` / ``http://HOST:PORT``).

OpenVLA's ``vla-scripts/deploy.py`` serves ``POST /act`` with JSON ``{"image": np.ndarray, "instruction": str,
"unnorm_key": optional}``, numpy arrays encoded by ``json-numpy`` (:mod:`vlatwin.policy.wire.json_numpy`), and
answers the (7,) action: a Bridge/Fractal ``EEF_POS`` delta (dx, dy, dz [m], roll, pitch, yaw [rad]) and an
absolute gripper in [0, 1] with **1 = open** (``open_0_1``). One request per control step (OpenVLA does not
chunk), so the chunk is (1, 7) in ``ee_delta_pose`` with ``rotation: rpy``.

deploy.py answers a failed request with status 200 and the JSON string ``"error"``; that becomes a one-line
error here, as do 4xx/5xx answers of ``vlatwin serve --protocol openvla`` (``{"error": "..."}``).

Spec options: ``camera`` (scene camera; default: the first), ``image_size`` (default ``224``: the frame is
resized to 224x224 as SimplerEnv's OpenVLA adapter does; ``0`` sends it as rendered), ``unnorm_key`` (e.g.
``bridge_orig``), ``api_key`` (default: env ``VLATWIN_API_KEY``), ``timeout`` (per request [s], 30),
``retries`` (attempts when the server cannot be reached, 3), ``action_space`` (``ee_delta_pose``), ``gripper``
(``open_0_1``), ``rotation`` (``rpy``), ``encoded`` (1: send deploy.py's double-encoded ``{"encoded": ...}``
form, for servers without json-numpy).
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from vlatwin.errors import VlatwinError
from vlatwin.policy.base import ActionChunk, Policy, PolicyInfo

OPENVLA_PROMPT = "In: What action should the robot take to {instruction}?\nOut:"


class OpenVLARestClient:
    """``POST /act`` against an OpenVLA-style REST server, with timeouts and retries.

    Args:
        base_url: ``http://host:port``.
        api_key: sent as ``Authorization: Api-Key <key>`` (None: no header).
        timeout: seconds per request.
        retries: attempts when the server cannot be reached (>= 1); backoff ``backoff * 2**i`` seconds.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.timeout = float(timeout)
        self.retries = max(1, int(retries))
        self.backoff = float(backoff)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """(status, body) of one request; connection failures are retried, HTTP errors are returned."""
        url = self.base_url + path
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.api_key:
            headers["Authorization"] = f"Api-Key {self.api_key}"
        reason = "unknown error"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never route loopback via a proxy
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(url, data=body, headers=headers, method=method)
            try:
                with opener.open(req, timeout=self.timeout) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as exc:
                with exc:
                    return exc.code, exc.read()
            except urllib.error.URLError as exc:
                inner = exc.reason
                if isinstance(inner, (TimeoutError, socket.timeout)):
                    raise self._timeout() from None
                reason = "connection refused" if isinstance(inner, ConnectionRefusedError) else (
                    getattr(inner, "strerror", None) or str(inner))
            except TimeoutError:
                raise self._timeout() from None
            except (ConnectionError, OSError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        tries = "try" if self.retries == 1 else "tries"
        raise VlatwinError(
            f"cannot reach OpenVLA server at {self.base_url} after {self.retries} {tries}: {reason}; start it with "
            "openvla's vla-scripts/deploy.py or `vlatwin serve --protocol openvla --policy SPEC`"
        )

    def _timeout(self) -> VlatwinError:
        return VlatwinError(
            f"OpenVLA server at {self.base_url} did not answer within {self.timeout:g} s (raise ?timeout=... for slow models)"
        )

    def act(self, image: np.ndarray, instruction: str, *, unnorm_key: str | None = None, encoded: bool = False) -> np.ndarray:
        """The server's action for one image and instruction (as deploy.py returns it)."""
        from vlatwin.policy.wire.json_numpy import dumps, loads

        payload: dict[str, Any] = {"image": np.ascontiguousarray(image), "instruction": instruction}
        if unnorm_key:
            payload["unnorm_key"] = unnorm_key
        text = dumps({"encoded": dumps(payload)}) if encoded else dumps(payload)
        status, body = self.request("POST", "/act", text.encode())
        where = f"OpenVLA server at {self.base_url}"
        try:
            reply = loads(body)
        except VlatwinError:
            raise VlatwinError(f"{where} answered HTTP {status} with a body that is not JSON: {body[:80]!r}") from None
        if status != 200:
            msg = reply.get("error") or reply.get("detail") if isinstance(reply, dict) else reply
            raise VlatwinError(f"{where} answered HTTP {status}: {str(msg).strip().splitlines()[0][:300] if msg else '(no message)'}")
        if isinstance(reply, str):  # deploy.py: "error", or a double-encoded action
            if reply == "error":
                raise VlatwinError(f"{where} reported an error (deploy.py logs the traceback); check the image and unnorm_key")
            try:
                reply = loads(reply)
            except VlatwinError:
                raise VlatwinError(f"{where} answered {reply[:80]!r}, not an action") from None
        if isinstance(reply, dict) and "action" in reply:
            reply = reply["action"]
        if isinstance(reply, dict) and "error" in reply:
            raise VlatwinError(f"{where} reported an error: {str(reply['error']).splitlines()[0][:300]}")
        try:
            return np.array(reply, dtype=np.float64)
        except (TypeError, ValueError):
            raise VlatwinError(f"{where} answered a {type(reply).__name__}, not an action array") from None

    def get_json(self, path: str) -> Any | None:
        """JSON of a GET, None unless it answers 200 with JSON."""
        status, body = self.request("GET", path)
        if status == 401:
            what = "refused the API key" if self.api_key else "requires an API key"
            raise VlatwinError(f"OpenVLA server at {self.base_url} {what} (HTTP 401); pass ?api_key=KEY or set VLATWIN_API_KEY")
        if status != 200:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None


class OpenVLARestPolicy(Policy):
    """An OpenVLA REST server as a one-step :class:`~vlatwin.policy.base.Policy` (see the module docstring).

    Args:
        client: the :class:`OpenVLARestClient`.
        camera: scene camera whose RGB frame is sent.
        image_size: (height, width) the frame is resized to (None: as rendered).
        unnorm_key: dataset statistics the server un-normalizes with (None: the checkpoint's only one).
        action_space, gripper, rotation: how the actions are executed (OpenVLA: ``ee_delta_pose``, ``open_0_1``, ``rpy``).
        action_dim: actions must have this many dims (7 for OpenVLA).
        encoded: send the double-encoded form.
    """

    def __init__(
        self,
        client: OpenVLARestClient,
        *,
        camera: str,
        image_size: tuple[int, int] | None = (224, 224),
        unnorm_key: str | None = None,
        action_space: str = "ee_delta_pose",
        gripper: str = "open_0_1",
        rotation: str = "rpy",
        action_dim: int | None = 7,
        encoded: bool = False,
        control_hz: float | None = None,
    ) -> None:
        self.client = client
        self.camera = camera
        self.image_size = image_size
        self.unnorm_key = unnorm_key
        self.encoded = encoded
        controller_options = {"rotation": rotation} if action_space.startswith("ee_") else {}
        self.info = PolicyInfo(
            name=client.base_url.replace("http://", "openvla://", 1), action_space=action_space, chunk_size=1,
            action_dim=action_dim, control_hz=control_hz, image_keys=(camera,), image_size=image_size,
            prompt_template=OPENVLA_PROMPT, gripper_convention=gripper, controller_options=controller_options,
        )
        meta = client.get_json("/info")  # fails fast when the server is down; vlatwin servers answer metadata
        self.remote_is_vlatwin = isinstance(meta, dict) and "vlatwin/protocol" in meta

    def reset(self, episode: int | None = None) -> None:
        """Reset a ``vlatwin serve`` policy (deploy.py keeps no episode state)."""
        if self.remote_is_vlatwin:
            status, body = self.client.request("POST", "/reset", json.dumps({"episode": episode}).encode())
            if status != 200:
                raise VlatwinError(f"OpenVLA server at {self.client.base_url} refused the reset (HTTP {status}: {body[:120]!r})")

    def image(self, observation) -> np.ndarray:
        """The frame sent: the camera's RGB, resized to ``image_size`` (Lanczos, no padding)."""
        from vlatwin.policy.observation import camera_rgb

        rgb = camera_rgb(observation, self.camera)
        if self.image_size is not None and rgb.shape[:2] != tuple(self.image_size):
            from PIL import Image

            h, w = self.image_size
            rgb = np.asarray(Image.fromarray(rgb).resize((w, h), resample=Image.LANCZOS))
        return rgb

    def act(self, observation) -> ActionChunk:
        if observation.instruction is None:
            raise VlatwinError("OpenVLA needs a language instruction; the task has none")
        image = self.image(observation)
        t0 = time.perf_counter()
        action = self.client.act(image, observation.instruction, unnorm_key=self.unnorm_key, encoded=self.encoded)
        round_trip_ms = (time.perf_counter() - t0) * 1000.0
        where = f"OpenVLA server at {self.client.base_url}"
        if action.ndim == 1:
            action = action[None, :]
        if action.ndim != 2 or action.shape[0] < 1 or (self.info.action_dim is not None and action.shape[1] != self.info.action_dim):
            want = f"({self.info.action_dim},)" if self.info.action_dim else "(D,)"
            raise VlatwinError(f"{where} sent an action of shape {list(action.shape)}; expected {want} for {self.info.action_space}")
        bad = ~np.isfinite(action)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise VlatwinError(f"{where} sent a non-finite action ({action[i, j]} at step {i}, dim {j}); rejected")
        return ActionChunk(action, timing={"round_trip_ms": round_trip_ms})


def from_spec(target: str, options: dict, context) -> OpenVLARestPolicy:
    """``openvla://HOST:PORT?...`` / ``http://HOST:PORT?...`` (see the module docstring for the options)."""
    from vlatwin.policy.factory import take_options
    from vlatwin.policy.openpi import parse_image_size, split_host_port

    where = f"--policy openvla://{target}"
    opts = take_options(
        options,
        {
            "camera": "", "image_size": "224", "unnorm_key": "", "api_key": "", "timeout": 30.0, "retries": 3,
            "action_space": "ee_delta_pose", "gripper": "open_0_1", "rotation": "rpy", "encoded": False,
        },
        where,
    )
    host, port = split_host_port(target, where)
    if opts["timeout"] <= 0 or opts["retries"] < 1:
        raise VlatwinError(f"{where}: timeout must be > 0 and retries >= 1")
    from vlatwin.control.gripper import GripperConvention

    try:
        gripper = str(GripperConvention(opts["gripper"]))
    except ValueError:
        raise VlatwinError(f"{where}: unknown gripper convention {opts['gripper']!r}; known: {', '.join(c.value for c in GripperConvention)}") from None
    if opts["rotation"] not in ("rpy", "axis_angle"):
        raise VlatwinError(f"{where}: rotation must be rpy or axis_angle, got {opts['rotation']!r}")
    cameras = tuple(getattr(context, "cameras", ()) or ())
    camera = opts["camera"] or (cameras[0] if cameras else "")
    if not camera:
        raise VlatwinError(f"{where}: no camera to send; the scene has none (or pass ?camera=NAME)")
    if cameras and camera not in cameras:
        raise VlatwinError(f"{where}: unknown camera {camera!r}; scene cameras: {', '.join(cameras)}")
    hostpart = f"[{host}]" if ":" in host else host
    client = OpenVLARestClient(
        f"http://{hostpart}:{port}", api_key=opts["api_key"] or os.environ.get("VLATWIN_API_KEY") or None,
        timeout=opts["timeout"], retries=opts["retries"],
    )
    dim = 7 if opts["action_space"] == "ee_delta_pose" else None
    return OpenVLARestPolicy(
        client, camera=camera, image_size=parse_image_size(opts["image_size"], where), unnorm_key=opts["unnorm_key"] or None,
        action_space=opts["action_space"], gripper=gripper, rotation=opts["rotation"], action_dim=dim, encoded=opts["encoded"],
        control_hz=getattr(context, "control_hz", None),
    )


__all__ = ["OPENVLA_PROMPT", "OpenVLARestClient", "OpenVLARestPolicy", "from_spec"]
