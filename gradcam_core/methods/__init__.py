"""Explanation methods, one class per method, all with one call::

    maps = Method(model, ...).attribute(images, target)      # raw maps, (N, K, H, W)
    maps, classes, logits = Method(model).attribute_top_k(images, k=5)
    explainer = methods.create("grad-cam", model)             # the same by registry name

``images`` is a preprocessed batch ``(N, C, H, W)``; ``target`` is a class index for all images,
``(N,)`` indices (one class each) or ``(N, K)`` indices (K classes each). Maps come back raw and
unnormalised at input resolution; :mod:`gradcam_core.maps` post-processes them
(:func:`~gradcam_core.maps.normalize_maps` is the one normaliser). Pixel-space methods also offer
``attribute_pixels`` with the colour channels kept, ``(N, K, C, H, W)``.

One module per family: :mod:`.base` (the :class:`Explainer` template), :mod:`.cam` (Grad-CAM,
Grad-CAM++, CAM and Grad-CAM's successors HiResCAM, XGrad-CAM, LayerCAM and Score-CAM: weights
over a layer's activations, with a public ``forward()`` / ``maps()`` pair that shares one forward
pass), :mod:`.gradients` (gradient saliency, Guided Backprop, Guided Grad-CAM), :mod:`.occlusion`,
:mod:`.path` (Integrated Gradients, GradientSHAP and shap's GradientExplainer), :mod:`.excitation`
(Excitation Backprop and its contrastive variant c-MWP, by TorchRay, at an intermediate layer per
model).
"""

from __future__ import annotations

import inspect

from .base import Explainer, PixelExplainer, as_class_targets
from .cam import (
    CAM,
    ClassActivationMapping,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    LayerForward,
    MaskedScores,
    ScoreCAM,
    XGradCAM,
    select_classifier_output,
)
from .excitation import EXCITATION_LAYERS, ContrastiveExcitationBackprop, ExcitationBackprop
from .gradients import GuidedBackprop, GuidedGradCAM, Saliency, guided_relus
from .occlusion import Occlusion
from .path import GradientShap, IntegratedGradients, ShapGradientExplainer

#: Every method by its name in tables and figures; each name means one class.
METHODS: dict[str, type[Explainer]] = {
    "grad-cam": GradCAM,
    "grad-cam++": GradCAMPlusPlus,
    "cam": CAM,
    "hirescam": HiResCAM,
    "xgrad-cam": XGradCAM,
    "layer-cam": LayerCAM,
    "score-cam": ScoreCAM,
    "backprop": Saliency,
    "guided-backprop": GuidedBackprop,
    "guided-grad-cam": GuidedGradCAM,
    "occlusion": Occlusion,
    "integrated-gradients": IntegratedGradients,
    "gradient-shap": GradientShap,
    "shap-gradient-explainer": ShapGradientExplainer,
    "c-mwp": ContrastiveExcitationBackprop,
    "excitation-backprop": ExcitationBackprop,
}


def settings_of(method: type[Explainer]) -> dict[str, inspect.Parameter]:
    """The settings a method's constructor takes after the model (following ``**kwargs`` to the
    constructors of its base classes), by name."""
    settings: dict[str, inspect.Parameter] = {}
    for cls in method.__mro__:
        if "__init__" not in vars(cls):
            continue
        parameters = list(inspect.signature(cls.__init__).parameters.values())[2:]  # after self, model
        for parameter in parameters:
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                settings.setdefault(parameter.name, parameter)
        if not any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
            break
    return settings


def create(name: str, model, **settings) -> Explainer:
    """The explainer called ``name`` (a key of :data:`METHODS`) for ``model``, with the
    method's ``settings`` (keyword arguments of its class, e.g. ``n_steps`` for Integrated
    Gradients, ``background`` for GradientSHAP). Unknown names, unknown settings and missing
    required settings are errors naming them."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    method = METHODS[name]
    accepted = settings_of(method)
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise ValueError(f"method {name!r} has no setting(s) {unknown}; its settings: {', '.join(accepted)}")
    missing = [
        p for p, spec in accepted.items() if spec.default is inspect.Parameter.empty and p not in settings
    ]
    if missing:
        raise ValueError(
            f"method {name!r} needs the setting(s) {missing}; its settings: {', '.join(accepted)}"
        )
    return method(model, **settings)


__all__ = [
    "CAM",
    "EXCITATION_LAYERS",
    "METHODS",
    "ClassActivationMapping",
    "ContrastiveExcitationBackprop",
    "ExcitationBackprop",
    "Explainer",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientShap",
    "GuidedBackprop",
    "GuidedGradCAM",
    "HiResCAM",
    "IntegratedGradients",
    "LayerCAM",
    "LayerForward",
    "MaskedScores",
    "Occlusion",
    "PixelExplainer",
    "Saliency",
    "ScoreCAM",
    "ShapGradientExplainer",
    "XGradCAM",
    "as_class_targets",
    "create",
    "settings_of",
    "guided_relus",
    "select_classifier_output",
]
