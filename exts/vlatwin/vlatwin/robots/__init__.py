"""Built-in robot descriptions (pure numpy kinematics; no USD or engine imports)."""

from vlatwin.robots.description import JointSpec, LinkSpec, RobotDescription, ShapeSpec

BUILTIN_ROBOTS = ("panda",)


def get_builtin_robot(name: str) -> RobotDescription:
    """Return the description of a built-in robot by name (``panda``)."""
    if name == "panda":
        from vlatwin.robots.panda import make_panda

        return make_panda()
    raise KeyError(f"unknown built-in robot {name!r}; known: {', '.join(BUILTIN_ROBOTS)}")


__all__ = ["BUILTIN_ROBOTS", "JointSpec", "LinkSpec", "RobotDescription", "ShapeSpec", "get_builtin_robot"]
