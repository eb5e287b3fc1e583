"""Integration fixtures: a loaded Newton backend on the default scene."""

import pytest


@pytest.fixture()
def newton_sim(tabletop_usda):
    """A fresh Newton backend on the default scene (kernels come from the warm cache)."""
    from vlatwin.sim.newton import SimBackendNewton

    sim = SimBackendNewton(device="cpu")
    sim.load(tabletop_usda)
    yield sim
    sim.close()
