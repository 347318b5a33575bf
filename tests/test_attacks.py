"""Attacks on tiny models whose answers are known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradcam_core import attacks
from tests.helpers import loaded_module


class _PixelTrigger(nn.Module):
    """Class 1 wins exactly when pixel (row 2, column 3) is bright in all channels."""

    def forward(self, x):
        trigger = x[:, :, 2, 3].mean(1)  # in [0, 1] pixels (identity normalisation)
        return torch.stack([torch.full_like(trigger, 0.5), trigger], dim=1) * 10


def _loaded(module, size=5):
    return loaded_module(module, ["dark", "bright"], input_size=size)


def test_one_pixel_attack_finds_the_known_flipping_pixel():
    model = _loaded(_PixelTrigger())
    pixels = torch.zeros(3, 5, 5)
    result = attacks.one_pixel_attack(model, pixels, label=0, population=50, max_iterations=30, seed=0)
    assert result.success and (result.x, result.y) == (3, 2) and result.adversarial_class == 1
    assert min(result.rgb) >= 0 and sum(result.rgb) / 3 > 0.5
    assert result.apply(pixels)[:, 2, 3].mean() > 0.5 and result.evaluations >= 50
    again = attacks.one_pixel_attack(model, pixels, label=0, population=50, max_iterations=30, seed=0)
    assert again == result  # seeded


def test_one_pixel_attack_reports_failure_when_no_pixel_flips():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.tensor([[5.0, 0.0]]).expand(x.shape[0], 2) + 0 * x.sum()

    result = attacks.one_pixel_attack(
        _loaded(Constant()), torch.zeros(3, 5, 5), label=0, population=10, max_iterations=3, seed=1
    )
    assert not result.success and result.adversarial_class == 0


def test_fgsm_closed_form_on_a_linear_model():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    model = _loaded(linear, size=4)
    pixels = torch.rand(2, 3, 4, 4) * 0.5 + 0.25
    labels = torch.tensor([0, 1])
    out = attacks.fgsm(model, pixels, labels, 0.1)
    w = linear[1].weight.view(2, 3, 4, 4)
    # the cross-entropy gradient of a 2-class linear model points along w_other - w_true
    expected = torch.stack([(w[1] - w[0]).sign(), (w[0] - w[1]).sign()]) * 0.1 + pixels
    assert torch.allclose(out, expected.clamp(0, 1), atol=1e-6)
    assert torch.equal(attacks.fgsm(model, pixels, labels, 0.0), pixels)
    with pytest.raises(ValueError, match="epsilon"):
        attacks.fgsm(model, pixels, labels, -0.1)
