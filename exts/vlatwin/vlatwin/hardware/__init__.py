"""The robot seam (LeRobot-like), the emulated robot, the network agent and its drivers."""
