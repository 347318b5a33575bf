"""The base of every explainer: the model it explains, the uniform :meth:`Explainer.attribute`
call and the forms a ``target`` may take."""

from __future__ import annotations

import torch
from torch import nn

from ..maps import reduce_channels
from ..models import LoadedModel


def as_class_targets(target, n_images: int, num_classes: int, device) -> torch.Tensor:
    """Any accepted ``target`` form (an int, ``(N,)`` or ``(N, K)`` class indices) as an
    ``(N, K)`` long tensor, range-checked."""
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
            f"class index {int(target[bad][0])} out of range: the model has {num_classes} classes "
            f"(0-{num_classes - 1})"
        )
    return target


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
        """The model's number of classes (one forward pass on one image when not known)."""
        if self._num_classes is None:
            with torch.no_grad():
                self._num_classes = int(self.module(images[:1]).shape[1])
        return self._num_classes

    def class_targets(self, images: torch.Tensor, target) -> torch.Tensor:
        """``target`` in any accepted form as ``(N, K)`` class indices for ``images``."""
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
    (see :func:`gradcam_core.maps.reduce_channels`)."""

    reduction = "abs_max"

    def attribute_pixels(self, images: torch.Tensor, target) -> torch.Tensor:
        raise NotImplementedError

    def attribute(self, images, target):
        return reduce_channels(self.attribute_pixels(images, target), self.reduction)
