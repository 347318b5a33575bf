"""Path and sampling attributions through captum and shap: Integrated Gradients, GradientSHAP
(captum's expected gradients) and SHAP values from the ``shap`` package's GradientExplainer.
Their maps are signed; the colour channels are summed (captum's convention)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import PixelExplainer


class _CaptumPerImageAndClass(PixelExplainer):
    """Runs a captum attribution once over all (image, class) pairs: each image repeated once
    per target class, the classes flattened alongside, the result viewed back as
    ``(N, K, C, H, W)``. Colour channels are summed (``reduction``, captum's convention for
    signed attributions)."""

    def __init__(self, model, reduction: str = "sum", num_classes: int | None = None):
        super().__init__(model, num_classes)
        self.reduction = reduction

    def attribute_pixels(self, images, target):
        classes = self.class_targets(images, target)
        n, k = classes.shape
        attributions = self.captum_attribute(images.repeat_interleave(k, dim=0), classes.flatten())
        return attributions.view(n, k, *images.shape[1:])

    def captum_attribute(self, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """captum's attributions ``(M, C, H, W)`` of ``images`` for one class each."""
        raise NotImplementedError


class IntegratedGradients(_CaptumPerImageAndClass):
    """Integrated Gradients (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365, Eq. 1)
    via captum, Riemann/Gauss-Legendre with ``n_steps`` from a constant ``baseline``; colour
    channels summed (captum's convention for signed attributions)."""

    def __init__(
        self, model, n_steps: int = 32, baseline: float = 0.0, internal_batch_size: int = 64, **kwargs
    ):
        super().__init__(model, **kwargs)
        self.n_steps, self.baseline, self.internal_batch_size = n_steps, baseline, internal_batch_size

    def captum_attribute(self, images, classes):
        from captum.attr import IntegratedGradients as CaptumIntegratedGradients

        return CaptumIntegratedGradients(self.module).attribute(
            images,
            baselines=self.baseline,
            target=classes,
            n_steps=self.n_steps,
            internal_batch_size=self.internal_batch_size,
        )


class GradientShap(_CaptumPerImageAndClass):
    """GradientSHAP (expected gradients; Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874)
    via captum: ``n_samples`` random points between the input (plus Gaussian noise ``stdevs``)
    and baselines drawn from ``background``; seeded (torch's and numpy's generators, both
    restored afterwards), so reruns give identical maps."""

    def __init__(
        self,
        model,
        background: torch.Tensor,
        n_samples: int = 32,
        stdevs: float = 0.0,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(model, **kwargs)
        self.background, self.n_samples, self.stdevs, self.seed = background, n_samples, stdevs, seed

    def captum_attribute(self, images, classes):
        from captum.attr import GradientShap as CaptumGradientShap

        devices = [images.device.index] if images.device.type == "cuda" else []
        # captum draws the path coefficients from numpy's legacy global generator: seed it, restore it
        numpy_state = np.random.get_state()  # noqa: NPY002 -- captum's generator, not ours
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            np.random.seed(self.seed)  # noqa: NPY002 -- captum's generator, not ours
            try:
                return CaptumGradientShap(self.module).attribute(
                    images,
                    baselines=self.background.to(images.device),
                    target=classes,
                    n_samples=self.n_samples,
                    stdevs=self.stdevs,
                )
            finally:
                np.random.set_state(numpy_state)  # noqa: NPY002 -- captum's generator, not ours


class _SelectedOutputs(nn.Module):
    """``module``'s outputs for ``classes`` only (shap explains every output of a model)."""

    def __init__(self, module: nn.Module, classes: torch.Tensor):
        super().__init__()
        self.module, self.classes = module, classes

    def forward(self, x):
        return self.module(x)[:, self.classes]


class ShapGradientExplainer(GradientShap):
    """SHAP values through the ``shap`` package's ``GradientExplainer`` (expected gradients with
    the ``background`` batch as the reference distribution; Lundberg & Lee 2017): the estimator
    of :class:`GradientShap`, with its settings (``stdevs`` is shap's ``local_smoothing``), one
    image at a time, its K target classes as the explained outputs, seeded (``n_samples`` 64 by
    default: one image at a time, it can afford more samples)."""

    def __init__(self, model, background: torch.Tensor, n_samples: int = 64, **kwargs):
        super().__init__(model, background, n_samples, **kwargs)

    def attribute_pixels(self, images, target):
        import shap

        classes = self.class_targets(images, target)
        out = []
        for i in range(images.shape[0]):
            wrapped = _SelectedOutputs(self.module, classes[i]).eval()
            explainer = shap.GradientExplainer(
                wrapped, self.background.to(images.device), local_smoothing=self.stdevs
            )
            values = explainer.shap_values(images[i : i + 1], nsamples=self.n_samples, rseed=self.seed)
            values = np.stack(values, 0)[:, 0] if isinstance(values, list) else np.moveaxis(values[0], -1, 0)
            out.append(torch.as_tensor(values, dtype=images.dtype, device=images.device))
        return torch.stack(out)
