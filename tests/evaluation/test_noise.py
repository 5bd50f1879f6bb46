"""Spread: the mean, sample sd and standard error of a score over repeats."""

from __future__ import annotations

import math
import statistics

import pytest

from autoresearch.evaluation.noise import spread


def test_mean_sd_and_standard_error_over_repeats():
    # The starter's search composites under seeds 7–11 (issue "Keeps you can trust").
    values = (4.03, 3.62, 3.39, 3.44, 2.85)
    s = spread(values)
    assert s.n == 5 and s.mean == pytest.approx(3.466)
    assert s.sd == pytest.approx(statistics.stdev(values)) and s.sd == pytest.approx(0.4265, abs=1e-4)
    assert s.se == pytest.approx(s.sd / math.sqrt(5))
    assert s.text() == "3.47 ± 0.43"
    assert s.to_json() == {"values": list(values), "mean": s.mean, "sd": s.sd, "se": s.se, "n": 5}


def test_one_repeat_has_no_spread():
    s = spread([4.0])
    assert (s.mean, s.sd, s.se, s.text()) == (4.0, None, None, "4.00")


def test_no_values_is_an_error():
    with pytest.raises(ValueError):
        spread([])
