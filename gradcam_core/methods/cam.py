"""The CAM family: maps ``ReLU(sum_k w_k^c A^k)`` over a layer's activations ``A``, the channel
weights ``w^c`` being what distinguishes Grad-CAM, Grad-CAM++, XGrad-CAM, Score-CAM and CAM; and
the element-wise members ``ReLU(sum_k W_k^c * A^k)`` with a weight per position (HiResCAM,
LayerCAM).

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
from tqdm import tqdm

from ..maps import normalize_maps, upsample
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
    images: torch.Tensor | None = None  # the images themselves (Score-CAM masks them)


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
    a subclass only says how to get the channel weights (:meth:`cam_weights`), or, for a weight
    per channel *and position*, how to combine activations and gradients
    (:meth:`weighted_activations`, the sum before the ReLU).

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
        return LayerForward(logits, captured["A"], captured.get("X"), tuple(images.shape[-2:]), images)

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
        layer). The pass's graph after the layer is kept, so that every member of the family can
        take its maps from the same pass (the graph goes with the pass)."""
        scores = self._class_scores(forward.logits, forward.features, classes)
        k_count = classes.shape[1]
        grads = torch.stack(
            [
                torch.autograd.grad(scores[:, k].sum(), forward.activations, retain_graph=True)[0]
                for k in range(k_count)
            ],
            dim=1,
        )  # (N, K, C, h, w): samples are independent, so one sum per class suffices
        cam = F.relu(self.weighted_activations(forward.activations.detach(), grads, scores.detach()))
        return upsample(cam, forward.input_size)

    def weighted_activations(self, activations, grads, scores) -> torch.Tensor:
        """The map before the ReLU, ``(N, K, h, w)``, from activations ``(N, C, h, w)``,
        gradients ``(N, K, C, h, w)`` of the class scores and the scores ``(N, K)``: by default
        ``sum_k w_k^c A^k`` with the channel weights of :meth:`cam_weights`; element-wise members
        (HiResCAM, LayerCAM) override it."""
        weights = self.cam_weights(activations, grads, scores)
        return torch.einsum("nkc,nchw->nkhw", weights, activations.to(weights.dtype))

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


# ------------------------------------------------------------------------------ successors of Grad-CAM


class HiResCAM(ClassActivationMapping):
    """HiResCAM (Draelos & Carin 2020, https://arxiv.org/abs/2011.08891): the gradient multiplies
    the activations element-wise instead of being averaged over positions first,
    ``L^c = ReLU(sum_k dy^c/dA^k * A^k)`` (element-wise product, summed over channels; the ReLU
    keeps the positive evidence, as for every member of this family), bilinearly upsampled to the
    input size.

    pytorch-grad-cam 1.5.7 (``hirescam.py``) returns the plain sum ``sum_k grads * activations``
    without a ReLU, but its ``BaseCAM.compute_cam_per_layer`` applies ``np.maximum(cam, 0)`` to
    every method's map, so it computes this same map; it then min-max normalises each map (with a
    1e-7 guard) at the layer's resolution before resizing it with cv2 -- an affine change per map
    that :func:`~gradcam_core.maps.normalize_maps` undoes.

    Where the target layer feeds global average pooling and a linear classifier directly
    (MobileNet here), ``dy^c/dA^k_ij = W_ck / Z`` is the same at every position and HiResCAM is
    Grad-CAM exactly (both reduce to CAM there). After SqueezeNet's target layer come a 1x1
    convolution ``z_c = sum_k W_ck A^k + b_c``, a ReLU and the pooling, so
    ``dy^c/dA^k_ij = W_ck [z_cij > 0] / Z`` varies with the position; yet HiResCAM is then
    ``ReLU([z_c > 0] (z_c - b_c)) / Z`` and Grad-CAM ``rho_c ReLU(z_c - b_c) / Z`` (``rho_c`` the
    share of positions where ``z_c > 0``): the raw maps differ by the factor ``rho_c``, the
    normalised maps only where ``z_c <= 0 < z_c - b_c`` (a negative bias; at most 3e-4 apart on
    the top-5 maps of 30 embedded images). On both models HiResCAM is Grad-CAM up to scale.
    """

    def weighted_activations(self, activations, grads, scores):
        return (grads * activations[:, None].to(grads.dtype)).sum(dim=2)


