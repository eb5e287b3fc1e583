"""One Kit app for the whole tests/isaacsim session (Kit is one app per process).

The app is made with vlatwin's launch config (``fast_shutdown=False``): with Isaac's default
``fast_shutdown=True``, the first ``SimulationApp.close()`` ended the pytest process after the first test.
"""

import pytest


@pytest.fixture(scope="session")
def kit_app():
    pytest.importorskip("isaacsim")
    from isaacsim import SimulationApp

    from vlatwin.utils.app_launcher import launch_config

    app = SimulationApp(launch_config(headless=True))
    yield app
    app.close()
