"""Explanation methods, one class per method, all with one call::

    maps = Method(model, ...).attribute(images, target)      # raw maps, (N, K, H, W)
    maps, classes, logits = Method(model).attribute_top_k(images, k=5)

``images`` is a preprocessed batch ``(N, C, H, W)``; ``target`` is a class index for all images,
``(N,)`` indices (one class each) or ``(N, K)`` indices (K classes each). Maps come back raw and
unnormalised at input resolution; :func:`normalize_maps` is the one normaliser (per image and
class, min-max). Pixel-space methods also offer ``attribute_pixels`` with the colour channels
kept, ``(N, K, C, H, W)``.

Gradient plumbing is shared: the CAM family takes gradients of the class scores with respect to
the target layer's activations only (:meth:`_ClassActivationMapping.forward`), scoring only the
requested classes with the registry's classifier layer, so top-5 maps cost about one forward
pass; the input-gradient family (:class:`Saliency`, :class:`GuidedBackprop`) differentiates with
respect to the input only. Model parameters are never differentiated.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .models import LoadedModel, get_layer, scores_identity

# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map to [0, 1], per image and class, over the last two (spatial)
    dimensions. A constant map (all zeros included) becomes all zeros, never NaN. Maps holding
    NaN or inf are refused."""
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or inf values; cannot normalise")
    flat = maps.flatten(-2)
    low = flat.min(-1, keepdim=True).values
    span = flat.max(-1, keepdim=True).values - low
    safe = torch.where(span > 0, span, torch.ones_like(span))
    out = torch.where(span > 0, (flat - low) / safe, torch.zeros_like(flat))
    return out.view_as(maps)


def reduce_channels(pixels: torch.Tensor, how: str) -> torch.Tensor:
    """``(..., C, H, W)`` pixel attributions to ``(..., H, W)`` maps: ``"abs_max"`` (the
    maximum absolute value over colour channels, Simonyan et al. 2014, Sec. 3.1) or ``"sum"``
    (captum's convention for signed attributions such as Integrated Gradients)."""
    if how == "abs_max":
        return pixels.abs().amax(dim=-3)
    if how == "sum":
        return pixels.sum(dim=-3)
    raise ValueError(f"channel reduction must be 'abs_max' or 'sum', got {how!r}")


def as_class_targets(target, n_images: int, num_classes: int, device) -> torch.Tensor:
    """Any accepted ``target`` form as an ``(N, K)`` long tensor, range-checked."""
    target = torch.as_tensor(target, dtype=torch.long, device=device)
    if target.dim() == 0:
        target = target.expand(n_images)
    if target.dim() == 1:
        target = target[:, None]
    if target.dim() != 2 or target.shape[0] != n_images:
        raise ValueError(
            f"target must be an int, (N,) or (N, K) class indices for N={n_images} images; "
            f"got shape {tuple(target.shape)}"
        )
    bad = (target < 0) | (target >= num_classes)
    if bad.any():
        raise ValueError(
            f"class index {int(target[bad][0])} out of range: the model has {num_classes} classes (0-{num_classes - 1})"
        )
    return target


