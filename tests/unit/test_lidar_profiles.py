"""LIDAR profiles and scan patterns (numpy only)."""

import numpy as np
import pytest

from vlatwin.config.loader import config_from_dict
from vlatwin.errors import ConfigError
from vlatwin.sensors.lidar.pattern import make_pattern
from vlatwin.sensors.lidar.profiles import BUILTIN_PROFILES, resolve_profile
from vlatwin.sensors.lidar.sensor_model import returns


@pytest.mark.parametrize(
    ("name", "points", "channels", "rate"),
    [
        ("OS1-32", 32 * 1024, 32, 10),
        ("OS1-64", 64 * 1024, 64, 10),
        ("OS1-128", 128 * 2048, 128, 10),
        ("OS1-128-1024x20", 128 * 1024, 128, 20),
        ("VLP-16", 16 * 1800, 16, 10),
        ("HDL-64E", 64 * 2048, 64, 10),
        ("PandarXT32", 32 * 2000, 32, 10),
        ("Pandar64", 64 * 1800, 64, 10),
        ("Mid-360", 20_000, 1, 10),
        ("SolidState-120x25", 100 * 480, 100, 10),
    ],
)
def test_profile_points_per_scan(name, points, channels, rate):
    """Each profile fires its datasheet's beams per scan; the pattern has that many unit directions."""
    profile = resolve_profile(name)
    assert profile.points_per_scan == points and profile.channels == channels and profile.rate_hz == rate
    pattern = make_pattern(profile)
    assert len(pattern.directions_s) == points
    np.testing.assert_allclose(np.linalg.norm(pattern.directions_s, axis=1), 1.0, atol=1e-6)
    assert pattern.times.min() >= 0 and pattern.times.max() < profile.scan_time
    assert profile.source


def test_os1_128_rate_and_fov():
    """OS1-128 at 2048 x 10 Hz is 2.62 M points/s over a 42.2 deg vertical field of view."""
    profile = resolve_profile("OS1-128")
    assert profile.points_per_scan * profile.rate_hz == pytest.approx(2.62e6, rel=1e-3)
    el = np.rad2deg(np.arcsin(make_pattern(profile).directions_s[:, 2]))
    assert el.max() == pytest.approx(21.1, abs=1e-3) and el.min() == pytest.approx(-21.1, abs=1e-3)
    assert profile.isaac_config == "OS1" and profile.isaac_variant == "OS1_REV7_128ch10hz2048res"


def test_rotating_timestamps_follow_azimuth():
    """Column k of a rotating scan fires at k / columns of the scan time."""
    profile = resolve_profile("VLP-16")
    pattern = make_pattern(profile)
    col = pattern.columns
    np.testing.assert_allclose(pattern.times, col / profile.columns * profile.scan_time)
    azimuth = np.arctan2(pattern.directions_s[:, 1], pattern.directions_s[:, 0])
    assert azimuth[pattern.columns == 450][0] == pytest.approx(-np.pi / 2, abs=1e-6)  # a quarter turn, clockwise


def test_rosette_does_not_repeat():
    """Consecutive Mid-360 scans cover different directions and stay inside the vertical FOV."""
    profile = resolve_profile("Mid-360")
    a, b = make_pattern(profile, scan_index=0), make_pattern(profile, scan_index=1)
    assert not np.allclose(a.directions_s, b.directions_s)
    el = np.rad2deg(np.arcsin(a.directions_s[:, 2]))
    assert el.min() >= -7.0 - 1e-4 and el.max() <= 52.0 + 1e-4


def test_noise_statistics_match_sigma():
    """Range noise on 200k returns has the profile's sigma within 10 % and no bias."""
    profile = resolve_profile("OS1-64").model_copy(update={"range_sigma": 0.02})
    r = np.full(200_000, 5.0, dtype=np.float32)
    keep, measured, _ = returns(r, np.ones_like(r), np.full_like(r, 0.5), profile, np.random.default_rng(0))
    err = measured[keep] - 5.0
    assert err.std() == pytest.approx(0.02, rel=0.1)
    assert abs(err.mean()) < 1e-3


def test_dropout_rises_with_range_and_grazing():
    """More returns are lost far away and at grazing incidence than close and head-on."""
    profile = resolve_profile("OS1-64")
    rng = np.random.default_rng(1)
    n = 50_000
    near, _, _ = returns(np.full(n, 2.0), np.ones(n), np.full(n, 0.5), profile, rng)
    far, _, _ = returns(np.full(n, 110.0), np.ones(n), np.full(n, 0.5), profile, rng)
    grazing, _, _ = returns(np.full(n, 2.0), np.full(n, 0.1), np.full(n, 0.5), profile, rng)
    assert near.mean() > far.mean() + 0.1 and near.mean() > grazing.mean() + 0.1
    out_of_range, _, _ = returns(np.array([0.1, 130.0]), np.ones(2), np.ones(2), profile, None)
    assert not out_of_range.any()


def test_intensity_model():
    """Intensity scales with reflectivity and cos(incidence), falls off as 1/r^2 past 10 m."""
    profile = resolve_profile("OS1-64")
    _, _, i = returns(np.array([5.0, 5.0, 20.0]), np.array([1.0, 0.5, 1.0]), np.array([0.8, 0.8, 0.8]), profile, None)
    np.testing.assert_allclose(i, [0.8, 0.4, 0.8 * 0.25], rtol=1e-6)


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("OS9", "scene.lidars[0].profile: unknown lidar profile 'OS9'; known: HDL-64E"),
        ({"name": "x", "pattern": "rotating", "elevations_deg": []}, "scene.lidars[0].profile.elevations_deg: a rotating lidar needs at least one channel"),
        ({"name": "x", "pattern": "rotating", "elevations_deg": [0], "rate_hz": 0}, "scene.lidars[0].profile.rate_hz: Input should be greater than 0"),
        ({"name": "x", "pattern": "rotating", "elevations_deg": [0], "min_range": 5, "max_range": 2}, "scene.lidars[0].profile: min_range must be smaller than max_range"),
    ],
)
def test_bad_profiles_name_the_field(profile, expected):
    """Unknown names list the known ones; impossible profiles name the field."""
    with pytest.raises(ConfigError) as info:
        config_from_dict({"scene": {"lidars": [{"name": "l", "profile": profile, "position": [0, 0, 1]}]}}, source="c.yaml")
    assert str(info.value).startswith(f"c.yaml: {expected}"), str(info.value)


def test_all_builtin_profiles_are_valid():
    """Every shipped profile validates and has a positive beam count."""
    for profile in BUILTIN_PROFILES.values():
        assert profile.points_per_scan > 0 and profile.min_range < profile.max_range


def test_angular_jitter_has_configured_sigma():
    """Beam pointing jitter: angle between nominal and cast direction ~ Rayleigh with the configured sigma."""
    from vlatwin.sensors.lidar.sensor_model import jitter_directions

    dirs = make_pattern(resolve_profile("OS1-64")).directions_s
    jittered = jitter_directions(dirs, 0.1, np.random.default_rng(0))
    angle = np.degrees(np.arccos(np.clip(np.sum(dirs * jittered, axis=1), -1, 1)))
    # Two perpendicular N(0, sigma) components: mean angle = sigma * sqrt(pi / 2).
    assert angle.mean() == pytest.approx(0.1 * np.sqrt(np.pi / 2), rel=0.05)
