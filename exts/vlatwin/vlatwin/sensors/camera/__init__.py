"""Cameras: pinhole/fisheye models, Replicator-compatible annotators, the Newton renderer adapter."""
