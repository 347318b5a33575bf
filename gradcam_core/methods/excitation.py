"""Excitation Backprop and its contrastive variant c-MWP (Zhang et al., "Top-down neural attention
by excitation backprop", ECCV 2016, https://arxiv.org/abs/1608.00507), the paper's c-MWP
baseline, computed by TorchRay (``torchray.attribution.excitation_backprop``; Fong, Patrick and
Vedaldi, Facebook AI Research), not re-implemented here.

Excitation Backprop (Zhang et al. Sec. 3.2) passes a top-down signal, the marginal winning
probability (MWP), from a class unit down to an intermediate layer: a unit hands its MWP to its
inputs in proportion to their excitatory contributions ``a_j w+_ji``. TorchRay does this by
patching ``torch.nn.functional``'s convolution, linear, average-pooling and batch-norm functions
for the duration of one call. c-MWP (Sec. 3.3) subtracts the MWP of a dual unit -- the class unit
with negated weights -- at a *contrast* layer just below the classifier, then passes the
difference down to the *saliency* layer; the map there is the channel sum, clamped at 0 (plain
EB: not clamped). Both work at an intermediate layer (Sec. 4), so each model needs the two layers
of :data:`EXCITATION_LAYERS`. Maps come back raw at the input size, bilinearly upsampled from the
saliency layer as the CAM family's are (:func:`gradcam_core.maps.upsample`).

What the adapter adds around TorchRay: one TorchRay call per requested class (a batch target
tensor: one class per image), the maps stacked ``(N, K, H, W)``; the model's state restored
afterwards (TorchRay's c-MWP switches every parameter's ``requires_grad`` off and sets eval mode,
restoring neither; TorchRay removes its function patches and probes itself);
and, for models TorchRay cannot see through (:func:`excitation_view`), a view of the model that
computes the same logits with operations TorchRay's rules apply to.

Two findings behind :func:`excitation_view` and the layer table:

* SqueezeNet's classifier is a 1x1 convolution followed by ReLU and global average pooling.
  TorchRay negates the classifier's weights only for the backward pass, so the ReLU mask and the
  pooling split come from the true class map and the contrast signal is not killed by the ReLU.
  A 1x1 convolution, however, conserves the signal position by position, so at the classifier's
  input (the contrast layer) the contrast has the same spatial distribution as the class signal
  -- c-MWP is 0 there up to rounding -- and differs only across channels; the difference becomes
  spatial further down, at the saliency layer (``features.8``), as for VGG-16's fully connected
  classifier.
* MobileNet v1 (the TF.js rebuild) pools with ``Tensor.mean``, which TorchRay does not patch
  (the signal would be spread uniformly over positions instead of by activation), and uses ReLU6,
  whose gradient is 0 above 6: the most strongly excited units -- the winners -- would drop their
  MWP. With EB's pooling but ReLU6's gradient, the class's signal loses more mass than its dual's
  and c-MWP at ``conv_pw_11`` was 0 at 98% of the positions (4 embedded images). The view pools
  with ``adaptive_avg_pool2d`` (TorchRay's pooling rule) and back-propagates ReLU6 like ReLU (an
  MWP passes through an activation function; only units with zero response receive none). Its
  BatchNorm scales are all positive, so TorchRay's identity rule for batch norm equals EB on the
  BN-folded convolutions (EB ignores biases and a positive scale per output channel).

Not thread-safe: TorchRay patches ``torch.nn.functional`` globally while a map is computed.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import torch
from torch import nn

from ..maps import upsample
from ..models import TFJSClassifierNet, get_layer
from .base import Explainer

#: Default ``(saliency_layer, contrast_layer)`` per registry model (Zhang et al. 2016, Sec. 3-4):
#: the saliency layer is an intermediate layer of mid resolution, the contrast layer the last one
#: before the classifier, where the contrast of Sec. 3.3 is taken.
#:
#: * ``vgg16``: pool4 (``features.23``, 14x14) and relu7 (``classifier.4``) -- TorchRay's own
#:   benchmark choice (examples/attribution_benchmark.py) for the pointing game.
#: * ``alexnet``: pool2 (``features.5``, 13x13, the pooling that feeds the last conv block like
#:   VGG's pool4) and relu7 (``classifier.5``).
#: * ``googlenet``: pool2/3x3_s2 (``maxpool2``, 28x28) and pool5/7x7_s1 (``avgpool``) -- Zhang
#:   et al.'s own choice for GoogLeNet (their Caffe-ExcitationBP code).
#: * ``squeezenet1_1``: the pooling after fire5 (``features.8``, 13x13, stride 16, feeding the
#:   last fire block like VGG's pool4) and fire9 (``features.12``), the 1x1-conv classifier's input.
#: * ``mobilenet_v1_0.75``: ``features.conv_pw_11_relu`` (14x14, stride 16, feeding the last
#:   stride-2 block like VGG's pool4) and ``features.conv_pw_13_relu``, the last feature map
#:   (pooled into the classifier: the same contrast as at the pooled features, since EB's pooling
#:   rule is linear in the signal).
#:
#: ResNet-50 and DenseNet-121 are left out: TorchRay's EB needs their skip connections rewritten
#: (``update_resnet`` replaces the blocks' forward in place), and DenseNet has no TorchRay rule.
EXCITATION_LAYERS: dict[str, tuple[str, str]] = {
    "vgg16": ("features.23", "classifier.4"),
    "alexnet": ("features.5", "classifier.5"),
    "googlenet": ("maxpool2", "avgpool"),
    "squeezenet1_1": ("features.8", "features.12"),
    "mobilenet_v1_0.75": ("features.conv_pw_11_relu", "features.conv_pw_13_relu"),
}


class _ReLU6Function(torch.autograd.Function):
    """``clamp(x, 0, 6)`` whose backward passes the signal wherever ``x > 0``, as ReLU's does."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(0.0, 6.0)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * (x > 0)


