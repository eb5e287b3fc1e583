"""``--ray``: frames and episodes sharded over a local Ray with 2 workers write what the plain run writes, also
after an actor dies mid-run and after the driver is killed (``--resume``)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
SMALL = REPO / "tests" / "data" / "small_sdg.yaml"
MAIN_JOB = REPO / "configs" / "tabletop.yaml"


def _digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the module; the runners join it instead of starting their own."""
    from vlatwin.scale.ray_pool import init_ray

    os.environ.setdefault("WARP_CACHE_PATH", str(Path.home() / ".cache" / "vlatwin" / "warp"))
    ray_mod, owned = init_ray("local", 2)
    yield ray_mod
    if owned:
        ray_mod.shutdown()


@pytest.fixture(scope="module")
def small_plain(tmp_path_factory):
    from vlatwin.sdg.pipeline import generate

    out = tmp_path_factory.mktemp("plain") / "small"
    generate(SMALL, out, progress=False)
    return out


def test_two_ray_workers_write_the_plain_files(local_ray, small_plain, tmp_path):
    from vlatwin.scale.generate import generate_ray

    out = tmp_path / "ray"
    result = generate_ray(SMALL, out, workers=2, progress=False)
    assert (result.frames_written, result.workers_restarted) == (4, 0)
    assert _digest_tree(out) == _digest_tree(small_plain)


def test_killed_actor_is_replaced_and_its_frames_rerun(local_ray, small_plain, tmp_path):
    from vlatwin.scale.generate import generate_ray

    out = tmp_path / "ray"
    marker = tmp_path / "died"
    # The actor that gets frame 2 exits like a killed process (once); its frames run on a new actor.
    result = generate_ray(SMALL, out, workers=2, progress=False, _fault={"index": 2, "once": str(marker)})
    assert marker.is_file() and result.workers_restarted == 1
    assert _digest_tree(out) == _digest_tree(small_plain)


def test_main_job_killed_ray_driver_resumes_to_the_plain_files(local_ray, tmp_path):
    """The README's main job (fewer frames): `--ray` CLI run killed with its Ray (kill -9), then --resume on Ray."""
    from vlatwin.scale.generate import generate_ray
    from vlatwin.sdg.pipeline import generate

    frames = 6
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vlatwin.cli.main", "generate", str(MAIN_JOB), "--out", str(out), "--frames", str(frames),
           "--ray", "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if manifest.exists() and manifest.read_text().count("\n") >= 1:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait()
    assert manifest.exists(), proc.stderr.read().decode()
    done_before = manifest.read_text().count("\n")
    assert 1 <= done_before < frames
    result = generate_ray(MAIN_JOB, out, frames=frames, resume=True, workers=2, progress=False)
    assert (result.frames_skipped, result.frames_written) == (done_before, frames - done_before)
    assert [json.loads(line)["frame"] for line in manifest.read_text().splitlines()] == list(range(frames))
    plain = tmp_path / "plain"
    generate(MAIN_JOB, plain, frames=frames, progress=False)
    assert _digest_tree(out) == _digest_tree(plain)


def _small_task_config(tmp_path: Path, task: str = "reach_ball") -> Path:
    """test_eval.py's task config with one 64x64 camera (tests/ is not on sys.path under --import-mode=importlib)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("vlatwin_test_eval", Path(__file__).with_name("test_eval.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.small_task_config(tmp_path, task)


SAME = ("task", "index", "init_state", "sim_seed", "success", "steps", "first_success_step", "policy_calls",
        "rejected_actions", "failure", "video", "thumbnail")


def test_eval_on_ray_equals_plain(local_ray, tmp_path):
    """Episodes on 2 Ray actors: the same outcomes, videos and thumbnails (byte for byte) as in one process."""
    pytest.importorskip("av")
    from vlatwin.eval.runner import EvalSettings, evaluate

    config = _small_task_config(tmp_path)
    plain = evaluate(config, tmp_path / "plain", EvalSettings(policy="expert", episodes=3), progress=False)
    on_ray = evaluate(config, tmp_path / "ray", EvalSettings(policy="expert", episodes=3, workers=2), progress=False, ray="local")
    a = {e["index"]: {k: e[k] for k in SAME} for e in plain.results["episodes"]}
    b = {e["index"]: {k: e[k] for k in SAME} for e in on_ray.results["episodes"]}
    assert a == b and sorted(b) == [0, 1, 2]
    assert on_ray.results["policy"] == plain.results["policy"]
    assert on_ray.results["tasks"]["reach_ball"]["success_rate"] == plain.results["tasks"]["reach_ball"]["success_rate"]
    for ep in a.values():
        for key in ("video", "thumbnail"):
            assert (tmp_path / "ray" / ep[key]).read_bytes() == (tmp_path / "plain" / ep[key]).read_bytes()
    assert (tmp_path / "ray" / "report.html").is_file()


def test_missing_ray_is_an_install_hint(monkeypatch):
    from vlatwin.errors import MissingDependencyError
    from vlatwin.scale import ray_pool

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r"vlatwin\[ray\]"):
        ray_pool.require_ray()


def test_record_episodes_on_ray_equal_in_process(local_ray, tmp_path):
    """`record --ray`'s actors: the same LeRobot frames and episode records as the worker in this process, in
    item order. (The LeRobot writer around them is the plain loop's; it needs a working pyarrow.)"""
    import numpy as np
    from vlatwin.config.loader import load_config
    from vlatwin.scale.record import EpisodeRecorder, iter_episodes_ray
    from vlatwin.usd.scene_builder import write_scene

    config = _small_task_config(tmp_path)
    stage = write_scene(load_config(config).scene, tmp_path / "scene.usda")
    runner = {"task": None, "policy": "expert", "action_space": "ee_delta_pose", "cameras": ["front"], "extras": (), "steps_cap": 25}
    local = EpisodeRecorder(str(config), str(stage), stage.read_bytes(), seed=0, **runner)
    try:
        expected = [local.run(i, 0) for i in range(3)]
    finally:
        local.close()
    got = list(iter_episodes_ray(config, stage, [0, 1, 2], 0, workers=2, address="local", **runner))
    assert [r.index for r in got] == [0, 1, 2]
    for want, have in zip(expected, got):
        assert have.record == want["record"]
        frames = have.outputs["frames"]
        assert len(frames) == len(want["frames"]) > 0
        for a, b in zip(want["frames"], frames):
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
