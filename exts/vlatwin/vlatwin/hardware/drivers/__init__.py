"""Drivers a ``vlatwin agent`` wraps: each is a :class:`~vlatwin.hardware.base.Robot` over a vendor API.

* :mod:`~vlatwin.hardware.drivers.lerobot`: any LeRobot ``Robot`` object (SO-100/101, Koch, ...).
* :mod:`~vlatwin.hardware.drivers.franka`: a Franka arm through ``franky`` (franky-control), untested here.

The emulated robot (:mod:`vlatwin.hardware.emulated`) serves as a driver too. Vendor packages are imported
only when a driver is built.
"""

from __future__ import annotations

__all__ = ["FrankyDriver", "LeRobotDriver"]


def __getattr__(name: str):
    if name == "LeRobotDriver":
        from vlatwin.hardware.drivers.lerobot import LeRobotDriver

        return LeRobotDriver
    if name == "FrankyDriver":
        from vlatwin.hardware.drivers.franka import FrankyDriver

        return FrankyDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
