"""The synchronized twin: clock sync, state estimation, delay compensation, divergence, safety, run logs."""
