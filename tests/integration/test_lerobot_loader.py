"""LeRobot's own loader opens a `vlatwin record` dataset (runs where lerobot is installed; skipped elsewhere).

Verified on this project's machine with lerobot 0.4.4 (installed with --no-deps next to torch 2.13 CPU):
metadata, episodes, stats and every parquet row load through ``LeRobotDatasetMetadata`` and
``LeRobotDataset``. Video decoding through LeRobot needs a torchvision build matching the installed torch;
where there is none, a stand-in module lets the dataset module import (videos are checked with PyAV in
``test_record.py``).
"""

import subprocess
import sys
import types
from pathlib import Path

import pytest

lerobot = pytest.importorskip("lerobot")
TASK = Path(__file__).resolve().parents[2] / "configs" / "tasks" / "pick_red_cube.yaml"


def _import_dataset_module():
    try:
        import torchvision  # noqa: F401
    except Exception:  # no build for this torch: only training-time transforms need it
        import importlib.machinery

        stub = types.ModuleType("torchvision")
        stub.__spec__ = importlib.machinery.ModuleSpec("torchvision", None)
        stub.transforms = types.SimpleNamespace(v2=types.SimpleNamespace())
        sys.modules["torchvision"] = stub
        sys.modules["torchvision.transforms"] = stub.transforms
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

    return LeRobotDataset, LeRobotDatasetMetadata


def test_lerobot_opens_a_recorded_dataset(tmp_path):
    out = tmp_path / "pick"
    subprocess.run(
        [sys.executable, "-m", "vlatwin.cli.main", "record", str(TASK), "--episodes", "2", "--max-steps", "12",
         "--keep-failed", "--policy", "random", "--out", str(out), "--no-progress"],
        check=True, capture_output=True,
    )
    LeRobotDataset, LeRobotDatasetMetadata = _import_dataset_module()
    meta = LeRobotDatasetMetadata("local/pick", root=out)
    assert meta.total_episodes == 2 and meta.total_frames == 24 and meta.fps == 20
    assert list(meta.tasks.index) == ["pick up the red cube"]
    assert meta.video_keys == ["observation.images.front", "observation.images.top"]
    assert meta.episodes[1]["dataset_from_index"] == 12 and meta.episodes[1]["length"] == 12
    ds = LeRobotDataset("local/pick", root=out)
    assert len(ds) == 24 and ds.num_episodes == 2
    row = ds.hf_dataset[15]
    assert int(row["episode_index"]) == 1 and int(row["frame_index"]) == 3 and tuple(row["action"].shape) == (7,)
