"""Light units (pure numpy): UsdLux photometry, camera exposure, Cycles strengths."""

import numpy as np
import pytest

from vlatwin.sensors.camera import photometry as ph

pytestmark = pytest.mark.unit


def test_ev100_of_a_camera_setting_and_its_white_point():
    # f/5.6 at 1/60 s is EV100 ~10.9 (the photographic table rounds to 11); ISO 200 is one stop more sensitive.
    assert ph.ev100_from_camera(5.6, 1 / 60) == pytest.approx(np.log2(5.6**2 * 60))
    assert ph.ev100_from_camera(5.6, 1 / 60, iso=200) == pytest.approx(ph.ev100_from_camera(5.6, 1 / 60) - 1)
    # One EV more exposure value (less exposure): twice the luminance to reach white.
    assert ph.saturation_luminance(12.0) / ph.saturation_luminance(11.0) == pytest.approx(2.0)
    assert ph.saturation_luminance(0.0) == pytest.approx(78 / (100 * 0.65))


def test_distant_light_illuminance_normalized_or_from_the_sun_disc():
    assert ph.distant_illuminance(3000.0, 1.0, normalize=True) == 3000.0
    # Unnormalized: luminance times the disc's solid angle; the small-angle form is L * pi * (theta / 2)^2.
    theta = np.deg2rad(0.53)
    assert ph.distant_illuminance(1.6e9, 0.53, normalize=False) == pytest.approx(1.6e9 * np.pi * (theta / 2) ** 2, rel=1e-4)
    # The sun (1.6e9 nit over 0.53 deg) gives about 100 klux: the textbook value.
    assert 8e4 < ph.distant_illuminance(1.6e9, 0.53, normalize=False) < 1.3e5


def test_cycles_strengths_reproduce_the_closed_forms():
    l_sat = ph.saturation_luminance(10.0)
    # Sun: a white card facing it reads S / pi in Cycles; that must equal E / (pi L_sat).
    assert ph.cycles_sun_strength(1000.0, l_sat) / np.pi == pytest.approx(ph.lambert_pixel(1.0, 1000.0, l_sat))
    # Point light of radius r: radiance P / (4 pi^2 r^2) must equal L / L_sat.
    P = ph.cycles_point_power(5000.0, 0.2, l_sat)
    assert P / (4 * np.pi**2 * 0.2**2) == pytest.approx(5000.0 / l_sat)
    # Area light: radiance P / (pi A).
    P = ph.cycles_area_power(5000.0, 0.5, l_sat)
    assert P / (np.pi * 0.5) == pytest.approx(5000.0 / l_sat)
    assert ph.cycles_background_strength(500.0, l_sat) == pytest.approx(500.0 / l_sat)


def test_emitter_areas_and_sphere_illuminance():
    assert ph.emitter_area("sphere", radius=0.5) == pytest.approx(np.pi)
    assert ph.emitter_area("rect", width=2.0, height=0.5) == pytest.approx(1.0)
    assert ph.emitter_area("disk", radius=1.0) == pytest.approx(np.pi)
    assert ph.emitter_area("cylinder", radius=0.1, width=2.0) == pytest.approx(2 * np.pi * 0.1 * 2.0)
    # Far away a sphere is a point source of intensity L * pi r^2: E = I / d^2.
    assert ph.sphere_illuminance(1000.0, 0.1, 10.0) == pytest.approx(1000.0 * np.pi * 0.01 / 100.0)


def test_srgb_encoding_matches_the_standard():
    x = np.array([0.0, 0.0031308, 0.18, 0.5, 1.0, 2.0])
    y = ph.srgb_encode(x)
    assert y[0] == 0.0 and y[-1] == pytest.approx(1.0) and y[-2] == pytest.approx(1.0)  # clipped above 1
    assert y[2] == pytest.approx(0.4613561, abs=1e-6)  # 18 % grey -> 118/255
    assert np.all(np.diff(y[:-1]) > 0)
    from vlatwin.sensors.camera.realism import srgb_to_linear

    u8 = np.round(y[:-1] * 255).astype(np.uint8)
    assert np.allclose(srgb_to_linear(u8), x[:-1], rtol=0.01, atol=1e-3)  # 8-bit steps
