"""Post-processing of maps (:mod:`gradcam_core.maps`) on hand-made tensors whose answers are
worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradcam_core import maps


def test_normalize_maps_hand_computed_and_degenerate_cases():
    raw = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]], [[3.0, 3.0], [3.0, 3.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    out = maps.normalize_maps(raw)
    assert torch.equal(out[0, 0], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))
    assert torch.equal(out[0, 1], torch.zeros(2, 2)) and torch.equal(out[0, 2], torch.zeros(2, 2))
    with pytest.raises(ValueError, match="NaN or inf"):
        maps.normalize_maps(torch.tensor([[[[float("nan"), 1.0]]]]))


def test_normalize_maps_is_per_image_and_class():
    raw = torch.tensor([[[[-2.0, 2.0]], [[10.0, 30.0]]], [[[5.0, 1.0]], [[0.0, 0.0]]]])  # (2, 2, 1, 2)
    out = maps.normalize_maps(raw)
    expected = torch.tensor([[[[0.0, 1.0]], [[0.0, 1.0]]], [[[1.0, 0.0]], [[0.0, 0.0]]]])
    assert torch.equal(out, expected)


def test_positive_part_drops_negative_evidence():
    signed = torch.tensor([[-1.5, 0.0], [2.0, -0.0]])
    assert torch.equal(maps.positive_part(signed), torch.tensor([[0.0, 0.0], [2.0, 0.0]]))


def test_normalized_positive_by_hand():
    signed = torch.tensor([[[[-2.0, 0.0], [1.0, 3.0]], [[-1.0, -4.0], [-2.0, -3.0]]]])  # (1, 2, 2, 2)
    out = maps.normalized_positive(signed)
    # class 0: positive part [[0, 0], [1, 3]], min 0, max 3; class 1: all negative -> all zero
    assert torch.allclose(out[0, 0], torch.tensor([[0.0, 0.0], [1 / 3, 1.0]]))
    assert torch.equal(out[0, 1], torch.zeros(2, 2))
    # not the same as normalising first: the negative values would then not all map to 0
    assert not torch.allclose(out, maps.normalize_maps(signed))


def test_channel_reduction():
    pixels = torch.tensor([[[[1.0]], [[-3.0]], [[2.0]]]])
    assert maps.reduce_channels(pixels, "abs_max").item() == 3.0
    assert maps.reduce_channels(pixels, "sum").item() == 0.0
    with pytest.raises(ValueError, match="channel reduction"):
        maps.reduce_channels(pixels, "mean")


def test_upsample_is_bilinear_with_half_pixel_centres():
    # a 1 x 2 map [0, 1] to width 4: source x = (x' + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
    # clamped to [0, 1]: values 0, 0.25, 0.75, 1
    out = maps.upsample(torch.tensor([[[[0.0, 1.0]]]]), (1, 4))
    assert out.shape == (1, 1, 1, 4)
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))


def test_resize_to_image_shape_values_and_float32():
    raw = torch.tensor([[[0.0, 1.0]], [[2.0, 2.0]]])  # (K=2, h=1, w=2)
    out = maps.resize_to_image(raw, (4, 3))  # size is (width, height)
    assert isinstance(out, np.ndarray) and out.shape == (2, 3, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], np.tile([0.0, 0.25, 0.75, 1.0], (3, 1)), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(out[1], np.full((3, 4), 2.0, np.float32))


def test_resize_to_image_keeps_float64_and_its_range():
    huge = torch.tensor([[[1e300, 3e300]]], dtype=torch.float64)  # Grad-CAM++'s exp(S) scale
    out = maps.resize_to_image(huge, (4, 1))
    assert out.dtype == np.float64 and np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 0], [1e300, 1.5e300, 2.5e300, 3e300], rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_resize_to_image_gives_float32_for_low_precision_maps(dtype):
    out = maps.resize_to_image(torch.tensor([[[0.0, 1.0]]], dtype=dtype), (4, 1))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.0, 0.25, 0.75, 1.0], atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_resize_to_image_is_the_identity_at_the_image_size(dtype):
    raw = torch.rand(3, 6, 10, generator=torch.Generator().manual_seed(0)).to(dtype)
    out = maps.resize_to_image(raw, (10, 6))
    assert out.shape == (3, 6, 10) and out.dtype == (np.float64 if dtype == torch.float64 else np.float32)
    np.testing.assert_array_equal(out, raw.numpy())


def test_pool_averages_blocks_by_hand():
    raw = torch.arange(16.0, dtype=torch.float64).view(1, 1, 4, 4)
    out = maps.pool(raw, 2)
    # blocks {0,1,4,5}, {2,3,6,7}, {8,9,12,13}, {10,11,14,15}
    assert out.dtype == torch.float32 and out.shape == (1, 1, 2, 2)
    assert torch.equal(out[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    assert torch.equal(maps.pool(raw, 4)[0, 0], raw[0, 0].float())  # already at the resolution
    assert maps.pool(raw.to(torch.bfloat16), 1).item() == 7.5  # the mean, in float32


def test_gradient_image_is_centred_grey():
    picture = maps.gradient_image(np.zeros((3, 4, 4)))
    assert picture.shape == (4, 4, 3) and picture.dtype == np.uint8 and (picture == 128).all()


def test_gradient_image_by_hand():
    # values 0 and 2: centred -1, +1, std 1, scaled by 0.1 / std: -0.1, +0.1, plus grey 0.5
    pixels = np.array([[[0.0, 2.0]]] * 3)  # (C=3, H=1, W=2)
    assert maps.gradient_image(pixels).tolist() == [[[102] * 3, [153] * 3]]
    # -100 and +100 among 98 zeros: std sqrt(200) = 14.1, so +-100 scale to +-0.71: clipped to
    # black and white; the zeros stay grey (0.5 * 255 = 127.5, rounded to 128)
    values = np.zeros(100)
    values[:2] = (-100.0, 100.0)
    picture = maps.gradient_image(np.stack([values[None]] * 3))
    assert picture[0, :3, 0].tolist() == [0, 255, 128] and (picture[0, 2:] == 128).all()


# ------------------------------------------------------------------------------ analysis (SYNTHETIC data)


def test_for_display_keeps_the_sign_of_signed_maps_and_normalises_the_others():
    signed = torch.tensor([[[-2.0, 1.0], [0.0, 0.5]]])
    positive = torch.tensor([[[1.0, 3.0], [2.0, 1.0]]])
    out = maps.for_display(torch.stack([signed, positive]))
    assert torch.equal(out[0], torch.tensor([[[-1.0, 0.5], [0.0, 0.25]]]))  # divided by max |value|
    assert torch.equal(out[1], torch.tensor([[[0.0, 1.0], [0.5, 0.0]]]))  # min-max, as normalize_maps
    assert torch.equal(maps.for_display(torch.zeros(1, 2, 2)), torch.zeros(1, 2, 2))
