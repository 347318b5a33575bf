"""Adversarial perturbations in pixel space ([0, 1] images at the network's input size).

- :func:`one_pixel_attack`: untargeted one-pixel attack (Su et al. 2017,
  https://arxiv.org/abs/1710.08864) by differential evolution (scipy), the whole population
  scored as one batch.
- :func:`fgsm`: fast gradient sign method (Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import differential_evolution

from .models import LoadedModel


@dataclass
class OnePixelResult:
    """``x, y``: the pixel (column, row); ``rgb``: its new value in [0, 1]; ``success``: the
    top-1 class changed; ``adversarial_class``: the class predicted after the attack;
    ``true_probability``: the true class's softmax probability after; ``evaluations``: images scored."""

    x: int
    y: int
    rgb: tuple[float, float, float]
    success: bool
    adversarial_class: int
    true_probability: float
    evaluations: int

    def apply(self, pixels: torch.Tensor) -> torch.Tensor:
        """The attacked copy of a ``(3, H, W)`` [0, 1] image."""
        out = pixels.clone()
        out[:, self.y, self.x] = torch.tensor(self.rgb, dtype=out.dtype, device=out.device)
        return out


def _with_pixels(pixels: torch.Tensor, candidates: np.ndarray) -> torch.Tensor:
    """A batch of copies of ``pixels`` (3, H, W), copy i with pixel ``candidates[:2, i]`` set to
    ``candidates[2:, i]``."""
    count = candidates.shape[1]
    batch = pixels.unsqueeze(0).repeat(count, 1, 1, 1)
    xs = torch.as_tensor(candidates[0], device=pixels.device).long()
    ys = torch.as_tensor(candidates[1], device=pixels.device).long()
    values = torch.as_tensor(candidates[2:].T, dtype=pixels.dtype, device=pixels.device)  # (count, 3)
    batch[torch.arange(count, device=pixels.device), :, ys, xs] = values
    return batch


def one_pixel_attack(
    model: LoadedModel,
    pixels: torch.Tensor,
    label: int,
    *,
    population: int = 80,
    max_iterations: int = 20,
    seed: int = 0,
) -> OnePixelResult:
    """Untargeted one-pixel attack: differential evolution over ``(x, y, r, g, b)`` minimising
    the true class's softmax probability (Su et al., Sec. 3), stopping early once the top-1 class
    changes. ``population`` candidates per generation are scored as one batch
    (``vectorized=True``). Deterministic for a given ``seed``."""
    if pixels.dim() != 3:
        raise ValueError(f"pixels must be one (3, H, W) image, got shape {tuple(pixels.shape)}")
    _, height, width = pixels.shape
    evaluations = 0
    state = {"best": None}

    def true_probability(candidates: np.ndarray) -> np.ndarray:
        nonlocal evaluations
        if candidates.ndim == 1:
            candidates = candidates[:, None]
        with torch.no_grad():
            logits = model(model.normalize(_with_pixels(pixels, candidates)))
        evaluations += candidates.shape[1]
        probs = F.softmax(logits.float(), dim=1)
        predicted = probs.argmax(1)
        fooled = (predicted != label).nonzero()
        if len(fooled) and state["best"] is None:
            state["best"] = candidates[:, int(fooled[0])].copy()
        return probs[:, label].cpu().numpy().astype(np.float64)

    bounds = [(0, width - 1e-6), (0, height - 1e-6), (0, 1), (0, 1), (0, 1)]
    result = differential_evolution(
        true_probability,
        bounds,
        popsize=max(1, population // len(bounds)),
        maxiter=max_iterations,
        rng=np.random.default_rng(seed),
        vectorized=True,
        updating="deferred",
        polish=False,
        tol=0,
        callback=lambda intermediate_result: state["best"] is not None,
        init="latinhypercube",
    )
    best = state["best"] if state["best"] is not None else result.x
    attacked = _with_pixels(pixels, best[:, None])
    with torch.no_grad():
        probs = F.softmax(model(model.normalize(attacked)).float(), dim=1)[0]
    adversarial = int(probs.argmax())
    return OnePixelResult(
        int(best[0]),
        int(best[1]),
        tuple(float(v) for v in best[2:]),
        adversarial != label,
        adversarial,
        float(probs[label]),
        evaluations,
    )


def fgsm(model: LoadedModel, pixels: torch.Tensor, labels: torch.Tensor, epsilon: float) -> torch.Tensor:
    """FGSM (Goodfellow et al., Eq. 3): ``x + epsilon * sign(grad_x CE(f(x), y))`` in [0, 1]
    pixel space, clipped to [0, 1]. Only the input is differentiated."""
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    x = pixels.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(model.normalize(x)), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return (pixels + epsilon * grad.sign()).clamp(0, 1).detach()
