"""Plain-text actions from general VLMs (pure python): lists, name=value pairs, surrounding words, bad answers."""

from __future__ import annotations

import numpy as np
import pytest
from vlatwin.errors import VlatwinError
from vlatwin.policy.text_actions import parse_action_text

EXPECTED = [0.01, -0.02, 0.0, 0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "text",
    [
        "[0.01, -0.02, 0.0, 0, 0, 0, 1]",
        "[ 0.01 , -0.02 , 0.0 , 0 , 0 , 0 , 1 ]",
        "(0.01 -0.02 0.0 0 0 0 1)",
        "dx=0.01 dy=-0.02 dz=0.0 droll=0 dpitch=0 dyaw=0 gripper=1",
        "dx: 0.01, dy: -0.02, dz: 0, droll: 0, dpitch: 0, dyaw: 0, gripper: 1.",
        "Sure! In step 3 the robot should do [0.01, -0.02, 0.0, 0, 0, 0, 1] to reach it.",
        "1e-2 -2E-2 0 0 0 +0 1.0",
    ],
)
def test_parses_common_answer_shapes(text):
    """Lists, pairs (names with digits are not counted) and text around them give the 7 numbers."""
    np.testing.assert_allclose(parse_action_text(text, 7), EXPECTED)


def test_names_with_digits_are_not_numbers():
    """j1=0.5 j2=-0.5 reads as two numbers, not four."""
    np.testing.assert_allclose(parse_action_text("j1=0.5 j2=-0.5", 2), [0.5, -0.5])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[0.01, 0.02, 0.03]", "expected 7 numbers .* found 3"),
        ("I cannot see the robot.", "found 0"),
        ("[nan, 0, 0, 0, 0, 0, 1]", "NaN/Inf"),
        ("dx=inf dy=0 dz=0 droll=0 dpitch=0 dyaw=0 gripper=1", "NaN/Inf"),
        ("1 2 3 4 5 6 7 8", "found 8"),
    ],
)
def test_rejects_wrong_counts_and_non_finite(text, match):
    """Wrong counts and NaN/Inf are one-line errors quoting the answer."""
    with pytest.raises(VlatwinError, match=match) as err:
        parse_action_text(text, 7)
    assert "\n" not in str(err.value)


def test_long_answers_are_shortened_in_the_error():
    """A multi-line answer is quoted on one line, cut at 80 characters."""
    with pytest.raises(VlatwinError) as err:
        parse_action_text("word\n" * 100, 7)
    assert "\n" not in str(err.value) and "..." in str(err.value)
