"""The input-gradient family: gradient saliency (the paper's "Backprop"), Guided
Backpropagation and Guided Grad-CAM. Each differentiates the class scores with respect to the
input only."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .base import PixelExplainer
from .cam import GradCAM


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients at positive inputs (Springenberg et
    al. 2015, Eq. for R^l_i): ``grad_in = 1[x > 0] * ReLU(grad_out)``."""

    @staticmethod
    def forward(ctx, x):
        out = x.clamp_min(0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (out,) = ctx.saved_tensors
        return grad_out.clamp_min(0) * (out > 0)


class _GuidedClamp(torch.autograd.Function):
    """ReLU6-style clamp to ``[0, high]`` with the guided rule inside the linear region."""

    @staticmethod
    def forward(ctx, x, high):
        ctx.save_for_backward(x)
        ctx.high = high
        return x.clamp(0, high)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out.clamp_min(0) * ((x > 0) & (x < ctx.high)), None


_RELU_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}


class _GuidedReLUMode(TorchFunctionMode):
    """Routes every ReLU of the forward pass through :class:`_GuidedReLU`: ``nn.ReLU`` modules,
    ``F.relu`` calls (torchvision GoogLeNet, DenseNet) and in-place variants alike (these become
    out-of-place), plus ReLU6 (``F.hardtanh(x, 0, high)``)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU_FUNCTIONS:
            return _GuidedReLU.apply(args[0])
        if func is F.relu6:
            return _GuidedClamp.apply(args[0], 6.0)
        if func in (F.hardtanh, F.hardtanh_):  # nn.ReLU6 calls F.hardtanh(x, 0.0, 6.0)
            low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
            high = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
            if low == 0:
                return _GuidedClamp.apply(args[0], float(high))
        return func(*args, **kwargs)


@contextmanager
def guided_relus():
    """Within this block, every ReLU in a forward pass back-propagates guided gradients."""
    with _GuidedReLUMode():
        yield


class Saliency(PixelExplainer):
    """Gradient saliency, the paper's "Backprop" baseline (Simonyan et al. 2014,
    https://arxiv.org/abs/1312.6034, Sec. 3.1): ``|dS^c/dx|`` maximised over colour channels."""

    #: Whether every ReLU back-propagates the guided rule (:func:`guided_relus`).
    uses_guided_relus = False

    def __init__(self, model, reduction: str = "abs_max", num_classes: int | None = None):
        super().__init__(model, num_classes)
        self.reduction = reduction

    def attribute_pixels(self, images, target) -> torch.Tensor:
        """Input gradients ``(N, K, C, H, W)`` of the target class scores."""
        classes = self.class_targets(images, target)
        x = images.detach().requires_grad_(True)
        with torch.enable_grad(), guided_relus() if self.uses_guided_relus else nullcontext():
            scores = self.module(x).gather(1, classes)
            k_count = classes.shape[1]
            grads = [
                torch.autograd.grad(scores[:, k].sum(), x, retain_graph=k < k_count - 1)[0]
                for k in range(k_count)
            ]
        return torch.stack(grads, dim=1)


class GuidedBackprop(Saliency):
    """Guided Backpropagation (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806): the
    input gradient with every ReLU passing back only positive gradients at positive inputs.
    Works whether the model uses ``nn.ReLU`` modules or ``F.relu`` (see :func:`guided_relus`;
    module hooks, as in captum and the seed, silently do nothing on the latter)."""

    uses_guided_relus = True


class GuidedGradCAM(PixelExplainer):
    """Guided Grad-CAM (paper Sec. 3.1): Guided Backpropagation multiplied pointwise by the
    Grad-CAM map bilinearly upsampled to the input (before any normalisation)."""

    def __init__(self, model, layer: str | None = None, reduction: str = "abs_max", num_classes=None):
        super().__init__(model, num_classes)
        self.grad_cam = GradCAM(model, layer=layer, num_classes=num_classes)
        self.guided_backprop = GuidedBackprop(model, reduction=reduction, num_classes=num_classes)
        self.reduction = reduction

    def attribute_pixels(self, images, target):
        classes = self.class_targets(images, target)
        cam = self.grad_cam.attribute(images, classes)
        return self.guided_backprop.attribute_pixels(images, classes) * cam[:, :, None]