class XGradCAM(ClassActivationMapping):
    """XGrad-CAM (Fu et al. 2020, "Axiom-based Grad-CAM", https://arxiv.org/abs/2008.02312): the
    channel weights that satisfy their sensitivity and conservation axioms,
    ``w_k^c = sum_ij (A^k_ij / sum_ab A^k_ab) dy^c/dA^k_ij`` (the gradient averaged with the
    activations' own spatial distribution instead of uniformly), ``L^c = ReLU(sum_k w_k^c A^k)``.
    A channel whose activations sum to 0 (all zero after a ReLU) gets weight 0 here; the formula
    is 0/0 there, and the channel adds nothing to the map whatever its weight.

    pytorch-grad-cam 1.5.7 (``xgrad_cam.py``) adds 1e-7 to the denominator ``sum_ab A^k_ab``, a
    relative change of about 1e-7 / sum A, negligible on real activations.

    With a spatially uniform gradient (target layer feeding global average pooling and a linear
    classifier, MobileNet here) ``w_k^c = dy^c/dA^k`` equals Grad-CAM's weight and XGrad-CAM is
    Grad-CAM exactly. On SqueezeNet (1x1 convolution ``z_c``, ReLU and pooling after the target
    layer) ``w_k^c = W_ck s_ck / Z`` with ``s_ck`` the share of channel ``k``'s activation at
    positions where ``z_c > 0``, against Grad-CAM's ``W_ck rho_c / Z``: the maps differ (by up
    to about 0.2 once normalised, on embedded images).
    """

    def cam_weights(self, activations, grads, scores):
        total = activations.sum(dim=(-2, -1), keepdim=True)
        share = torch.where(total != 0, activations / torch.where(total != 0, total, 1.0), 0.0)
        return (share[:, None].to(grads.dtype) * grads).sum(dim=(-2, -1))


class LayerCAM(ClassActivationMapping):
    """LayerCAM (Jiang et al. 2021, IEEE TIP, https://ieeexplore.ieee.org/document/9462463):
    a weight per channel and position, the positive part of the gradient,
    ``w^c_kij = ReLU(dy^c/dA^k_ij)``, ``L^c = ReLU(sum_k w^c_k * A^k)``.

    pytorch-grad-cam 1.5.7 (``layer_cam.py``) computes ``sum_k max(grads, 0) * activations`` and
    its ``BaseCAM`` the ReLU: the same map (normalised per image before its cv2 resize).

    With a spatially uniform gradient (MobileNet here) it is Grad-CAM without the channels of
    negative weight, ``ReLU(sum_k ReLU(w_k^c) A^k)``, not Grad-CAM; on SqueezeNet (1x1
    convolution ``z_c``, ReLU, pooling) ``ReLU([z_c > 0] sum_k ReLU(W_ck) A^k) / Z``.
    """

    def weighted_activations(self, activations, grads, scores):
        return (F.relu(grads) * activations[:, None].to(grads.dtype)).sum(dim=2)


#: pytorch-grad-cam's guard in Score-CAM's mask normalisation, ``(U - min) / (max - min + 1e-8)``.
PYTORCH_GRAD_CAM_MASK_EPSILON = 1e-8
#: Score-CAM's forms of the channel weights (:class:`ScoreCAM`).
SCORE_CAM_VARIANTS = ("paper", "pytorch-grad-cam")


class MaskedScores(NamedTuple):
    """The model's outputs on Score-CAM's masked inputs ``X_n * H^k_n``, one per image and
    channel (:meth:`ScoreCAM.masked_scores`): all that either form of its weights needs."""

    logits: torch.Tensor  # (N, K, C): the requested classes' logits on the masked input of channel k
    log_normalizer: torch.Tensor  # (N, C): logsumexp over all classes of those outputs
    baseline_logits: torch.Tensor  # (N, K): the requested classes' logits on the baseline X_b = 0
    baseline_log_normalizer: torch.Tensor  # (N,): logsumexp over all classes on the baseline
    constant: torch.Tensor  # (N, C) bool: constant activation, mask 0, masked input = X_b
    variant: str  # whose masks these are (the variants' masks differ)


