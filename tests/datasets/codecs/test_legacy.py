"""The reference's target cells and draw_labelmap placement (datasets/codecs/legacy.py).

Expected values come from a slow restatement of the reference's rules, written here from its
description (docs/reference_compat.md §8), and from hand-worked cases."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from animalpose.datasets.codecs.legacy import (
    LegacyHeatmap,
    legacy_cell_to_input,
    legacy_heatmap_cells,
)


@pytest.fixture
def codec():
    return LegacyHeatmap((256, 256), (64, 64), sigma=1.0)


def _exact_cell(x: float, c: float, scale: float, res: int = 64) -> int:
    """trunc(res * (x - c) / (200 s) + res / 2) in exact rationals, with the reference's
    dtypes: point and centre rounded to float32, scale kept as given (float64)."""
    x32, c32 = Fraction(float(np.float32(x))), Fraction(float(np.float32(c)))
    value = res * (x32 - c32) / (200 * Fraction(scale)) + Fraction(res, 2)
    return math.trunc(value)


def _slow_draw(cell: tuple[int, int], size: int = 64) -> tuple[np.ndarray, int]:
    """draw_labelmap for sigma 1 restated pixel by pixel: the 7x7 patch with its corner at
    (cell - 3), cut to the map; weight 0 when the corner test (ul >= size or ul + 7 < 0 on an
    axis) says the patch misses the map."""
    ul = [cell[0] - 3, cell[1] - 3]
    br = [cell[0] + 4, cell[1] + 4]
    out = np.zeros((size, size), dtype=np.float32)
    if ul[0] >= size or ul[1] >= size or br[0] < 0 or br[1] < 0:
        return out, 0
    for y in range(size):
        for x in range(size):
            gx, gy = x - ul[0], y - ul[1]
            if 0 <= gx < 7 and 0 <= gy < 7:
                out[y, x] = np.float32(math.exp(-((gx - 3) ** 2 + (gy - 3) ** 2) / 2.0))
    return out, 1


def test_cells_truncate_toward_zero_and_use_a_float32_centre():
    # c = 100, s = 1: value = 0.32 (x - 100) + 32; x = 0 -> 0.0, x = -1 -> -0.32 -> 0 (not -1).
    cells = legacy_heatmap_cells(
        np.array([[0.0, 100.0], [-1.0, 100.0], [-4.0, 99.0]]), np.array([100.0, 100.0]), 1.0, 64
    )
    assert cells.tolist() == [[0, 32], [0, 32], [-1, 31]]
    # 1000.04 is 1000.0399780... as float32; with s = 0.01 (h = 2, gain 32, all exact in float64)
    # the point c32 - 31/32 = 999.0712280... sits at exactly 1.0 with the float32 centre (cell 1)
    # but at 1 - 32 * 2.2e-5 = 0.99930 with the float64 one (cell 0).
    c, x = 1000.04, 999.0712280273438
    assert float(np.float32(x)) == x
    assert _exact_cell(x, c, 0.01) == 1
    assert math.trunc(32 * (Fraction(x) - Fraction(c)) + 32) == 0
    got = legacy_heatmap_cells(np.array([[x, 0.0]]), np.array([c, 0.0]), 0.01, 64)
    assert got[0, 0] == 1
    rng = np.random.default_rng(0)
    for _ in range(300):
        c = rng.uniform(0, 640)
        s = float(rng.uniform(0.2, 3.0))
        x = float(np.float32(rng.uniform(-50, 700)))
        exact = _exact_cell(x, c, s)
        value = 64 * (Fraction(x) - Fraction(float(np.float32(c)))) / (200 * Fraction(s)) + 32
        if abs(value - round(value)) < Fraction(1, 10**9):
            continue  # float64 rounding decides these; the hand cases above cover the rule
        got = legacy_heatmap_cells(np.array([[x, x]]), np.array([c, c]), s, 64)
        assert got.tolist() == [[exact, exact]]


@pytest.mark.parametrize(
    "cell",
    [(32, 32), (0, 10), (-3, 10), (-4, 10), (-5, 10), (63, 20), (66, 20), (67, 20), (2, -4)],
)
def test_encode_matches_draw_labelmap_at_the_border(codec, cell):
    """-3 and 66 leave one column of the patch; -4 leaves none but keeps weight 1 (the corner
    test passes); -5 and 67 fail the corner test: weight 0."""
    u = legacy_cell_to_input(np.array([cell]), 4.0).astype(np.float32)
    heatmaps, weights = codec.encode(u, np.ones(1, np.float32))
    expected, weight = _slow_draw(cell)
    np.testing.assert_array_equal(heatmaps[0], expected)
    assert weights[0] == weight


def test_not_drawn_keeps_its_weight_and_weight_zero_keeps_its_map(codec):
    kp = np.array([[np.nan, np.nan], [100.0, 60.0], [np.nan, np.nan]], np.float32)
    heatmaps, weights = codec.encode(kp, np.array([1.0, 0.0, 0.0], np.float32))
    assert weights.tolist() == [1.0, 0.0, 0.0]
    assert not heatmaps[0].any() and not heatmaps[2].any()
    assert heatmaps[1, 15, 25] == 1.0  # trunc(100.5 / 4) = 25, trunc(60.5 / 4) = 15


def test_unsnapped_points_truncate_and_batches_match_numpy(codec):
    kp = np.array([[-2.0, 5.0], [-6.0, 5.0], [254.9, 3.3]], np.float32)
    heatmaps, _ = codec.encode(kp, np.ones(3, np.float32))
    # trunc(-1.5 / 4) = 0, trunc(-5.5 / 4) = -1, trunc(255.4 / 4) = 63; y: trunc(5.5/4) = 1.
    assert np.unravel_index(heatmaps[0].argmax(), (64, 64)) == (1, 0)
    np.testing.assert_array_equal(heatmaps[1], _slow_draw((-1, 1))[0])
    np.testing.assert_array_equal(heatmaps[2], _slow_draw((63, 0))[0])
    batch, w = codec.encode(torch.from_numpy(np.stack([kp, kp])), torch.ones(2, 3))
    np.testing.assert_array_equal(batch[1].numpy(), heatmaps)
    assert w.shape == (2, 3)
