"""Absurd numbers in a config (1e308, -1e308, 0, negatives) end in one-line errors, never tracebacks.

The fuzz test walks every numeric field of the default config (``configs/tabletop.yaml`` with all
defaults filled in and its LIDAR profile written inline), sets it to each bad value and requires either
a :class:`ConfigError` whose single line names the field, or a value that is really fine: within the
documented bounds (``vlatwin.config.types``) and usable by what consumes it.
"""

from __future__ import annotations

import copy
import math
import re
import subprocess
import sys

import pytest
import yaml

from vlatwin.config.loader import config_from_dict
from vlatwin.errors import ConfigError

HUGE = (1e308, -1e308)
SMALL = (0, -1)


def _full_config(repo_root) -> dict:
    """configs/tabletop.yaml as a dict with every default spelled out, so defaults get fuzzed too."""
    data = yaml.safe_load((repo_root / "configs" / "tabletop.yaml").read_text())
    config = config_from_dict(data, source="tabletop.yaml", base_dir=repo_root / "configs")
    full = config.model_dump(mode="json")
    profile = config.scene.lidars[0].resolved_profile.model_dump(mode="json")
    profile["elevations_deg"] = profile["elevations_deg"][:3]  # three channels are enough to fuzz
    full["scene"]["lidars"][0]["profile"] = profile
    full["scene"]["cameras"][1] |= {"fov_deg": None, "focal_length": 18.0}
    full["scene"]["robot"] |= {"home_joint_positions": {"panda_joint1": 0.1}, "drive": {"stiffness": 800.0, "damping": 5.0}}
    randomize = full["generate"]["randomize"]
    randomize["objects"] |= {"region": [[0.0, -0.5], [0.8, 0.5]], "scale_range": [0.8, 1.2]}
    randomize["distractors"] |= {"count": 3}
    full["generate"]["camera_options"]["front"]["lens"]["distortion"] = [0.1, -0.05]
    return full


def _numeric_leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _numeric_leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, list) and i > 0 and path[-1] == "vertices":
                continue  # one vertex per mesh is enough
            yield from _numeric_leaves(value, (*path, i))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path


