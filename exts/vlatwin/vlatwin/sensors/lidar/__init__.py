"""LIDAR: scan patterns as data (real sensor profiles), per-ray sensor model in numpy, Newton ray casting."""
