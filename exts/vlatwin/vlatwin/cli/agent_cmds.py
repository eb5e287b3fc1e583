"""``vlatwin agent``: run a network robot agent next to the robot (a driver behind ZMQ + msgpack)."""

from __future__ import annotations

import argparse
import math
import os
import signal
from pathlib import Path

EPILOG = """examples:
  # the emulated robot (a second Newton instance with hidden mismatch) for a task, with a lossy link
  vlatwin agent --driver emulated --config configs/tasks/reach_ball.yaml --emulate "latency_ms=20&loss=0.01"
  # ... with camera frames at 4 Hz (rendered by the emulated robot), for image fidelity in `vlatwin report`
  vlatwin agent --driver emulated --config configs/tasks/reach_ball.yaml --emulate "latency_ms=20&camera_hz=4"
  # an SO-101 through LeRobot (its cameras' frames go with the states): my_robots.py defines make_robot() -> SO101Follower(SO101FollowerConfig(...))
  vlatwin agent --driver lerobot --lerobot-robot my_robots.py:make_robot
  # a Franka through franky (pip install franky-control), reachable from the twin's machine
  VLATWIN_AGENT_TOKEN=s3cret vlatwin agent --driver franka --franka-host 172.16.0.2 --bind tcp://0.0.0.0:5555
  # the twin side
  vlatwin twin run configs/tasks/reach_ball.yaml --policy expert --robot "tcp://127.0.0.1:5555?token=s3cret"

ports: control (hello, ping, e-stop) on PORT (ROUTER), commands on PORT+1 (PULL, conflated: latest wins),
states on PORT+2 (PUB, with each state's camera frames / LIDAR clouds just before it). Non-loopback binds need a token; states are not encrypted (use a trusted network
or an SSH tunnel).
"""


