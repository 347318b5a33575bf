"""Metrics on hand-made arrays whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradcam_core import data, metrics


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


#: A hand-made map: a 2x2 block of high values and a lone 0.3.
HAND_MADE_MAP = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.9, 1.0, 0.0, 0.0],
        [0.0, 0.8, 0.2, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.3],
        [0.0, 0.0, 0.0, 0.0, 0.0],
    ]
)


def test_threshold_box_hand_made_5x5_map():
    heatmap = HAND_MADE_MAP
    # at 0.15 x max: {(1,1),(1,2),(2,1),(2,2)} plus the lone 0.3 at (3,4); the 2x2 block wins
    assert metrics.threshold_box(heatmap, 0.15).tolist() == [1, 1, 3, 3]
    # at 0.85 x max: (1,1) and (1,2) only
    assert metrics.threshold_box(heatmap, 0.85).tolist() == [1, 1, 3, 2]
    assert metrics.threshold_box(np.zeros((4, 4)), 0.15) is None
    with pytest.raises(ValueError, match="threshold"):
        metrics.threshold_box(heatmap, 0.0)


def test_threshold_boxes_on_a_batch_equal_threshold_box_by_hand():
    """The batched, device-side extractor (kornia's labelling) boxes each map as
    :func:`threshold_box` does: the 5x5 map above at two thresholds, a map without a positive
    value (no box), and the same map zero-padded into a larger frame with its size given."""
    heatmap = torch.tensor(HAND_MADE_MAP, dtype=torch.float32)
    padded = torch.full((7, 9), -5.0)  # padding below any map value: ignored, never activated
    padded[:5, :5] = heatmap
    negative = torch.zeros(7, 9) - 1.0
    for threshold, expected in ((0.15, [1, 1, 3, 3]), (0.85, [1, 1, 3, 2])):
        boxes, found = metrics.threshold_boxes(torch.stack([padded, negative]), threshold, [(5, 5), (9, 7)])
        assert boxes[0].tolist() == expected and found.tolist() == [True, False]
    boxes, found = metrics.threshold_boxes(heatmap[None], 0.15)
    assert boxes.tolist() == [[1, 1, 3, 3]] and found.tolist() == [True]
    with pytest.raises(ValueError, match="threshold"):
        metrics.threshold_boxes(heatmap[None], 0.0)
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.threshold_boxes(torch.full((1, 3, 3), float("nan")), 0.15)


def test_largest_segment_boxes_break_ties_as_opencv_does():
    """Two equally large segments: opencv numbers segments by their first 2 x 2 block, not their
    first pixel, so the one starting at (row 1, col 0) is its first and its box wins; kornia's
    labels keep that order."""
    mask = np.zeros((6, 8), bool)
    mask[1:3, 0] = True  # first 2x2 block (0, 0), first pixel (1, 0)
    mask[0, 3:5] = True  # first block (0, 1), first pixel (0, 3): earlier in pixel order
    assert metrics.largest_segment_box(mask).tolist() == [0, 1, 1, 3]
    boxes, found = metrics.largest_segment_boxes(torch.from_numpy(mask)[None])
    assert boxes.tolist() == [[0, 1, 1, 3]] and found.tolist() == [True]
    with pytest.raises(ValueError, match="boolean"):
        metrics.largest_segment_boxes(torch.zeros(1, 3, 3))


def test_threshold_boxes_equal_opencvs_on_real_maps(squeezenet, ilsvrc_records):
    """On Grad-CAM maps of embedded images at their original sizes and at the sweep's
    thresholds, every box (and every missing box) of the batched extractor is opencv's."""
    from gradcam_core.maps import upsample
    from gradcam_core.methods import GradCAM

    records = ilsvrc_records[:6]
    images = squeezenet.preprocess([data.load_rgb(r.path) for r in records])
    gradcam = GradCAM(squeezenet)
    forward = gradcam.forward(images)
    maps = gradcam.maps(forward, forward.logits.topk(3, 1).indices).detach()
    sizes = [(500, 375), (333, 500), (227, 227), (640, 427), (500, 500), (375, 500)]
    for threshold in (0.05, 0.15, 0.5, 0.9):
        heat = torch.zeros(len(records) * 3, 500, 640)
        for i, (w, h) in enumerate(sizes):
            heat[3 * i : 3 * i + 3, :h, :w] = upsample(maps[i : i + 1], (h, w))[0]
        boxes, found = metrics.threshold_boxes(heat, threshold, np.repeat(sizes, 3, axis=0))
        for row, (w, h) in enumerate(np.repeat(sizes, 3, axis=0)):
            expected = metrics.threshold_box(heat[row, :h, :w].numpy(), threshold)
            assert found[row] and boxes[row].tolist() == expected.tolist()


def _grey_blue_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A uint8 RGB image of grey-blue noise (sd 8 per channel) to paint objects on."""
    noise = np.random.default_rng(seed).normal(0, 8, (height, width, 3))
    return np.clip(np.array([110, 120, 150]) + noise, 0, 255).astype(np.uint8)


def _gaussian(height: int, width: int, centre_xy, sigma: float) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    return np.exp(-((xs - centre_xy[0]) ** 2 + (ys - centre_xy[1]) ** 2) / (2 * sigma**2))


def test_grabcut_box_grows_a_small_blob_to_the_objects_colour_edges():
    image = _grey_blue_scene(96, 96)
    image[20:60, 30:70] = (200, 30, 30)  # red object: box [30, 20, 70, 60]
    heatmap = _gaussian(96, 96, (50, 40), sigma=8)  # peaks inside the object, smaller than it
    box = metrics.grabcut_box(image, heatmap)
    np.testing.assert_allclose(box, [30, 20, 70, 60], atol=2)
    # the plain Sec. 4.1 threshold box stops where the blob fades (radius ~15.6 px at 0.15 x max)
    plain = metrics.threshold_box(heatmap, 0.15)
    assert np.abs(plain - np.array([30, 20, 70, 60])).max() > 2
    assert (plain[:2] > box[:2]).all() and (plain[2:] < box[2:]).all()


def test_grabcut_box_is_deterministic():
    image = _grey_blue_scene(96, 96, seed=1)
    image[25:70, 15:60] = (40, 160, 60)
    heatmap = _gaussian(96, 96, (38, 48), sigma=7) + 0.2 * _gaussian(96, 96, (80, 20), sigma=10)
    first = metrics.grabcut_box(image, heatmap)
    assert first is not None
    assert first.tolist() == metrics.grabcut_box(image, heatmap).tolist()


def test_grabcut_box_rejects_bad_shapes_and_dtypes():
    image = _grey_blue_scene(32, 48)
    with pytest.raises(ValueError, match=r"\(32, 40\).*\(32, 48, 3\)"):
        metrics.grabcut_box(image, np.ones((32, 40)))
    with pytest.raises(ValueError, match=r"\(32, 48, 3\).*float64"):
        metrics.grabcut_box(image.astype(np.float64), np.ones((32, 48)))
    with pytest.raises(ValueError, match=r"\(32, 48\)"):
        metrics.grabcut_box(image[..., 0], np.ones((32, 48)))  # grey, not RGB
    with pytest.raises(ValueError, match="NaN"):
        metrics.grabcut_box(image, np.full((32, 48), np.nan))


def test_grabcut_box_degenerate_maps_have_no_box():
    image = _grey_blue_scene(32, 32)
    assert metrics.grabcut_box(image, np.full((32, 32), 0.7)) is None  # constant
    assert metrics.grabcut_box(image, -_gaussian(32, 32, (16, 16), 4)) is None  # no positive value


def test_grabcut_box_seeds_a_rectified_map_by_its_zeros():
    # 97 % zeros: both quantiles are 0; the zeros are background and the positive pixels foreground
    image = _grey_blue_scene(64, 64)
    image[10:30, 10:30] = (200, 30, 30)
    heatmap = np.zeros((64, 64))
    heatmap[15:25, 15:25] = 1.0
    np.testing.assert_allclose(metrics.grabcut_box(image, heatmap), [10, 10, 30, 30], atol=2)


def test_grabcut_box_falls_back_to_the_foreground_seeds_when_grabcut_raises(monkeypatch):
    def fail(*args):
        raise metrics.cv2.error("no samples")

    monkeypatch.setattr(metrics.cv2, "grabCut", fail)
    heatmap = np.zeros((20, 20))
    heatmap[4:8, 5:10] = 1.0  # 20 pixels = the top 5 %
    assert metrics.grabcut_box(_grey_blue_scene(20, 20), heatmap).tolist() == [5, 4, 10, 8]


def test_grabcut_box_boxes_the_larger_of_two_same_coloured_objects():
    image = _grey_blue_scene(128, 128)
    image[20:70, 10:80] = (200, 30, 30)  # large object: box [10, 20, 80, 70]
    image[85:115, 90:120] = (200, 30, 30)  # small object: box [90, 85, 120, 115]
    # a broad blob on the small object, a narrow one on the large: both hold top-5 % pixels, but
    # most of them (and the plain threshold box) sit on the small object
    heatmap = _gaussian(128, 128, (105, 100), sigma=6) + _gaussian(128, 128, (45, 45), sigma=3)
    seeds = heatmap >= np.quantile(heatmap, metrics.GRABCUT_FOREGROUND_QUANTILE)
    assert seeds[20:70, 10:80].any() and seeds[85:115, 90:120].sum() > seeds[20:70, 10:80].sum()
    assert metrics.threshold_box(heatmap, 0.15).tolist() == [93, 88, 117, 112]
    np.testing.assert_allclose(metrics.grabcut_box(image, heatmap), [10, 20, 80, 70], atol=2)


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


def test_pointing_tolerance_in_original_pixels():
    heatmap = np.zeros((40, 40))
    heatmap[5, 30] = 1.0  # peak centre (30.5, 5.5): 20.5 stored pixels right of the box
    box = [[0, 0, 10, 10]]
    # stored pixels are half the original's along x: 41 original pixels away
    assert metrics.point_box_distance((30.5, 5.5), box, (2.0, 1.0)).item() == 41.0
    assert not metrics.pointing_hit(heatmap, box, tolerance=21, pixel_scale=(2.0, 1.0))
    assert metrics.pointing_hit(heatmap, box, tolerance=21, pixel_scale=(0.5, 3.0))  # 10.25 px
    # both axes: offsets (3, 4) stored pixels, scaled by (2, 0.5) -> (6, 2) -> sqrt(40)
    assert metrics.point_box_distance((13, 14), box, (2.0, 0.5)).item() == pytest.approx(np.sqrt(40))


def test_box_coverage_by_hand():
    # a 10 x 20 (H x W) image; boxes of 10 x 5 and 5 x 5 pixels sharing 5 x 2: 65 / 200
    assert metrics.box_coverage((10, 20), [[0, 0, 10, 5]]) == 0.25
    assert metrics.box_coverage((10, 20), [[0, 0, 10, 5], [5, 3, 10, 8]]) == (50 + 25 - 10) / 200
    assert metrics.box_coverage((10, 20), [[0, 0, 20, 10]]) == 1.0


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


# ------------------------------------------------------------------------------ sanity checks


def _map_pair(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Two related maps on [0, 1]: a smooth blob and the blob plus seeded noise."""
    ys, xs = np.mgrid[0:size, 0:size]
    blob = np.exp(-((xs - 20.0) ** 2 + (ys - 30.0) ** 2) / 200.0)
    noisy = np.clip(blob + 0.2 * np.random.default_rng(0).random((size, size)), 0, 1)
    return blob, noisy


def test_similarity_wrappers_equal_their_libraries():
    from scipy import stats
    from skimage.feature import hog
    from skimage.metrics import structural_similarity

    a, b = _map_pair()
    signed_a, signed_b = a - 0.5, b - 0.4  # signed maps: the signs differ where the absolute values agree
    assert metrics.spearman_abs(signed_a, signed_b) == pytest.approx(
        stats.spearmanr(np.abs(signed_a).ravel(), np.abs(signed_b).ravel()).statistic
    )
    assert metrics.spearman_signed(signed_a, signed_b) == pytest.approx(
        stats.spearmanr(signed_a.ravel(), signed_b.ravel()).statistic
    )
    assert metrics.ssim_similarity(a, b) == pytest.approx(
        structural_similarity(
            a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )
    settings = {
        "orientations": 9,
        "pixels_per_cell": (16, 16),
        "cells_per_block": (2, 2),
        "block_norm": "L2-Hys",
    }
    assert metrics.hog_similarity(a, b) == pytest.approx(
        stats.pearsonr(hog(a, **settings), hog(b, **settings)).statistic
    )
    settings["pixels_per_cell"] = (8, 8)
    assert metrics.hog_similarity(a, b, pixels_per_cell=8) == pytest.approx(
        stats.pearsonr(hog(a, **settings), hog(b, **settings)).statistic
    )
    assert np.array_equal(metrics.hog_features(a), hog(a, **(settings | {"pixels_per_cell": (16, 16)})))


def test_similarity_of_a_map_with_itself_is_one():
    a, _ = _map_pair()
    for similarity in (
        metrics.spearman_abs,
        metrics.spearman_signed,
        metrics.ssim_similarity,
        metrics.hog_similarity,
    ):
        assert similarity(a, a) == pytest.approx(1.0)
    assert metrics.ssim_similarity(np.zeros((16, 16)), np.zeros((16, 16))) == pytest.approx(1.0)


def test_similarities_by_hand():
    # ranks of [1, -2, 3] and [-1, 2, 3]: absolute values equal -> 1; signed ranks (2, 1, 3) vs
    # (1, 2, 3): d^2 sums to 2, rho = 1 - 6 * 2 / (3 * (9 - 1)) = 0.5
    a, b = np.array([[1.0, -2.0, 3.0]]), np.array([[-1.0, 2.0, 3.0]])
    assert metrics.spearman_abs(a, b) == pytest.approx(1.0)
    assert metrics.spearman_signed(a, b) == pytest.approx(0.5)
    # SSIM of two constant maps, 0.5 and 0: only the luminance term is left,
    # (2 * 0.5 * 0 + C1) / (0.5^2 + 0^2 + C1) with C1 = (0.01 * data_range)^2 = 1e-4
    half, zero = np.full((16, 16), 0.5), np.zeros((16, 16))
    assert metrics.ssim_similarity(half, zero) == pytest.approx(1e-4 / (0.25 + 1e-4))
    # HOG bins unsigned orientations and normalises each block: an inverted map and a scaled one
    # have the same features (up to the normalisation's epsilon)
    blob, _ = _map_pair()
    assert metrics.hog_similarity(blob, 1 - blob) == pytest.approx(1.0)
    assert metrics.hog_similarity(blob, 0.5 * blob) == pytest.approx(1.0, abs=1e-6)
    # nothing to rank, no gradient: undefined
    assert np.isnan(metrics.spearman_abs(zero, half)) and np.isnan(metrics.spearman_signed(half, half))
    assert np.isnan(metrics.hog_similarity(blob, np.full((64, 64), 0.5)))
    assert np.isnan(metrics.pearson_correlation([1, 1, 1], [1, 2, 3]))
    assert metrics.pearson_correlation([1, 2, 3], [2, 4, 7]) == pytest.approx(
        np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1]
    )


def test_similarity_inputs_are_checked():
    a, b = _map_pair()
    with pytest.raises(ValueError, match="0..1 scale"):
        metrics.ssim_similarity(a * 2, b)
    with pytest.raises(ValueError, match="same shape"):
        metrics.ssim_similarity(a, b[:10])
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.hog_similarity(np.full((64, 64), np.nan), b)
    with pytest.raises(ValueError, match="differ in size"):
        metrics.spearman_abs(a, b[:10])


def test_high_frequency_energy_closed_forms():
    checkerboard = np.indices((32, 32)).sum(0) % 2
    assert metrics.high_frequency_energy(checkerboard) == pytest.approx(1.0)
    y, x = np.mgrid[:64, :64]
    assert metrics.high_frequency_energy(np.exp(-((x - 32) ** 2 + (y - 32) ** 2) / 200)) < 1e-5
    # white noise spreads evenly over the frequency square: the share outside a disc of radius 1/4
    noise = np.random.default_rng(0).normal(size=(256, 256))
    assert metrics.high_frequency_energy(noise) == pytest.approx(1 - np.pi / 16, abs=0.01)
    assert metrics.high_frequency_energy(np.ones((8, 8))) == 0.0
    rgb = np.stack([checkerboard] * 3, axis=-1)
    assert metrics.high_frequency_energy(rgb) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="expected a 2-D map"):
        metrics.high_frequency_energy(np.zeros(5))
