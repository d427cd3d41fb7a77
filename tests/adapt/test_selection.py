"""Pseudo-label selection: the reference's curriculum, PPLO rounds, the pooled quantile rule."""

import numpy as np
import pytest

from animalpose.adapt.selection import SelectionSchedule, ccssl_keep_share, select_top_share


def test_ccssl_curriculum_matches_the_reference_epochs():
    shares = [ccssl_keep_share(e) for e in (0, 10, 20, 30, 40, 50)]
    assert shares == [0.2, 0.4, 0.6, 0.8, 0.8, 0.8]
    # In between, the reference's linear ramp p = 1 - 0.02 (epoch + 10).
    assert ccssl_keep_share(5) == pytest.approx(0.3)
    assert ccssl_keep_share(29) == pytest.approx(0.78)
    with pytest.raises(ValueError, match="epoch"):
        ccssl_keep_share(-1)


def test_schedules_by_epoch_and_by_round():
    ccssl = SelectionSchedule()
    assert [ccssl.keep_share(round_index=r, epoch=10 * r) for r in range(6)] == [
        0.2,
        0.4,
        0.6,
        0.8,
        0.8,
        0.8,
    ]
    pplo = SelectionSchedule(kind="pplo", shares=(0.3, 0.5, 1.0))
    assert [pplo.keep_share(round_index=r, epoch=0) for r in range(5)] == [0.3, 0.5, 1.0, 1.0, 1.0]
    assert pplo.keep_share(round_index=1, epoch=99) == 0.5  # epochs do not drive PPLO
    assert SelectionSchedule(kind="pplo").keep_share(round_index=7, epoch=0) == 0.8
    with pytest.raises(ValueError, match="unknown selection kind 'topk'"):
        SelectionSchedule(kind="topk")
    for bad in ((), (0.2, 0.0), (1.5,), (-0.1,)):
        with pytest.raises(ValueError):
            SelectionSchedule(kind="pplo", shares=bad)


def test_select_top_share_on_hand_made_confidences():
    conf = np.array([[0.9, 0.1, 0.5], [0.3, 0.7, 0.2], [0.8, 0.6, 0.4], [0.05, 0.95, 0.35]])
    # 12 values sorted: .05 .1 .2 .3 .35 .4 .5 .6 .7 .8 .9 .95; keep 0.25 -> p = 0.75,
    # element int(0.75 * 12) = 9 -> 0.8; keep > 0.8: 0.9 and 0.95.
    selected, threshold = select_top_share(conf, 0.25)
    assert threshold == 0.8
    np.testing.assert_array_equal(np.argwhere(selected), [[0, 0], [3, 1]])
    # keep 0.5 -> element int(0.5 * 12) = 6 -> 0.5; keep > 0.5: five values.
    selected, threshold = select_top_share(conf, 0.5)
    assert threshold == 0.5 and selected.sum() == 5 and (conf[selected] > 0.5).all()
    # A share of 1 keeps everything.
    selected, threshold = select_top_share(conf, 1.0)
    assert selected.all() and threshold < 0.05


def test_only_finite_confidences_count_and_pass():
    conf = np.array([[np.nan, 0.1, 0.2, 0.3], [0.4, np.inf, 0.5, -np.inf]])
    selected, threshold = select_top_share(conf, 0.4)
    # Finite: .1 .2 .3 .4 .5 (n = 5); p = 0.6 -> element 3 -> 0.4; keep > 0.4: only 0.5.
    assert threshold == 0.4
    np.testing.assert_array_equal(np.argwhere(selected), [[1, 2]])
    none, t = select_top_share(np.full((2, 3), np.nan), 0.5)
    assert not none.any() and np.isnan(t)
    with pytest.raises(ValueError, match="keep_share"):
        select_top_share(conf, 0.0)


def test_share_of_many_random_confidences_is_close_to_the_target():
    conf = np.random.default_rng(0).uniform(size=(1000, 18))
    for share in (0.2, 0.4, 0.6, 0.8):
        selected, _ = select_top_share(conf, share)
        # Distinct values: everything above the element at int(p n) passes, i.e. one short.
        assert selected.sum() == conf.size - round((1 - share) * conf.size) - 1


def test_ccssl_curriculum_is_keyed_by_round_whatever_the_round_length():
    """The comparison's short runs make a round every few epochs: by epoch they kept 20/24/28 %,
    by round (the default) they follow the reference's 20/40/60/80/80/80 %."""
    by_round = SelectionSchedule()
    assert by_round.curriculum_by == "round" and by_round.describe() == "ccssl by round"
    for round_every in (1, 2, 10):
        shares = [by_round.keep_share(round_index=r, epoch=round_every * r) for r in range(6)]
        assert shares == [0.2, 0.4, 0.6, 0.8, 0.8, 0.8], round_every
    by_epoch = SelectionSchedule(curriculum_by="epoch")
    assert by_epoch.describe() == "ccssl by epoch"
    shares = [by_epoch.keep_share(round_index=r, epoch=2 * r) for r in range(3)]
    assert shares == pytest.approx([0.2, 0.24, 0.28])
    # With the reference's 10-epoch rounds both keyings agree.
    assert [by_epoch.keep_share(round_index=r, epoch=10 * r) for r in range(6)] == [
        by_round.keep_share(round_index=r, epoch=10 * r) for r in range(6)
    ]
    assert SelectionSchedule(kind="pplo", shares=(0.3, 1.0)).describe() == "pplo 0.3/1"
    with pytest.raises(ValueError, match="unknown curriculum_by 'batch'"):
        SelectionSchedule(curriculum_by="batch")
