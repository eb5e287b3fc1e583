"""The Isaac backend and Replicator path inside Isaac Sim (needs Kit; skipped here).

Run with Isaac Sim's python:  ./python.sh -m pytest tests/isaacsim
"""

import pytest

pytest.importorskip("isaacsim")


def test_generate_on_isaac_matches_layout(tmp_path, repo_root):
    """Two frames on Replicator write the same file names as the Newton backend."""
    from isaacsim import SimulationApp

    app = SimulationApp({"headless": True, "extra_args": ["--/rtx-transient/stableIds/enabled=true"]})
    try:
        from vlatwin.sdg.pipeline import generate

        config = repo_root / "tests" / "data" / "small_sdg.yaml"
        generate(config, tmp_path / "isaac", frames=2, backend="isaacsim", progress=False)
        generate(config, tmp_path / "newton", frames=2, backend="newton", progress=False)
        isaac = sorted(p.relative_to(tmp_path / "isaac") for p in (tmp_path / "isaac").rglob("*") if p.is_file())
        newton = sorted(p.relative_to(tmp_path / "newton") for p in (tmp_path / "newton").rglob("*") if p.is_file())
        assert isaac == newton
    finally:
        app.close()