class ReLU6AsReLU(nn.Module):
    """ReLU6 forward, ReLU backward: a saturated unit keeps passing its MWP down."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReLU6Function.apply(x)


def relu6_as_relu(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.ReLU6`` reachable through ``nn.Sequential`` containers replaced by
    :class:`ReLU6AsReLU` (same names; new containers, every other module shared), or ``module``
    itself when there is none."""
    if isinstance(module, nn.ReLU6):
        return ReLU6AsReLU()
    if not isinstance(module, nn.Sequential):
        return module
    children = OrderedDict((name, relu6_as_relu(child)) for name, child in module.named_children())
    if all(children[name] is child for name, child in module.named_children()):
        return module
    view = nn.Sequential(children)
    view.training = module.training  # the container's own mode only: the children are shared
    return view


class PooledClassifierNet(nn.Module):
    """A :class:`~gradcam_core.models.TFJSClassifierNet` that pools with an
    ``nn.AdaptiveAvgPool2d`` (``pool``) instead of ``Tensor.mean``: the same logits, and TorchRay's
    EB rule applies to the pooling. ``features`` and ``classifier`` keep their names."""

    def __init__(self, features: nn.Module, classifier: nn.Module):
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def excitation_view(module: nn.Module) -> nn.Module:
    """The module TorchRay is run on: ``module`` itself, or for a
    :class:`~gradcam_core.models.TFJSClassifierNet` a :class:`PooledClassifierNet` over its
    ``features`` with ReLU6 back-propagated like ReLU (:func:`relu6_as_relu`). It shares
    ``module``'s parameters and layer names and computes the same logits."""
    if isinstance(module, TFJSClassifierNet):
        view = PooledClassifierNet(relu6_as_relu(module.features), module.classifier)
        view.training = view.pool.training = module.training  # the shared modules keep their own
        return view
    return relu6_as_relu(module)


def _torchray():
    """TorchRay's ``excitation_backprop`` module, imported on first use (TorchRay imports
    matplotlib's pyplot), without the DeprecationWarning its ``__init__`` raises on newer
    ``importlib_resources`` (``open_text``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="open_text is deprecated", category=DeprecationWarning)
        from torchray.attribution import excitation_backprop
    return excitation_backprop


class _ModelState:
    """What TorchRay changes and does not restore: each parameter's ``requires_grad``, each
    module's training mode, and (if a call fails) probe hooks left on ``probed`` modules."""

    def __init__(self, module: nn.Module, probed: list[nn.Module]):
        self.requires_grad = [(p, p.requires_grad) for p in module.parameters()]
        self.training = [(m, m.training) for m in module.modules()]
        self.hooks = [(m, set(m._forward_hooks), set(m._forward_pre_hooks)) for m in probed]

    def restore(self):
        for parameter, flag in self.requires_grad:
            parameter.requires_grad_(flag)
        for module, flag in self.training:
            module.training = flag
        for module, forward, pre in self.hooks:
            for key in set(module._forward_hooks) - forward:
                del module._forward_hooks[key]
            for key in set(module._forward_pre_hooks) - pre:
                del module._forward_pre_hooks[key]


