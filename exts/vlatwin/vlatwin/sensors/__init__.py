"""Sensors. Sensor math (projection, annotators, noise) is pure numpy; engine adapters only fetch buffers."""
