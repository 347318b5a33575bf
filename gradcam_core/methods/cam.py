"""The CAM family: maps ``ReLU(sum_k w_k^c A^k)`` over a layer's activations ``A``, the channel
weights ``w^c`` being what distinguishes Grad-CAM, Grad-CAM++ and CAM.

Besides the uniform :meth:`~ClassActivationMapping.attribute`, every member offers a public
two-step call, so that several members (and several class sets) share one forward pass::

    forward = GradCAM(model).forward(images)            # one pass: logits, activations A
    classes = forward.logits.detach().topk(5, dim=1).indices
    grad_cam = GradCAM(model).maps(forward, classes)     # (N, 5, H, W)
    cam = CAM(model).maps(forward, classes)               # same pass, no second forward

Gradients are taken of the class scores with respect to the target layer's activations only,
scoring only the requested classes through the registry's classifier layer, so top-5 maps cost
about one forward pass. Model parameters are never differentiated.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..maps import upsample
from ..models import get_layer, scores_identity
from .base import Explainer, as_class_targets

#: Agreement demanded between the class scores computed from the classifier layer and the model's
#: own logits (relative, and relative to the largest logit): float32/float64 forward passes...
CLASS_SCORE_TOLERANCE = 1e-3
#: ... and bf16 / fp16 autocast, whose logits carry about 3 significant digits.
CLASS_SCORE_TOLERANCE_LOW_PRECISION = 5e-2
#: Absolute floor of that agreement, for logits near 0.
CLASS_SCORE_ABSOLUTE_TOLERANCE = 1e-4


class LayerForward(NamedTuple):
    """One forward pass of a CAM-family explainer (:meth:`ClassActivationMapping.forward`)."""

    logits: torch.Tensor  # (N, classes), graph attached after the target layer
    activations: torch.Tensor  # the target layer's output, a leaf that requires grad
    features: torch.Tensor | None  # the classifier layer's input
    input_size: tuple[int, int]  # (H, W) of the images, the size maps are upsampled to


def select_classifier_output(
    classifier: nn.Module, features: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
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


class ClassActivationMapping(Explainer):
    """Template for maps of the form ``ReLU(sum_k w_k^c A^k)`` over a layer's activations ``A``;
    a subclass only says how to get the channel weights (:meth:`cam_weights`).

    ``layer`` defaults to the registry's target layer. Class scores are computed for the
    requested classes only through the registry's ``classifier`` layer and ``class_scores``
    (checked against the full logits on every call); a plain ``nn.Module`` without them falls
    back to differentiating the gathered logits.

    Public two-step call: :meth:`forward` (one pass over the images), then :meth:`maps` for any
    ``(N, K)`` classes, as often as wanted and by any member of the family.
    """

    def __init__(
        self,
        model,
        layer: str | None = None,
        classifier: str | None = None,
        class_scores=None,
        num_classes: int | None = None,
    ):
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
        """Step 1: one forward pass -- logits, the target layer's activations ``A`` as a leaf
        that requires grad (nothing before the layer builds a graph), and the classifier's
        input."""
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
        return LayerForward(logits, captured["A"], captured.get("X"), tuple(images.shape[-2:]))

    def _class_scores(self, logits, features, classes) -> torch.Tensor:
        if features is not None and features.requires_grad:
            scores = self.class_scores(select_classifier_output(self.classifier, features, classes))
            expected = logits.detach().gather(1, classes)
            full_precision = {scores.dtype, expected.dtype} <= {torch.float32, torch.float64}
            tolerance = CLASS_SCORE_TOLERANCE if full_precision else CLASS_SCORE_TOLERANCE_LOW_PRECISION
            absolute = tolerance * float(expected.abs().max()) + CLASS_SCORE_ABSOLUTE_TOLERANCE
            if not torch.allclose(scores.detach().float(), expected.float(), rtol=tolerance, atol=absolute):
                raise RuntimeError(
                    "class scores computed from the classifier layer disagree with the model's logits; "
                    "check the registry's classifier and class_scores for this model"
                )
            return scores
        return logits.gather(1, classes)

    def maps(self, forward: LayerForward, classes: torch.Tensor) -> torch.Tensor:
        """Step 2: raw maps ``(N, K, H, W)`` at the input size for ``(N, K)`` classes from a
        :meth:`forward` pass (of this explainer or of another member of the family on the same
        layer)."""
        scores = self._class_scores(forward.logits, forward.features, classes)
        k_count = classes.shape[1]
        grads = torch.stack(
            [
                torch.autograd.grad(scores[:, k].sum(), forward.activations, retain_graph=k < k_count - 1)[0]
                for k in range(k_count)
            ],
            dim=1,
        )  # (N, K, C, h, w): samples are independent, so one sum per class suffices
        A = forward.activations.detach()
        weights = self.cam_weights(A, grads, scores.detach())
        cam = F.relu(torch.einsum("nkc,nchw->nkhw", weights, A.to(weights.dtype)))
        return upsample(cam, forward.input_size)

    def cam_weights(self, activations, grads, scores) -> torch.Tensor:
        """Channel weights ``(N, K, C)`` from activations ``(N, C, h, w)``, gradients
        ``(N, K, C, h, w)`` of the class scores and the scores ``(N, K)``."""
        raise NotImplementedError

    def attribute(self, images, target):
        forward = self.forward(images)
        classes = as_class_targets(target, images.shape[0], forward.logits.shape[1], images.device)
        return self.maps(forward, classes)

    def attribute_top_k(self, images, k: int = 5):
        forward = self.forward(images)
        classes = forward.logits.detach().topk(k, dim=1).indices
        return self.maps(forward, classes), classes, forward.logits.detach()


class GradCAM(ClassActivationMapping):
    """Grad-CAM (Selvaraju et al., https://arxiv.org/abs/1610.02391).

    Eq. 1: ``alpha_k^c = 1/Z sum_ij dy^c / dA^k_ij`` (global-average-pooled gradients of the
    class score ``y^c`` -- the pre-softmax logit -- with respect to the layer's activations);
    Eq. 2: ``L^c = ReLU(sum_k alpha_k^c A^k)``, bilinearly upsampled to the input size. As in
    captum's ``LayerGradCam(relu_attributions=True)``; no normalisation here.
    """

    def cam_weights(self, activations, grads, scores):
        return grads.mean(dim=(-2, -1))


class GradCAMPlusPlus(ClassActivationMapping):
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

    #: Cap on the class score inside ``exp(S)``: float64 overflows near 709.
    MAX_EXPONENT = 700.0

    def cam_weights(self, activations, grads, scores):
        g = grads.double()
        g2 = g * g
        sum_a = activations.double().sum(dim=(-2, -1))[:, None, :, None, None]
        denominator = 2.0 * g2 + sum_a * g2 * g
        alpha = torch.where(denominator != 0, g2 / torch.where(denominator != 0, denominator, 1.0), 0.0)
        scale = torch.exp(scores.double().clamp(max=self.MAX_EXPONENT))[..., None]
        return scale * (alpha * F.relu(g)).sum(dim=(-2, -1))


class CAM(ClassActivationMapping):
    """Class Activation Mapping (Zhou et al. 2016, https://arxiv.org/abs/1512.04150, Eq. 2):
    ``M_c(x, y) = sum_k w_k^c f_k(x, y)``, the classifier's weights for class ``c`` applied at
    every position of the last feature map, bias ignored as in Zhou et al.; ReLU applied as for
    the other CAM-family maps. Valid only where the target layer feeds global average pooling and
    the classifier directly (registry flag ``cam_compatible``: SqueezeNet's 1x1-conv classifier,
    MobileNet, ResNet, GoogLeNet), where Grad-CAM's weights are these weights divided by the map
    size (paper Sec. 3.1). Needs no gradient."""

    def __init__(
        self, model, layer: str | None = None, classifier: str | None = None, num_classes: int | None = None
    ):
        super().__init__(model, layer=layer, classifier=classifier, num_classes=num_classes)
        if self.spec is not None and not self.spec.cam_compatible:
            raise ValueError(
                f"CAM does not apply to {self.spec.name}: its target layer does not feed "
                "global average pooling and the classifier directly"
            )
        if self.classifier is None:
            raise ValueError("CAM needs the classifier layer")

    def maps(self, forward, classes):
        A = forward.activations.detach()
        weights = self.classifier.weight.reshape(self.classifier.weight.shape[0], -1)[classes]
        return upsample(F.relu(torch.einsum("nkc,nchw->nkhw", weights, A)), forward.input_size)