def _set(data: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def _field_path(path: tuple) -> str:
    """``scene.cameras[0].position`` for ``("scene", "cameras", 0, "position", 2)``: the field an error must name."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return re.sub(r"(\[\d+\])+$", "", out)


def _names_field(message: str, where: str) -> bool:
    """The message starts with the field's path, or with its parent's path and then mentions the field by name."""
    if message.startswith(f"configs/x.yaml: {where}"):
        return True
    parent, _, name = where.rpartition(".")
    return message.startswith(f"configs/x.yaml: {parent}") and name in message


def _check_consumers(config) -> None:
    """Run the numeric code that turns config values into sensors, randomization and geometry (pure numpy)."""
    import numpy as np

    from vlatwin.sdg.randomize import kelvin_to_rgb, with_distractors
    from vlatwin.usd.lights_cameras import camera_intrinsics
    from vlatwin.utils.transforms import look_at_matrix, rpy_deg_to_matrix

    scene, gen = config.scene, config.generate
    values = []
    for cam in scene.cameras:
        values += [*camera_intrinsics(cam).ravel(), *look_at_matrix(cam.position, cam.look_at, cam.up).ravel()]
        values += [cam.focal_length_mm, cam.vertical_aperture]
    for lidar in scene.lidars:
        profile = lidar.resolved_profile
        values += [profile.points_per_scan, profile.scan_time, *rpy_deg_to_matrix(lidar.rpy_deg).ravel()]
    for obj in scene.objects:
        values += [*rpy_deg_to_matrix(obj.rpy_deg).ravel()]
    if gen.randomize.lights.color_temperature_range:
        values += [c for k in gen.randomize.lights.color_temperature_range for c in kelvin_to_rgb(k)]
    with_distractors(scene, gen.randomize.distractors, gen.seed)  # builds ObjectCfgs: must stay valid
    values += [1.0 / scene.physics.dt]
    assert np.all(np.isfinite(np.asarray(values, dtype=float)))


def test_every_numeric_field_rejects_absurd_values(repo_root):
    """1e308 / -1e308 are rejected with one line naming the field; 0 / -1 are rejected the same way or usable."""
    base = _full_config(repo_root)
    config_from_dict(copy.deepcopy(base), source="configs/x.yaml")  # the starting point is valid
    failures = []
    checked = 0
    cases = [(path, value) for path in _numeric_leaves(base) for value in (*HUGE, *SMALL)]
    for path, value in cases:
        data = copy.deepcopy(base)
        _set(data, path, value)
        where = _field_path(path)
        try:
            config = config_from_dict(data, source="configs/x.yaml", base_dir=repo_root / "configs")
        except ConfigError as exc:
            message = str(exc)
            if "\n" in message or not _names_field(message, where):
                failures.append(f"{where} = {value}: {message!r}")
            checked += 1
            continue
        except Exception as exc:  # noqa: BLE001 - any other exception is the bug this test looks for
            failures.append(f"{where} = {value}: {type(exc).__name__}: {exc}")
            continue
        if value in HUGE:
            failures.append(f"{where} = {value}: accepted")
            continue
        try:
            _check_consumers(config)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{where} = {value}: accepted, then {type(exc).__name__}: {exc}")
        checked += 1
    assert checked > 400
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("scene", "cameras", 0, "position"), [1e4, -1e4, 1e4]),
        (("scene", "cameras", 0, "clipping_range"), [0.01, 1e7]),
        (("scene", "objects", 0, "size"), [1e3, 1e3, 1e3]),
        (("scene", "objects", 0, "scale"), 1e3),
        (("scene", "objects", 8, "scale"), 1e3),
        (("scene", "objects", 5, "mass"), 1e6),
        (("scene", "lights", 2, "intensity"), 1e9),
        (("scene", "lights", 2, "exposure"), -30),
        (("scene", "robot", "yaw_deg"), -360),
        (("scene", "robot", "drive"), {"stiffness": 1e9, "damping": 1e9}),
        (("scene", "physics", "gravity"), [1e4, -1e4, -1e4]),
        (("scene", "physics", "dt"), 1e-6),
        (("scene", "table", "size"), [1e3, 1e3, 1e3]),
    ],
)
def test_values_at_the_bounds_author_finite_stages(repo_root, path, value):
    """The largest accepted magnitudes build a stage whose every number is finite."""
    pytest.importorskip("pxr")
    from vlatwin.usd.scene_builder import build_scene

    data = yaml.safe_load((repo_root / "configs" / "tabletop.yaml").read_text())
    _set(data, path, value)
    config = config_from_dict(data, source="x.yaml", base_dir=repo_root / "configs")
    _check_consumers(config)
    stage = build_scene(config.scene)
    text = stage.GetRootLayer().ExportToString()
    assert not re.search(r"(?<![\w:])-?(inf|nan)\b", text)


def test_obj_vertices_must_be_finite_and_bounded(tmp_path):
    """An OBJ vertex of 1e400 (inf) or 1e308 is a one-line error naming file and line."""
    from vlatwin.usd.shapes import read_obj_vertices

    for bad in ("1e400", "1e308", "nan"):
        path = tmp_path / "rock.obj"
        path.write_text(f"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 {bad}\n")
        with pytest.raises(ConfigError, match=r"rock\.obj:4: bad vertex line") as info:
            read_obj_vertices(path)
        assert "\n" not in str(info.value)


def test_cli_turns_overflow_into_one_line(monkeypatch, capsys):
    """An OverflowError that slips past validation prints one `error:` line (exit 2), not a traceback."""
    import vlatwin.cli.scene_cmds as scene_cmds
    from vlatwin.cli.main import main

    def explode(args):
        return int(math.inf)

    monkeypatch.setattr(scene_cmds, "cmd_build", explode)
    assert main(["scene", "build", "whatever.yaml", "-o", "x.usda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: a number is out of range") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["scene", "build", "{cfg}", "-o", "{out}/x.usda"],
        ["generate", "{cfg}", "--out", "{out}/ds"],
        ["sim", "run", "{cfg}", "--steps", "10"],
    ],
)
def test_cli_rejects_huge_camera_position(tmp_path, repo_root, command):
    """A camera at x = 1e308 exits 2 with one `error:` line naming file and field, for every command that reads configs."""
    data = yaml.safe_load((repo_root / "configs" / "tabletop.yaml").read_text())
    data["scene"]["cameras"][0]["position"] = [1e308, 1.0, 1.55]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(data))
    args = [part.format(cfg=cfg, out=tmp_path) for part in command]
    result = subprocess.run(
        [sys.executable, "-m", "vlatwin.cli.main", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {cfg}: scene.cameras[0].position: "), lines[0]
    assert not (tmp_path / "x.usda").exists() and not (tmp_path / "ds").exists()


def test_cli_rejects_huge_reset_noise():
    """`sim run --reset-noise 1e308` is an argument error (exit 2), checked before anything is loaded."""
    result = subprocess.run(
        [sys.executable, "-m", "vlatwin.cli.main", "sim", "run", "nothing.yaml", "--reset-noise", "1e308"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--reset-noise: expected a number of radians (or meters) in [0, 10]" in result.stderr