class _TorchRayExcitation(Explainer):
    """Shared by both methods: the layers, the view of the model, the per-class TorchRay calls."""

    method = ""  # the method's name in error messages

    def __init__(
        self,
        model,
        saliency_layer: str | None = None,
        contrast_layer: str | None = None,
        classifier: str | None = None,
        num_classes: int | None = None,
        *,
        contrastive: bool,
    ):
        super().__init__(model, num_classes)
        needed = (saliency_layer, contrast_layer) if contrastive else (saliency_layer,)
        if any(layer is None for layer in needed):
            name = self.spec.name if self.spec is not None else None
            if name not in EXCITATION_LAYERS:
                what = f"model {name!r}" if name else "a model that is not in the registry"
                settings = "saliency_layer= and contrast_layer=" if contrastive else "saliency_layer="
                raise ValueError(
                    f"{self.method} has no default layers for {what}; known models: "
                    f"{', '.join(EXCITATION_LAYERS)}; pass {settings}"
                )
            default_saliency, default_contrast = EXCITATION_LAYERS[name]
            saliency_layer = saliency_layer or default_saliency
            contrast_layer = contrast_layer or default_contrast
        self.contrastive = contrastive
        self.view = excitation_view(self.module)
        self.saliency_layer = saliency_layer
        self.contrast_layer = contrast_layer if contrastive else None
        self.classifier = classifier or (self.spec.classifier if self.spec is not None else None)
        names = [saliency_layer] + ([self.contrast_layer, self.classifier] if contrastive else [])
        for layer in names:
            if layer is not None:
                get_layer(self.module, layer)  # an unknown name is an error listing the model's layers
        self._probed = [get_layer(self.view, layer) for layer in names[:2]]

    def _saliency(self, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """TorchRay's map ``(N, 1, h, w)`` at the saliency layer for one class per image."""
        torchray = _torchray()
        if self.contrastive:
            return torchray.contrastive_excitation_backprop(
                self.view,
                images,
                classes,
                saliency_layer=self.saliency_layer,
                contrast_layer=self.contrast_layer,
                classifier_layer=self.classifier,
            )
        return torchray.excitation_backprop(self.view, images, classes, saliency_layer=self.saliency_layer)

    def attribute(self, images, target):
        classes = self.class_targets(images, target)
        images = images.detach()
        state = _ModelState(self.view, self._probed)
        try:
            with torch.enable_grad(), torch.autocast(images.device.type, enabled=False):
                maps = [self._saliency(images, classes[:, k]) for k in range(classes.shape[1])]
        finally:
            state.restore()
        return upsample(torch.cat(maps, dim=1).detach(), images.shape[-2:])


class ExcitationBackprop(_TorchRayExcitation):
    """Excitation Backprop (Zhang et al. 2016, Sec. 3.2): the MWP of the target class summed over
    the channels of ``saliency_layer`` (default: :data:`EXCITATION_LAYERS`), by TorchRay's
    ``excitation_backprop``, bilinearly upsampled to the input size. Raw maps ``(N, K, H, W)``."""

    method = "Excitation Backprop"

    def __init__(self, model, saliency_layer: str | None = None, num_classes: int | None = None):
        super().__init__(model, saliency_layer=saliency_layer, num_classes=num_classes, contrastive=False)


class ContrastiveExcitationBackprop(_TorchRayExcitation):
    """c-MWP, contrastive Excitation Backprop (Zhang et al. 2016, Sec. 3.3), the paper's c-MWP
    baseline: the target class's MWP minus its dual's (negated ``classifier`` weights) at
    ``contrast_layer``, passed down to ``saliency_layer``, summed over channels and clamped at 0,
    by TorchRay's ``contrastive_excitation_backprop``; bilinearly upsampled to the input size.
    Layers default to :data:`EXCITATION_LAYERS`, the classifier to the registry's. Raw maps
    ``(N, K, H, W)``, non-negative."""

    method = "c-MWP"

    def __init__(
        self,
        model,
        saliency_layer: str | None = None,
        contrast_layer: str | None = None,
        classifier: str | None = None,
        num_classes: int | None = None,
    ):
        super().__init__(
            model,
            saliency_layer=saliency_layer,
            contrast_layer=contrast_layer,
            classifier=classifier,
            num_classes=num_classes,
            contrastive=True,
        )
