"""Synthetic data generation: randomize -> settle -> render -> annotate -> write."""
