"""Metrics on hand-made arrays whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradcam_core import metrics


def test_box_iou_hand_computed():
    # [0,0,2,2] vs [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7
    assert metrics.box_iou([[0, 0, 2, 2]], [[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]]).tolist() == [
        [1 / 7, 1.0, 0.0]
    ]


def test_largest_segment_box_picks_largest_connected_segment_not_largest_rectangle():
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = mask[1, 1] = True  # segment A: 2 pixels, 8-connected diagonally
    mask[2:4, 3] = mask[4, 4] = True  # segment B: (2,3), (3,3), (4,4) = 3 pixels: x in [3, 5), y in [2, 5)
    assert metrics.largest_segment_box(mask).tolist() == [3, 2, 5, 5]
    assert metrics.largest_segment_box(np.zeros((3, 3), bool)) is None


def test_threshold_box_hand_made_5x5_map():
    heatmap = np.array(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.9, 1.0, 0.0, 0.0],
            [0.0, 0.8, 0.2, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.3],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    # at 0.15 x max: {(1,1),(1,2),(2,1),(2,2)} plus the lone 0.3 at (3,4); the 2x2 block wins
    assert metrics.threshold_box(heatmap, 0.15).tolist() == [1, 1, 3, 3]
    # at 0.85 x max: (1,1) and (1,2) only
    assert metrics.threshold_box(heatmap, 0.85).tolist() == [1, 1, 3, 2]
    assert metrics.threshold_box(np.zeros((4, 4)), 0.15) is None
    with pytest.raises(ValueError, match="threshold"):
        metrics.threshold_box(heatmap, 0.0)


def test_localization_correct_needs_class_and_iou():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    assert metrics.localization_correct(3, [21, 21, 30, 30], 3, gt)  # IoU 81/100 with the 2nd box
    assert not metrics.localization_correct(4, [21, 21, 30, 30], 3, gt)  # wrong class
    assert not metrics.localization_correct(3, [0, 0, 10, 4], 3, gt)  # IoU 0.4
    assert metrics.localization_correct(3, [0, 0, 10, 5], 3, gt)  # IoU exactly 0.5
    assert not metrics.localization_correct(3, None, 3, gt)


def test_pointing_hit_with_tolerance():
    heatmap = np.zeros((40, 40))
    heatmap[5, 30] = 1.0  # peak centre (30.5, 5.5)
    box = [[0, 0, 10, 10]]
    # distance from (30.5, 5.5) to the box: 20.5 in x
    assert not metrics.pointing_hit(heatmap, box, tolerance=15)
    assert metrics.pointing_hit(heatmap, box, tolerance=21)
    assert metrics.pointing_hit(heatmap, [[25, 0, 35, 10]], tolerance=0)


def test_class_accuracies_by_hand():
    # the pointing game's two numbers: hits of classes 0, 0, 0, 1 -> class 0: 2/3, class 1: 0/1
    hits, classes = [True, True, False, False], [0, 0, 0, 1]
    per_class = metrics.class_accuracies(hits, classes)
    assert per_class.tolist() == pytest.approx([2 / 3, 0.0])
    assert np.mean(hits) == pytest.approx(2 / 4) and per_class.mean() == pytest.approx((2 / 3 + 0) / 2)
    # ascending class order whatever the order of the rows
    assert metrics.class_accuracies([1, 0, 0, 0, 1], [5, 2, 5, 2, 9]).tolist() == [0.0, 0.5, 1.0]
    assert metrics.class_accuracies(np.array([0.0, 1.0]), np.array(["b", "a"])).tolist() == [1.0, 0.0]


@pytest.mark.parametrize("hits, classes", [([True], [1, 2]), ([], [])])
def test_class_accuracies_needs_equally_long_non_empty_inputs(hits, classes):
    with pytest.raises(ValueError, match="need equally long, non-empty hits and classes"):
        metrics.class_accuracies(hits, classes)


def test_bootstrap_ci_brackets_the_mean_and_is_seeded():
    values = np.r_[np.ones(30), np.zeros(70)]
    low, high = metrics.bootstrap_ci(values)
    assert low < 0.3 < high and low > 0.18 and high < 0.42
    assert metrics.bootstrap_ci(values) == (low, high)
    assert metrics.bootstrap_ci(np.ones(5)) == (1.0, 1.0)


def test_rank_correlation_on_a_known_pair_and_the_seeds_argsort_bug():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[1.0, 3.0], [2.0, 4.0]])
    # ranks (1,2,3,4) vs (1,3,2,4): sum d^2 = 2, rho = 1 - 6*2/(4*(16-1)) = 0.8
    assert metrics.rank_correlation(a, b) == pytest.approx(0.8)
    c = np.array([3.0, 1.0, 4.0, 2.0])
    d = np.array([1.0, 2.0, 4.0, 3.0])
    # d^2 = (2, -1, 0, -1): rho = 1 - 6*6/60 = 0.4
    assert metrics.rank_correlation(c, d) == pytest.approx(0.4)
    # the seed ran Spearman on argsort indices (2,4,1,3) vs (1,2,4,3), not ranks: 1 - 6*14/60 = -0.4
    from scipy.stats import spearmanr

    assert spearmanr(np.argsort(c), np.argsort(d)).statistic == pytest.approx(-0.4)
    assert np.isnan(metrics.rank_correlation(np.ones(4), c))
    with pytest.raises(ValueError, match="differ in size"):
        metrics.rank_correlation(np.ones(4), np.ones(5))


# ------------------------------------------------------------------------------ Task 5: box ratio


def test_box_mask_counts_pixel_centres():
    mask = metrics.box_mask((4, 6), [[1, 0, 3, 2]])  # x 1..3, y 0..2 -> columns 1, 2; rows 0, 1
    expected = np.zeros((4, 6), bool)
    expected[0:2, 1:3] = True
    assert np.array_equal(mask, expected)
    assert metrics.box_mask((4, 6), [[1, 0, 3, 2], [5, 3, 6, 4]]).sum() == 5  # union of two boxes


def test_ratio_inside_box_on_a_synthetic_map_with_known_answer():
    heat = np.zeros((10, 10))
    heat[2:4, 2:4] = 1.0  # 4 pixels at the maximum, inside the box
    heat[8, 8] = 0.9  # 1 pixel at 90 %, outside
    heat[0, 0] = 0.6  # 1 pixel at 60 %, outside
    box = [[2, 2, 5, 5]]
    assert metrics.ratio_inside_box(heat, box, 0.85) == pytest.approx(4 / 5)
    assert metrics.ratio_inside_box(heat, box, 0.5) == pytest.approx(4 / 6)
    assert metrics.ratio_inside_box(heat, box, 1.0) == pytest.approx(1.0)
    assert np.isnan(metrics.ratio_inside_box(np.zeros((5, 5)), box))  # nothing activated
    with pytest.raises(ValueError, match="threshold"):
        metrics.ratio_inside_box(heat, box, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        metrics.ratio_inside_box(np.full((3, 3), np.nan), box)


# ------------------------------------------------------------------------------ Task 7


def test_fidelity_is_the_accuracy_drop():
    before = [True, True, True, False]  # accuracy 0.75
    after = [True, False, False, False]  # accuracy 0.25
    assert metrics.fidelity(before, after) == pytest.approx(0.5)
    assert metrics.fidelity([False, True], [True, True]) == pytest.approx(-0.5)  # occlusion can help
    with pytest.raises(ValueError, match="equally long"):
        metrics.fidelity([True], [True, False])


def test_contrastivity_by_hand():
    a = np.array([[1, 1, 0], [0, 0, 0]], bool)
    b = np.array([[0, 1, 1], [0, 0, 1]], bool)
    # differ at (0,0), (0,2), (1,2) -> Hamming 3; union (0,0), (0,1), (0,2), (1,2) -> 4
    assert metrics.contrastivity(a, b) == pytest.approx(0.75)
    assert metrics.contrastivity(a, a) == pytest.approx(0.0)
    assert metrics.contrastivity(a, ~a) == pytest.approx(1.0)
    batch = metrics.contrastivity(np.stack([a, np.zeros_like(a)]), np.stack([b, np.zeros_like(a)]))
    assert batch[0] == pytest.approx(0.75) and np.isnan(batch[1])  # nothing salient: undefined


def test_mask_above_level_is_strictly_above_the_absolute_level():
    saliency = torch.tensor([[0.0, 0.01, 0.02], [0.1, 0.5, 1.0]])
    assert metrics.mask_above_level(saliency, 0.01).tolist() == [[False, False, True], [True, True, True]]
    assert metrics.mask_above_level(saliency, 0.0).tolist() == [[False, True, True], [True, True, True]]
    # absolute, not relative to the map's maximum: a map peaking at 0.3 keeps its values above 0.1 only
    assert metrics.mask_above_level(np.array([0.05, 0.3]), 0.1).tolist() == [False, True]
    with pytest.raises(ValueError, match="threshold"):
        metrics.mask_above_level(saliency, 1.0)


def test_mask_at_fraction_of_max_is_relative_to_the_maps_own_maximum():
    heat = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert metrics.mask_at_fraction_of_max(heat, 0.5).tolist() == [[False, True], [True, True]]  # >= 2
    assert metrics.mask_at_fraction_of_max(heat, 1.0).tolist() == [[False, False], [False, True]]
    assert np.array_equal(
        metrics.mask_at_fraction_of_max(1000 * heat, 0.5), metrics.mask_at_fraction_of_max(heat, 0.5)
    )
    assert not metrics.mask_at_fraction_of_max(-heat, 0.5).any()  # no positive value: nothing activated
    assert not metrics.mask_at_fraction_of_max(np.zeros((2, 2)), 0.5).any()
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
            metrics.mask_at_fraction_of_max(heat, bad)
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.mask_at_fraction_of_max(np.array([[1.0, -np.inf]]), 0.5)


def test_per_class_auc_by_hand_and_undefined_classes():
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.4]])
    table = metrics.per_class_auc(labels, scores, ["a", "b"])
    # class a: positives 0.9, 0.7 vs negatives 0.8, 0.1 -> pairs won 1 + 1 + 0 + 1 = 3 of 4
    assert table.loc[0, "auc"] == pytest.approx(0.75) and table.loc[0, "positives"] == 2
    assert np.isnan(table.loc[1, "auc"]) and table.loc[1, "positives"] == 0


# ------------------------------------------------------------------------------ Task 4


def test_inter_rater_agreement_known_cases():
    scale = [-2, -1, 0, 1, 2]
    assert metrics.inter_rater_agreement([[2, 0, -1], [2, 0, -1]], scale) == pytest.approx(1.0)
    assert np.isnan(metrics.inter_rater_agreement([[2, 0, -1]], scale))  # one rater
    assert np.isnan(metrics.inter_rater_agreement([[1, np.nan], [np.nan, 2]], scale))  # no shared item
    import krippendorff

    # missing ratings (NaN) allowed: the package's own call on the same matrix
    ratings = [[2, 0, -2, np.nan], [-2, 0, 2, 1], [np.nan, 1, 2, 1]]
    expected = krippendorff.alpha(
        reliability_data=ratings, level_of_measurement="ordinal", value_domain=scale
    )
    assert metrics.inter_rater_agreement(ratings, scale) == pytest.approx(expected)
    assert metrics.inter_rater_agreement([[2, 0, -2], [-2, 0, 2]], scale) < 0  # systematic disagreement