class ScoreCAM(ClassActivationMapping):
    """Score-CAM (Wang et al. 2020, CVPR Workshops, https://arxiv.org/abs/1910.01279): channel
    weights from forward passes instead of gradients.

    Each channel's activation map, upsampled to the input size and min-max normalised to [0, 1],
    is a mask ``H^k = s(Up(A^k))`` of the input; the channel's weight is the model's score for the
    class on the masked input, relative to a baseline: the paper's Definition 2 (Channel-wise
    Increase of Confidence), ``C(A^k) = f(X * H^k) - f(X_b)``; the map is
    ``L^c = ReLU(sum_k alpha_k^c A^k)`` with ``alpha_k^c = C(A^k)``, bilinearly upsampled to the
    input size. Two forms (setting ``variant``):

    * ``"paper"`` (default): Definition 2 as written. ``f`` is the softmax probability of the
      class (the softmax over the classes of the authors' code), ``X_b = 0`` (the model input,
      i.e. the input that a mask of zeros leaves, so ``C = 0`` for such a mask), ``Up`` bilinear
      with half-pixel centres (:func:`~gradcam_core.maps.upsample`, as the authors'
      ``F.interpolate(..., align_corners=False)``) and ``s`` the min-max normaliser
      :func:`~gradcam_core.maps.normalize_maps`.
    * ``"pytorch-grad-cam"``: pytorch-grad-cam 1.5.7's ``ScoreCAM``, which deviates from
      Definition 2 in three places: ``f`` is the raw logit of the class
      (``ClassifierOutputTarget``) and the weights are a softmax of those logits over the
      *channels*, ``alpha_k^c = exp(y^c(X * H^k)) / sum_j exp(y^c(X * H^j))`` (the form of the
      paper's Algorithm 1, where subtracting ``f(X_b)`` cancels); ``Up`` is
      ``nn.UpsamplingBilinear2d`` (``align_corners=True``); ``s`` has a 1e-8 guard,
      ``(U - min) / (max - min + 1e-8)``. Like every pytorch-grad-cam method it then applies the
      ReLU, min-max normalises each map and resizes it with cv2, which ``normalize_maps`` undoes.

    In both, a channel whose activation map is constant (all zero after a ReLU: on 200 embedded
    images 10 % of SqueezeNet's channels and 13 % of MobileNet's, on average) has the mask 0
    (``normalize_maps``' convention; the 1e-8 guard gives the same), so its masked input is
    ``X * 0 = X_b`` for every such channel and image. With ``skip_constant_channels`` (default)
    their outputs are the baseline's, one forward pass per call, instead of one pass per channel
    and image: nothing changes but the batches the other masked inputs are evaluated in (CPU
    kernels round differently with the batch size, about 1e-6 on the logits). (On an upsampled
    non-zero constant, which does not occur on the real images here, pytorch-grad-cam would
    normalise the rounding noise instead.)

    Cost: one forward pass per image and non-constant channel (SqueezeNet's target layer has 512
    channels, MobileNet's 768), ``batch_size`` masked inputs per pass (taken across images), no
    gradients; any number of classes comes from the same passes. ``progress`` shows a tqdm bar.
    """

    def __init__(
        self,
        model,
        layer: str | None = None,
        batch_size: int = 64,
        variant: str = "paper",
        skip_constant_channels: bool = True,
        progress: bool = False,
        num_classes: int | None = None,
    ):
        super().__init__(model, layer=layer, num_classes=num_classes)
        if variant not in SCORE_CAM_VARIANTS:
            raise ValueError(f"variant must be one of {SCORE_CAM_VARIANTS}, got {variant!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.variant = variant
        self.skip_constant_channels = skip_constant_channels
        self.progress = progress

    def masks(self, activations: torch.Tensor, size, constant: torch.Tensor) -> torch.Tensor:
        """Masks ``H = s(Up(A))`` ``(B, 1, H, W)`` for activation maps ``(B, h, w)`` of the
        variant; 0 where ``constant`` ``(B,)``."""
        maps = activations[:, None]
        if self.variant == "paper":
            masks = normalize_maps(upsample(maps, size))
        else:
            up = F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=True)
            flat = up.flatten(-2)
            low = flat.min(-1).values[..., None, None]
            high = flat.max(-1).values[..., None, None]
            masks = (up - low) / (high - low + PYTORCH_GRAD_CAM_MASK_EPSILON)
        return torch.where(constant[:, None, None, None], 0.0, masks)

    @torch.no_grad()
    def masked_scores(self, forward: LayerForward, classes: torch.Tensor) -> MaskedScores:
        """The model's outputs on the masked inputs ``X_n * H^k_n`` of every image and channel of
        a :meth:`forward` pass, for ``(N, K)`` classes: ``batch_size`` masked inputs per pass
        (taken across images), constant channels from one pass on the baseline."""
        if forward.images is None:
            raise ValueError("Score-CAM needs the images: a LayerForward from forward(), with images")
        images = forward.images.detach()
        A = forward.activations.detach()
        n, c = A.shape[:2]
        k = classes.shape[1]
        flat = A.flatten(2)
        constant = flat.amax(-1) == flat.amin(-1)  # (N, C)
        baseline = self.module(torch.zeros_like(images[:1]))  # X_b = 0 = X * (mask 0)
        baseline_logits = baseline[0][classes]  # (N, K)
        baseline_log_normalizer = baseline.logsumexp(1).expand(n)
        logits = baseline_logits[:, :, None].expand(n, k, c).clone()  # constant channels keep these
        log_normalizer = baseline_log_normalizer[:, None].expand(n, c).clone()
        todo = (~constant if self.skip_constant_channels else torch.ones_like(constant)).nonzero()
        starts = range(0, todo.shape[0], self.batch_size)
        for start in tqdm(starts, desc="Score-CAM", disable=not self.progress, unit="batch", mininterval=5):
            image, channel = todo[start : start + self.batch_size].unbind(1)
            masks = self.masks(A[image, channel], images.shape[-2:], constant[image, channel])
            outputs = self.module(images[image] * masks)
            logits[image, :, channel] = outputs.gather(1, classes[image]).to(logits.dtype)
            log_normalizer[image, channel] = outputs.logsumexp(1).to(log_normalizer.dtype)
        return MaskedScores(
            logits, log_normalizer, baseline_logits, baseline_log_normalizer, constant, self.variant
        )

    def score_weights(self, masked: MaskedScores) -> torch.Tensor:
        """Channel weights ``(N, K, C)`` (float64) of the variant from :meth:`masked_scores`
        (of the same variant: their masks differ)."""
        if masked.variant != self.variant:
            raise ValueError(f"masked scores of variant {masked.variant!r} given to variant {self.variant!r}")
        logits = masked.logits.double()
        if self.variant == "paper":
            probability = torch.exp(logits - masked.log_normalizer.double()[:, None, :])
            baseline_logits = masked.baseline_logits.double()
            baseline = torch.exp(baseline_logits - masked.baseline_log_normalizer.double()[:, None])
            return probability - baseline[..., None]
        return torch.softmax(logits, dim=-1)

    def maps(self, forward: LayerForward, classes: torch.Tensor, masked: MaskedScores | None = None):
        """Raw maps ``(N, K, H, W)`` for ``(N, K)`` classes from a :meth:`forward` pass (of any
        member of the family); ``masked``, a :meth:`masked_scores` result for these classes (of
        this variant), reuses its forward passes."""
        if masked is None:
            masked = self.masked_scores(forward, classes)
        A = forward.activations.detach()
        weights = self.score_weights(masked)
        cam = F.relu(torch.einsum("nkc,nchw->nkhw", weights, A.double())).to(A.dtype)
        return upsample(cam, forward.input_size)