def register(groups) -> None:
    agent = groups.add_parser(
        "agent",
        help="serve a robot (emulated, LeRobot, Franka) to the twin over the network",
        description="Run next to the robot: wraps a driver, streams its joint states (up to 1 kHz) and applies the "
        "twin's latest joint-position command (expired or stale commands are dropped). Binds 127.0.0.1 unless --bind "
        "says otherwise, and then requires a token. Ctrl-C / SIGTERM stop it cleanly.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    agent.add_argument("--driver", required=True, help="emulated | lerobot | franka | module:factory (a callable returning a vlatwin Robot)")
    agent.add_argument("--bind", default="tcp://127.0.0.1:5555", help="control address tcp://HOST:PORT; PORT+1, PORT+2 are used too (default: %(default)s)")
    agent.add_argument("--token", default=None, help="shared secret every client message must carry (default: env VLATWIN_AGENT_TOKEN; none)")
    agent.add_argument("--rate", type=float, default=500.0, help="state stream rate [Hz], at most 1000 (default: %(default)s)")
    agent.add_argument(
        "--sensor-hz", type=float, default=10.0,
        help="forward the driver's camera frames and LIDAR clouds at up to this rate per sensor [Hz], each just before "
             "the state of its instant on the state socket; 0: none (default: %(default)s)",
    )
    agent.add_argument("--config", type=Path, default=None, help="emulated: the task config whose scene the emulated robot runs")
    agent.add_argument("--emulate", default="", help='emulated: emulation options, e.g. "latency_ms=20&loss=0.01"')
    agent.add_argument("--seed", type=int, default=0, help="emulated: seed of mismatch, noise and link (default: %(default)s)")
    agent.add_argument(
        "--init-state", type=int, default=0,
        help="emulated: the task's initial state the robot starts from (arm and objects), as `vlatwin twin run "
             "--init-state` (default: %(default)s)",
    )
    agent.add_argument("--lerobot-robot", default=None, help="lerobot: module:factory or file.py:factory returning a LeRobot Robot")
    agent.add_argument("--lerobot-units", choices=("degrees", "raw"), default="degrees", help="lerobot: arm joint units on the LeRobot side (default: %(default)s -> rad)")
    agent.add_argument("--lerobot-gripper-range", default="0,1", help="lerobot: twin gripper values at LeRobot 0 and 100 (default: %(default)s)")
    agent.add_argument("--franka-host", default=None, help="franka: the robot's FCI address (e.g. 172.16.0.2)")
    agent.add_argument("--franka-no-gripper", action="store_true", help="franka: arm only (no Franka Hand)")
    agent.add_argument("--franka-dynamics", type=float, default=0.1, help="franka: franky relative_dynamics_factor (default: %(default)s)")
    agent.set_defaults(func=cmd_agent)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _make_driver(args: argparse.Namespace):
    """(driver, cleanup) for ``--driver``."""
    from vlatwin.errors import VlatwinError

    kind = args.driver
    if kind == "emulated":
        if args.config is None:
            raise VlatwinError("--driver emulated needs --config TASK.yaml (the scene the emulated robot runs)")
        from vlatwin.eval.setup import load_task_setup
        from vlatwin.hardware.factory import make_robot

        from vlatwin.tasks.initial_states import task_initial_states

        setup = load_task_setup(args.config, seed=args.seed)
        spec = "emulated" + (f"?{args.emulate.lstrip('?')}" if args.emulate else "")
        try:
            # The twin resets to the task's initial state; the robot starts there too (objects included), or the
            # two scenes differ before anything moves.
            states = task_initial_states(setup.task)
            robot = make_robot(spec, stage_path=setup.stage_path, physics=setup.physics, seed=args.seed,
                               initial_state=states[args.init_state % len(states)])
        except BaseException:
            setup.close()
            raise
        return robot, setup.close
    if kind == "lerobot":
        if not args.lerobot_robot:
            raise VlatwinError("--driver lerobot needs --lerobot-robot module:factory (a callable returning a LeRobot Robot)")
        from vlatwin.hardware.drivers.lerobot import LeRobotDriver
        from vlatwin.policy.factory import _load

        try:
            lo, hi = (float(v) for v in args.lerobot_gripper_range.split(","))
        except ValueError:
            raise VlatwinError(f"--lerobot-gripper-range must be LO,HI, got {args.lerobot_gripper_range!r}") from None
        robot = _load(args.lerobot_robot, "--lerobot-robot")()
        return LeRobotDriver(robot, degrees=args.lerobot_units == "degrees", gripper_range=(lo, hi)), None
    if kind == "franka":
        if not args.franka_host:
            raise VlatwinError("--driver franka needs --franka-host ADDRESS (the robot's FCI address)")
        from vlatwin.hardware.drivers.franka import FrankyDriver

        return FrankyDriver(args.franka_host, gripper=not args.franka_no_gripper, dynamics_factor=args.franka_dynamics), None
    if ":" in kind:
        from vlatwin.hardware.base import Robot
        from vlatwin.policy.factory import _load

        robot = _load(kind, "--driver")()
        if not isinstance(robot, Robot):
            raise VlatwinError(f"--driver {kind!r} returned {type(robot).__name__}, not a vlatwin.hardware.base.Robot")
        return robot, None
    raise VlatwinError(f"unknown --driver {kind!r}; use emulated, lerobot, franka or module:factory")


def cmd_agent(args: argparse.Namespace) -> int:
    from vlatwin.errors import VlatwinError
    from vlatwin.hardware.agent import RobotAgent, is_loopback, parse_tcp_address

    token = args.token if args.token is not None else os.environ.get("VLATWIN_AGENT_TOKEN") or None
    host, _ = parse_tcp_address(args.bind)
    if not is_loopback(host) and not token:  # refuse before touching the robot
        raise VlatwinError(
            f"refusing to bind the robot agent to {host} without a token; pass --token SECRET (or set VLATWIN_AGENT_TOKEN), "
            "or bind 127.0.0.1 and tunnel (ssh -L)"
        )
    # Checked before the robot loads (the agent checks them too, after).
    if not (math.isfinite(args.rate) and 0 < args.rate <= 1000):
        raise VlatwinError(f"--rate {args.rate:g} must be in (0, 1000] Hz")
    if not (math.isfinite(args.sensor_hz) and args.sensor_hz >= 0):
        raise VlatwinError(f"--sensor-hz {args.sensor_hz:g} must be >= 0 Hz (0: no camera frames or clouds)")
    driver, cleanup = _make_driver(args)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # `kill` / `docker stop` stop it cleanly too
    try:
        agent = RobotAgent(driver, bind=args.bind, token=token, state_rate_hz=args.rate, sensor_hz=args.sensor_hz)
        driver.connect()  # here, not in the agent: the realtime thread must stop before the driver disconnects
        address = agent.bind()
        start_realtime = getattr(driver, "start_realtime", None)
        if callable(start_realtime):
            start_realtime()
        auth = " with token" if token else ""
        print(
            f"robot agent for {driver.name} ({len(driver.joint_names)} joints) on {address}{auth}; commands on port "
            f"{agent.ports['command']}, states on port {agent.ports['state']} at {args.rate:g} Hz (Ctrl-C stops)",
            flush=True,
        )
        try:
            agent.serve_forever()
        except KeyboardInterrupt:
            agent.stop()
            print("stopped", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_realtime = getattr(driver, "stop_realtime", None)
        if callable(stop_realtime):
            stop_realtime()
        if driver.is_connected:
            driver.disconnect()
        if cleanup is not None:
            cleanup()
    return 0