def select_classifier_output(classifier: nn.Module, features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The classifier layer's output for the requested classes only: ``(N, K)`` for a Linear
    layer on ``(N, D)``, ``(N, K, H, W)`` for a 1x1 Conv2d on ``(N, D, H, W)``. Same numbers as
    the full layer, without computing (or back-propagating through) the other classes."""
    weight = classifier.weight.reshape(classifier.weight.shape[0], -1)[classes]  # (N, K, D)
    bias = classifier.bias[classes] if classifier.bias is not None else None
    if isinstance(classifier, nn.Linear):
        out = torch.einsum("nkd,nd->nk", weight, features)
        return out if bias is None else out + bias
    if isinstance(classifier, nn.Conv2d) and classifier.kernel_size == (1, 1) and classifier.groups == 1:
        out = torch.einsum("nkd,ndhw->nkhw", weight, features)
        return out if bias is None else out + bias[..., None, None]
    raise TypeError(f"classifier must be nn.Linear or a 1x1 nn.Conv2d, got {type(classifier).__name__}")


def upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """Bilinear upsampling of ``(N, K, h, w)`` maps to ``size`` (half-pixel centres)."""
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------


class Explainer:
    """Base of all methods: holds the model and the uniform :meth:`attribute` call."""

    def __init__(self, model: LoadedModel | nn.Module, num_classes: int | None = None):
        if isinstance(model, LoadedModel):
            self.spec = model.spec
            self.module = model.module
            num_classes = num_classes or model.num_classes
        else:
            self.spec = None
            self.module = model
        self._num_classes = num_classes

    def num_classes(self, images: torch.Tensor) -> int:
        if self._num_classes is None:
            with torch.no_grad():
                self._num_classes = int(self.module(images[:1]).shape[1])
        return self._num_classes

    def _targets(self, images: torch.Tensor, target) -> torch.Tensor:
        return as_class_targets(target, images.shape[0], self.num_classes(images), images.device)

    def attribute(self, images: torch.Tensor, target) -> torch.Tensor:
        """Raw maps ``(N, K, H, W)`` for ``target`` classes."""
        raise NotImplementedError

    def attribute_top_k(self, images: torch.Tensor, k: int = 5):
        """Maps for each image's ``k`` highest-scoring classes: ``(maps, classes, logits)``."""
        with torch.no_grad():
            logits = self.module(images)
        classes = logits.topk(k, dim=1).indices
        return self.attribute(images, classes), classes, logits


class PixelExplainer(Explainer):
    """Base of methods that attribute to input pixels: :meth:`attribute_pixels` gives
    ``(N, K, C, H, W)``; :meth:`attribute` reduces the colour channels with ``self.reduction``
    (see :func:`reduce_channels`)."""

    reduction = "abs_max"

    def attribute_pixels(self, images: torch.Tensor, target) -> torch.Tensor:
        raise NotImplementedError

    def attribute(self, images, target):
        return reduce_channels(self.attribute_pixels(images, target), self.reduction)


# --------------------------------------------------------------------------------------------
# CAM family: Grad-CAM, Grad-CAM++
# --------------------------------------------------------------------------------------------


class LayerForward(NamedTuple):
    """One forward pass of a CAM-family explainer."""

    logits: torch.Tensor  # (N, classes), graph attached after the target layer
    activations: torch.Tensor  # the target layer's output, a leaf that requires grad
    features: torch.Tensor | None  # the classifier layer's input


class _ClassActivationMapping(Explainer):
    """Template for maps of the form ``ReLU(sum_k w_k^c A^k)`` over a layer's activations ``A``;
    a subclass only says how to get the channel weights (:meth:`cam_weights`).

    ``layer`` defaults to the registry's target layer. Class scores are computed for the
    requested classes only through the registry's ``classifier`` layer and ``class_scores``
    (checked against the full logits on every call); a plain ``nn.Module`` without them falls
    back to differentiating the gathered logits.
    """

    def __init__(self, model, layer: str | None = None, classifier: str | None = None,
                 class_scores=None, num_classes: int | None = None):
        super().__init__(model, num_classes)
        layer = layer or (self.spec.target_layer if self.spec else None)
        if layer is None:
            raise ValueError("layer is required for a model that is not in the registry")
        self.layer_name = layer
        self.layer = get_layer(self.module, layer)
        classifier = classifier or (self.spec.classifier if self.spec else None)
        self.classifier = get_layer(self.module, classifier) if classifier else None
        self.class_scores = class_scores or (self.spec.class_scores if self.spec else scores_identity)

    def forward(self, images: torch.Tensor) -> LayerForward:
        """One forward pass: logits, the target layer's activations ``A`` as a leaf that requires
        grad (nothing before the layer builds a graph), and the classifier's input."""
        captured = {}

        def keep_activation(module, args, output):
            leaf = output.detach().requires_grad_(True)
            captured["A"] = leaf
            return leaf.clone()  # a non-leaf copy, so in-place ops downstream are allowed

        def keep_classifier_input(module, args):
            captured["X"] = args[0]

        handles = [self.layer.register_forward_hook(keep_activation)]
        if self.classifier is not None:
            handles.append(self.classifier.register_forward_pre_hook(keep_classifier_input))
        try:
            with torch.enable_grad():
                logits = self.module(images)
        finally:
            for handle in handles:
                handle.remove()
        if "A" not in captured:
            raise RuntimeError(f"layer {self.layer_name!r} was not called in the forward pass")
        return LayerForward(logits, captured["A"], captured.get("X"))

    def _class_scores(self, logits, features, classes) -> torch.Tensor:
        if features is not None and features.requires_grad:
            scores = self.class_scores(select_classifier_output(self.classifier, features, classes))
            expected = logits.detach().gather(1, classes)
            full = {torch.float32, torch.float64}
            tolerance = 1e-3 if {scores.dtype, expected.dtype} <= full else 5e-2  # autocast: bf16/fp16
            if not torch.allclose(scores.detach().float(), expected.float(), rtol=tolerance,
                                  atol=tolerance * float(expected.abs().max()) + 1e-4):
                raise RuntimeError(
                    "class scores computed from the classifier layer disagree with the model's logits; "
                    "check the registry's classifier and class_scores for this model"
                )
            return scores
        return logits.gather(1, classes)

    def maps(self, images, forward: LayerForward, classes: torch.Tensor) -> torch.Tensor:
        """Raw maps ``(N, K, H, W)`` for ``(N, K)`` classes from a :meth:`forward` pass; several
        explainers of this family can share one forward pass."""
        logits, activations, features = forward
        scores = self._class_scores(logits, features, classes)
        k_count = classes.shape[1]
        grads = torch.stack([
            torch.autograd.grad(scores[:, k].sum(), activations, retain_graph=k < k_count - 1)[0]
            for k in range(k_count)
        ], dim=1)  # (N, K, C, h, w): samples are independent, so one sum per class suffices
        A = activations.detach()
        weights = self.cam_weights(A, grads, scores.detach())
        cam = F.relu(torch.einsum("nkc,nchw->nkhw", weights, A.to(weights.dtype)))
        return upsample(cam, images.shape[-2:])

    def cam_weights(self, activations, grads, scores) -> torch.Tensor:
        """Channel weights ``(N, K, C)`` from activations ``(N, C, h, w)``, gradients
        ``(N, K, C, h, w)`` of the class scores and the scores ``(N, K)``."""
        raise NotImplementedError

    def attribute(self, images, target):
        forward = self.forward(images)
        classes = as_class_targets(target, images.shape[0], forward.logits.shape[1], images.device)
        return self.maps(images, forward, classes)

    def attribute_top_k(self, images, k: int = 5):
        forward = self.forward(images)
        classes = forward.logits.detach().topk(k, dim=1).indices
        return self.maps(images, forward, classes), classes, forward.logits.detach()


class GradCAM(_ClassActivationMapping):
    """Grad-CAM (Selvaraju et al., https://arxiv.org/abs/1610.02391).

    Eq. 1: ``alpha_k^c = 1/Z sum_ij dy^c / dA^k_ij`` (global-average-pooled gradients of the
    class score ``y^c`` -- the pre-softmax logit -- with respect to the layer's activations);
    Eq. 2: ``L^c = ReLU(sum_k alpha_k^c A^k)``, bilinearly upsampled to the input size. As in
    captum's ``LayerGradCam(relu_attributions=True)``; no normalisation here.
    """

    def cam_weights(self, activations, grads, scores):
        return grads.mean(dim=(-2, -1))


class GradCAMPlusPlus(_ClassActivationMapping):
    """Grad-CAM++ (Chattopadhyay et al. 2018, https://arxiv.org/abs/1710.11063), with the
    exponential of the class score of their closed form.

    They explain ``Y^c = exp(S^c)``. With ``g = dS^c/dA^k_ij`` and a piecewise-linear network
    (higher derivatives of ``S`` vanish), ``dY/dA = exp(S) g``, ``d2Y/dA2 = exp(S) g^2``,
    ``d3Y/dA3 = exp(S) g^3``. Eq. 19 then gives
    ``alpha^kc_ij = g^2 / (2 g^2 + sum_ab A^k_ab g^3)`` (the ``exp(S)`` cancels; 0 where the
    denominator is 0), and Eq. 7 with ``dY/dA = exp(S) g`` gives the weights
    ``w^c_k = exp(S^c) sum_ij alpha^kc_ij ReLU(g)``. The ``exp(S^c)`` factor is a positive
    constant per image and class, so it leaves normalised maps unchanged but sets the raw
    scale; pytorch-grad-cam drops it and the seed exponentiated the activations instead.
    Computed in float64 because ``exp(S)`` overflows float32 for scores above 88; scores above
    700 (untrained networks) are capped there in that factor, so the maps stay finite and
    their normalised form exact.
    """

    def cam_weights(self, activations, grads, scores):
        g = grads.double()
        g2 = g * g
        sum_a = activations.double().sum(dim=(-2, -1))[:, None, :, None, None]
        denominator = 2.0 * g2 + sum_a * g2 * g
        alpha = torch.where(denominator != 0, g2 / torch.where(denominator != 0, denominator, 1.0), 0.0)
        return torch.exp(scores.double().clamp(max=700.0))[..., None] * (alpha * F.relu(g)).sum(dim=(-2, -1))


class CAM(_ClassActivationMapping):
    """Class Activation Mapping (Zhou et al. 2016, https://arxiv.org/abs/1512.04150, Eq. 2):
    ``M_c(x, y) = sum_k w_k^c f_k(x, y)``, the classifier's weights for class ``c`` applied at
    every position of the last feature map, bias ignored as in Zhou et al.; ReLU applied as for
    the other CAM-family maps. Valid only where the target layer feeds global average pooling and
    the classifier directly (registry flag ``cam_compatible``: SqueezeNet's 1x1-conv classifier,
    MobileNet, ResNet, GoogLeNet), where Grad-CAM's weights are these weights divided by the map
    size (paper Sec. 3.1). Needs no gradient."""

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        if self.spec is not None and not self.spec.cam_compatible:
            raise ValueError(f"CAM does not apply to {self.spec.name}: its target layer does not feed "
                             "global average pooling and the classifier directly")
        if self.classifier is None:
            raise ValueError("CAM needs the classifier layer")

    def maps(self, images, forward, classes):
        A = forward.activations.detach()
        weights = self.classifier.weight.reshape(self.classifier.weight.shape[0], -1)[classes]
        return upsample(F.relu(torch.einsum("nkc,nchw->nkhw", weights, A)), images.shape[-2:])


# --------------------------------------------------------------------------------------------
# Input-gradient family: Saliency, Guided Backpropagation, Guided Grad-CAM
# --------------------------------------------------------------------------------------------


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

    guided = False

    def __init__(self, model, reduction: str = "abs_max", num_classes: int | None = None):
        super().__init__(model, num_classes)
        self.reduction = reduction

    def attribute_pixels(self, images, target) -> torch.Tensor:
        """Input gradients ``(N, K, C, H, W)`` of the target class scores."""
        classes = self._targets(images, target)
        x = images.detach().requires_grad_(True)
        with torch.enable_grad(), (guided_relus() if self.guided else nullcontext()):
            scores = self.module(x).gather(1, classes)
            k_count = classes.shape[1]
            grads = [torch.autograd.grad(scores[:, k].sum(), x, retain_graph=k < k_count - 1)[0]
                     for k in range(k_count)]
        return torch.stack(grads, dim=1)


class GuidedBackprop(Saliency):
    """Guided Backpropagation (Springenberg et al. 2015, https://arxiv.org/abs/1412.6806): the
    input gradient with every ReLU passing back only positive gradients at positive inputs.
    Works whether the model uses ``nn.ReLU`` modules or ``F.relu`` (see :func:`guided_relus`;
    module hooks, as in captum and the seed, silently do nothing on the latter)."""

    guided = True


class GuidedGradCAM(PixelExplainer):
    """Guided Grad-CAM (paper Sec. 3.1): Guided Backpropagation multiplied pointwise by the
    Grad-CAM map bilinearly upsampled to the input (before any normalisation)."""

    def __init__(self, model, layer: str | None = None, reduction: str = "abs_max", num_classes=None):
        super().__init__(model, num_classes)
        self.gradcam = GradCAM(model, layer=layer, num_classes=num_classes)
        self.guided = GuidedBackprop(model, reduction=reduction, num_classes=num_classes)
        self.reduction = reduction

    def attribute_pixels(self, images, target):
        cam = self.gradcam.attribute(images, target)
        classes = self.guided._targets(images, target)
        return self.guided.attribute_pixels(images, classes) * cam[:, :, None]


# --------------------------------------------------------------------------------------------
# Perturbation: Occlusion
# --------------------------------------------------------------------------------------------


class Occlusion(Explainer):
    """Occlusion sensitivity (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901): slide a
    ``patch_size`` square of ``fill`` over the image with ``stride``; each pixel's value is the
    mean drop of the class score over the windows that cover it. Windows start at
    ``0, stride, 2 stride, ...`` up to the first that reaches the border (the last one clipped), as
    captum's ``Occlusion``. All windows of an image are scored in batches of ``batch_size``.
    """

    def __init__(self, model, patch_size: int = 45, stride: int = 15, fill: float = 0.0,
                 batch_size: int = 64, num_classes: int | None = None):
        super().__init__(model, num_classes)
        if patch_size < 1 or stride < 1:
            raise ValueError(f"patch_size and stride must be >= 1, got {patch_size} and {stride}")
        if stride > patch_size:
            raise ValueError(f"stride {stride} larger than patch_size {patch_size} leaves pixels unoccluded")
        self.patch_size, self.stride, self.fill, self.batch_size = patch_size, stride, fill, batch_size

    def windows(self, height: int, width: int, device=None) -> torch.Tensor:
        """Boolean masks ``(M, H, W)`` of all window positions."""
        p, s = self.patch_size, self.stride
        if p > height or p > width:
            raise ValueError(f"patch_size {p} exceeds the image size {height}x{width}")
        ys = torch.arange(int(np.ceil((height - p) / s)) + 1, device=device) * s
        xs = torch.arange(int(np.ceil((width - p) / s)) + 1, device=device) * s
        rows = torch.arange(height, device=device)
        cols = torch.arange(width, device=device)
        in_y = (rows[None] >= ys[:, None]) & (rows[None] < ys[:, None] + p)  # (Y, H)
        in_x = (cols[None] >= xs[:, None]) & (cols[None] < xs[:, None] + p)  # (X, W)
        return (in_y[:, None, :, None] & in_x[None, :, None, :]).reshape(-1, height, width)

    def attribute(self, images, target):
        classes = self._targets(images, target)
        n, _, height, width = images.shape
        masks = self.windows(height, width, images.device)
        counts = masks.sum(0).to(images.dtype)
        maps = []
        with torch.no_grad():
            base = self.module(images).gather(1, classes)  # (N, K)
            for i in range(n):
                drops = []
                for start in range(0, len(masks), self.batch_size):
                    m = masks[start:start + self.batch_size, None]  # (B, 1, H, W)
                    occluded = torch.where(m, torch.as_tensor(self.fill, dtype=images.dtype), images[i:i + 1])
                    drops.append(base[i] - self.module(occluded)[:, classes[i]])  # (B, K)
                drops = torch.cat(drops)  # (M, K)
                maps.append(torch.einsum("mk,mhw->khw", drops, masks.to(images.dtype)) / counts)
        return torch.stack(maps)


# --------------------------------------------------------------------------------------------
# Path and sampling methods through captum and shap
# --------------------------------------------------------------------------------------------


class IntegratedGradients(PixelExplainer):
    """Integrated Gradients (Sundararajan et al. 2017, https://arxiv.org/abs/1703.01365, Eq. 1)
    via captum, Riemann/Gauss-Legendre with ``n_steps`` from a constant ``baseline``; colour
    channels summed (captum's convention for signed attributions)."""

    def __init__(self, model, n_steps: int = 32, baseline: float = 0.0, internal_batch_size: int = 64,
                 reduction: str = "sum", num_classes: int | None = None):
        super().__init__(model, num_classes)
        self.n_steps, self.baseline, self.internal_batch_size = n_steps, baseline, internal_batch_size
        self.reduction = reduction

    def attribute_pixels(self, images, target):
        from captum.attr import IntegratedGradients as CaptumIG

        classes = self._targets(images, target)
        n, k = classes.shape
        flat = images.repeat_interleave(k, dim=0)
        attributions = CaptumIG(self.module).attribute(
            flat, baselines=self.baseline, target=classes.flatten(), n_steps=self.n_steps,
            internal_batch_size=self.internal_batch_size,
        )
        return attributions.view(n, k, *images.shape[1:])


class GradientShap(PixelExplainer):
    """GradientSHAP (expected gradients; Lundberg & Lee 2017, https://arxiv.org/abs/1705.07874)
    via captum: ``n_samples`` random points between the input (plus Gaussian noise ``stdevs``)
    and baselines drawn from ``background``; seeded (torch's and numpy's generators, both
    restored afterwards), so reruns give identical maps."""

    def __init__(self, model, background: torch.Tensor, n_samples: int = 32, stdevs: float = 0.0,
                 seed: int = 0, reduction: str = "sum", num_classes: int | None = None):
        super().__init__(model, num_classes)
        self.background, self.n_samples, self.stdevs, self.seed = background, n_samples, stdevs, seed
        self.reduction = reduction

    def attribute_pixels(self, images, target):
        from captum.attr import GradientShap as CaptumGradientShap

        classes = self._targets(images, target)
        n, k = classes.shape
        devices = [images.device.index] if images.device.type == "cuda" else []
        numpy_state = np.random.get_state()  # captum draws the path coefficients with np.random
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            np.random.seed(self.seed)
            try:
                attributions = CaptumGradientShap(self.module).attribute(
                    images.repeat_interleave(k, dim=0), baselines=self.background.to(images.device),
                    target=classes.flatten(), n_samples=self.n_samples, stdevs=self.stdevs,
                )
            finally:
                np.random.set_state(numpy_state)
        return attributions.view(n, k, *images.shape[1:])


class _SelectedOutputs(nn.Module):
    def __init__(self, module: nn.Module, classes: torch.Tensor):
        super().__init__()
        self.module, self.classes = module, classes

    def forward(self, x):
        return self.module(x)[:, self.classes]


class Shap(PixelExplainer):
    """SHAP values through the ``shap`` package's ``GradientExplainer`` (expected gradients with
    the ``background`` batch as the reference distribution; Lundberg & Lee 2017), ``n_samples``
    per image, seeded. One image at a time, its K target classes as the explained outputs."""

    def __init__(self, model, background: torch.Tensor, n_samples: int = 64, seed: int = 0,
                 reduction: str = "sum", num_classes: int | None = None):
        super().__init__(model, num_classes)
        self.background, self.n_samples, self.seed, self.reduction = background, n_samples, seed, reduction

    def attribute_pixels(self, images, target):
        import shap

        classes = self._targets(images, target)
        out = []
        for i in range(images.shape[0]):
            wrapped = _SelectedOutputs(self.module, classes[i]).eval()
            explainer = shap.GradientExplainer(wrapped, self.background.to(images.device))
            values = explainer.shap_values(images[i:i + 1], nsamples=self.n_samples, rseed=self.seed)
            values = np.stack(values, 0)[:, 0] if isinstance(values, list) else np.moveaxis(values[0], -1, 0)
            out.append(torch.as_tensor(values, dtype=images.dtype, device=images.device))
        return torch.stack(out)


METHODS = {
    "grad-cam": GradCAM,
    "grad-cam++": GradCAMPlusPlus,
    "cam": CAM,
    "backprop": Saliency,
    "guided-backprop": GuidedBackprop,
    "guided-grad-cam": GuidedGradCAM,
    "occlusion": Occlusion,
    "integrated-gradients": IntegratedGradients,
    "gradient-shap": GradientShap,
    "shap": Shap,
}


def get_method(name: str):
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}") from None
