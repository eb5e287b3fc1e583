"""The `vlatwin` CLI and standalone scripts, run as real subprocesses."""

import subprocess
import sys

import pytest

from vlatwin.usd.check import check_stage


def run(*args, cwd=None, timeout=300):
    return subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, timeout=timeout)


def vlatwin(*args, cwd=None):
    return run(sys.executable, "-m", "vlatwin.cli.main", *args, cwd=cwd)


@pytest.mark.parametrize("command", [[], ["scene"], ["scene", "build"], ["scene", "check"], ["scene", "assets"], ["sim"], ["sim", "run"]])
def test_help_everywhere(command):
    """Every command answers --help with a description."""
    result = vlatwin(*command, "--help")
    assert result.returncode == 0
    assert "usage: vlatwin" in result.stdout
    assert len(result.stdout.splitlines()) > 4


def test_scene_build_and_check(tmp_path, repo_root):
    """build writes a valid stage and prints its physics summary; check agrees."""
    out = tmp_path / "tabletop.usda"
    result = vlatwin("scene", "build", str(repo_root / "configs" / "tabletop.yaml"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "result: OK" in result.stdout and "articulations: 1" in result.stdout
    assert check_stage(out).ok
    result = vlatwin("scene", "check", str(out), "--json")
    assert result.returncode == 0
    assert '"articulations": [\n    "/World/Robot"\n  ]' in result.stdout


def test_bad_config_is_one_line_exit_2(tmp_path):
    """A bad config prints one error line naming file and field, exit code 2, no traceback."""
    config = tmp_path / "bad.yaml"
    config.write_text("scene:\n  objects:\n    - {name: a, shape: box, size: [1, 2], position: [0, 0, 1]}\n")
    result = vlatwin("scene", "build", str(config), "-o", str(tmp_path / "x.usda"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {config}: scene.objects[0].size: expected 3 positive numbers"
    assert not (tmp_path / "x.usda").exists()


def test_bad_output_and_stage_paths(tmp_path, repo_root):
    """Output into a directory, wrong suffix, or a broken stage: one line each, exit 2."""
    config = str(repo_root / "configs" / "tabletop.yaml")
    for out, expected in ((tmp_path, "is a directory"), (tmp_path / "x.txt", "output must end in .usda")):
        result = vlatwin("scene", "build", config, "-o", str(out))
        assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr
    broken = tmp_path / "broken.usda"
    broken.write_text("#usda 1.0\n(\n")
    result = vlatwin("scene", "check", str(broken))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot open USD stage" in result.stderr


def test_assets_regenerate_into_folder(tmp_path, repo_root):
    """`scene assets` writes the robot asset and the default scene."""
    result = vlatwin("scene", "assets", "--out-dir", str(tmp_path), cwd=repo_root)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "panda.usda").is_file() and (tmp_path / "tabletop.usda").is_file()


def test_sim_run_reports_real_time_factor(repo_root):
    """`sim run` steps the default scene and prints steps/s and the real-time factor."""
    result = vlatwin("sim", "run", str(repo_root / "configs" / "tabletop.yaml"), "--steps", "300", "--motion", "sine")
    assert result.returncode == 0, result.stderr
    assert "stepped 300 steps (0.500 s simulated" in result.stdout
    assert "real-time factor" in result.stdout


def test_sim_run_bad_inputs():
    """Missing files and non-positive step counts are one-line errors."""
    result = vlatwin("sim", "run", "nope.usda")
    assert result.returncode == 2 and result.stderr.strip() == "error: nope.usda: USD file not found"
    result = vlatwin("sim", "run", "configs/tabletop.yaml", "--steps", "0")
    assert result.returncode == 2 and "--steps must be positive" in result.stderr


def test_standalone_scripts(tmp_path, repo_root):
    """standalone/build_scene.py and run_sim.py do the same job headless."""
    config = str(repo_root / "configs" / "tabletop.yaml")
    out = tmp_path / "s.usda"
    result = run(sys.executable, str(repo_root / "standalone" / "build_scene.py"), config, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "result: OK" in result.stdout
    result = run(sys.executable, str(repo_root / "standalone" / "run_sim.py"), str(out), "--num-steps", "120")
    assert result.returncode == 0, result.stderr
    assert "stepped 120 steps" in result.stdout and "real-time factor" in result.stdout
    result = run(sys.executable, str(repo_root / "standalone" / "run_sim.py"), config, "--backend", "isaacsim")
    assert result.returncode != 0 and "Isaac Sim's python" in result.stderr


def test_standalone_generate_dataset(tmp_path, repo_root):
    """standalone/generate_dataset.py writes a dataset on the Newton backend; isaacsim needs Isaac's python."""
    script = str(repo_root / "standalone" / "generate_dataset.py")
    small = str(repo_root / "tests" / "data" / "small_sdg.yaml")
    result = run(sys.executable, script, small, "--out", str(tmp_path / "ds"), "--frames", "1")
    assert result.returncode == 0, result.stderr
    assert "wrote 1 frames" in result.stdout
    assert (tmp_path / "ds" / "top" / "rgb_0000.png").is_file()
    result = run(sys.executable, script, small, "--out", str(tmp_path / "ds2"), "--backend", "isaacsim")
    assert result.returncode != 0 and "Isaac Sim's python" in result.stderr
