"""The default scene opens in Isaac Sim and PhysX parses the articulation (needs Kit; skipped here).

Run with Isaac Sim's python:  ./python.sh -m pytest tests/isaacsim
"""

import pytest

pytest.importorskip("isaacsim")


def test_tabletop_articulation_in_physx(repo_root, kit_app):
    """PhysX sees 9 DoFs at the authored home pose in the shipped tabletop stage."""
    if True:
        import numpy as np
        import omni.usd
        from isaacsim.core.api import World
        from isaacsim.core.prims import SingleArticulation

        from vlatwin.robots import get_builtin_robot

        omni.usd.get_context().open_stage(str(repo_root / "usd_assets" / "tabletop.usda"))
        world = World(stage_units_in_meters=1.0)
        robot = SingleArticulation("/World/Robot")
        world.reset()
        assert robot.num_dof == 9
        np.testing.assert_allclose(robot.get_joint_positions(), get_builtin_robot("panda").home_positions, atol=1e-3)
