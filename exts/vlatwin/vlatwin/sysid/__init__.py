"""System identification: fit the twin's physical parameters to a robot recording, and say how far to trust it."""
