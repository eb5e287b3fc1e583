"""The control loop: one clock that owns simulated time, sensors that only look, and the worker contract.

- :mod:`vlatwin.loop.scheduler`: sensor captures scheduled in physics steps (``capture``).
- :mod:`vlatwin.loop.control_loop`: physics rate, control rate (decimation), sensor rates, hooks for
  policy, controller, safety gate and recorders (:class:`ControlLoop`).
- :mod:`vlatwin.loop.worker`: the contract dataset frames and episodes share (:class:`Worker`).
"""

from vlatwin.loop.scheduler import CaptureRun, capture
from vlatwin.loop.worker import WorkResult, Worker

__all__ = ["CaptureRun", "WorkResult", "Worker", "capture"]
