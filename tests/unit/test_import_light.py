"""`import vlatwin` needs numpy only; heavy engines are imported lazily with an install hint."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import sys
    BLOCKED = {"pxr", "newton", "warp", "omni", "isaacsim", "carb", "scipy", "torch", "transformers", "websockets", "msgpack", "av", "PIL", "lerobot"}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Blocker())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_import_without_engines():
    """The package, its seams and pure-numpy modules import with pxr/newton/warp/Kit blocked."""
    result = _run(
        """
        import vlatwin
        import vlatwin.sim.base, vlatwin.sim.types, vlatwin.sim.factory, vlatwin.sim.newton
        import vlatwin.robots, vlatwin.utils.transforms, vlatwin.config.scene_cfg, vlatwin.cli.main
        import vlatwin.control, vlatwin.loop, vlatwin.loop.control_loop, vlatwin.sensors.base
        import vlatwin.policy.factory, vlatwin.policy.chunking, vlatwin.policy.hf, vlatwin.policy.tiny_vlm
        import vlatwin.policy.openpi, vlatwin.policy.openvla_rest, vlatwin.policy.serve, vlatwin.policy.lerobot
        import vlatwin.policy.observation, vlatwin.policy.normalization, vlatwin.policy.wire.msgpack_numpy
        import vlatwin.eval.runner, vlatwin.eval.stats, vlatwin.eval.video, vlatwin.eval.compare, vlatwin.report.eval_report
        import vlatwin.cli.eval_cmds, vlatwin.cli.serve_cmds
        from vlatwin.robots import get_builtin_robot
        assert get_builtin_robot("panda").forward_kinematics()
        heavy = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        assert not heavy, heavy
        print("ok", vlatwin.__version__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def test_missing_engine_gives_install_hint():
    """Using the Newton backend or USD authoring without their extras names the pip command."""
    result = _run(
        """
        from vlatwin.errors import MissingDependencyError
        from vlatwin.sim.factory import make_backend
        from vlatwin.usd.stage import new_stage
        for fn in (make_backend, new_stage):
            try:
                fn()
            except MissingDependencyError as exc:
                print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert "pip install 'vlatwin[newton]'" in lines[0]
    assert "pip install 'vlatwin[usd]'" in lines[1]
