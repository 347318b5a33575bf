"""Post-processing of explanation maps, in one place (in the spirit of captum's
``LayerAttribution.interpolate``): every resize, pooling, channel reduction, positive part and
normalisation that the explainers and the tasks apply to maps.

Maps are tensors whose last two dimensions are spatial: ``(N, K, H, W)`` for a batch of images
and target classes, ``(K, H, W)`` for one image; pixel attributions keep their colour channels
before :func:`reduce_channels`, ``(..., C, H, W)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map to [0, 1], per image and class, over the last two (spatial)
    dimensions. A constant map (all zeros included) becomes all zeros, never NaN. Maps holding
    NaN or inf are refused. The report's one normaliser."""
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or inf values; cannot normalise")
    flat = maps.flatten(-2)
    low = flat.min(-1, keepdim=True).values
    span = flat.max(-1, keepdim=True).values - low
    safe = torch.where(span > 0, span, torch.ones_like(span))
    out = torch.where(span > 0, (flat - low) / safe, torch.zeros_like(flat))
    return out.view_as(maps)


def for_display(maps: torch.Tensor) -> torch.Tensor:
    """Maps as figures draw them: non-negative maps (the CAM family) by :func:`normalize_maps`;
    a map with negative values (Integrated Gradients, GradientSHAP) divided by its largest
    absolute value, to [-1, 1] with 0 kept at 0 and the sign kept (drawn on a diverging
    colormap centred at 0)."""
    if not torch.isfinite(maps).all():
        raise ValueError("maps contain NaN or inf values; cannot scale them for display")
    flat = maps.flatten(-2)
    signed = (flat < 0).any(-1, keepdim=True)
    extent = flat.abs().max(-1, keepdim=True).values
    scaled = flat / torch.where(extent > 0, extent, torch.ones_like(extent))
    return torch.where(signed, scaled, normalize_maps(maps).flatten(-2)).view_as(maps)


def positive_part(maps: torch.Tensor) -> torch.Tensor:
    """``ReLU`` of signed maps: the evidence *for* a class (paper Eq. 2 applies it to the CAM
    family; for signed attributions such as Integrated Gradients it drops the evidence against)."""
    return maps.clamp_min(0)


def normalized_positive(maps: torch.Tensor) -> torch.Tensor:
    """:func:`positive_part` then :func:`normalize_maps`: maps on a 0..1 scale of positive
    evidence (Pope et al. 2019's saliency scale, Task 7)."""
    return normalize_maps(positive_part(maps))


def reduce_channels(pixels: torch.Tensor, how: str) -> torch.Tensor:
    """``(..., C, H, W)`` pixel attributions to ``(..., H, W)`` maps: ``"abs_max"`` (the
    maximum absolute value over colour channels, Simonyan et al. 2014, Sec. 3.1) or ``"sum"``
    (captum's convention for signed attributions such as Integrated Gradients)."""
    if how == "abs_max":
        return pixels.abs().amax(dim=-3)
    if how == "sum":
        return pixels.sum(dim=-3)
    raise ValueError(f"channel reduction must be 'abs_max' or 'sum', got {how!r}")


def upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """Bilinear upsampling of ``(N, K, h, w)`` maps to ``size = (H, W)`` (half-pixel centres),
    as the paper upsamples Grad-CAM to the input resolution (Sec. 3)."""
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


def resize_to_image(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(K, h, w)`` maps of one image bilinearly resized to the image's stored
    ``size = (width, height)``, where its ground-truth boxes are, as a numpy array: float32, or
    float64 for float64 maps (Grad-CAM++'s raw scale ``exp(S)`` can exceed float32's range)."""
    dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    if tuple(maps.shape[-2:]) != (size[1], size[0]):
        maps = upsample(maps[None].to(dtype), (size[1], size[0]))[0]
    return maps.to(dtype).cpu().numpy()


def pool(maps: torch.Tensor, resolution: int) -> torch.Tensor:
    """Maps ``(N, K, H, W)`` average-pooled to ``resolution x resolution`` (float32): the common
    resolution at which Task 3 ranks pixels (fine enough for the occlusion stride, coarse enough
    that pixel noise in guided backpropagation does not dominate the ranks)."""
    return F.adaptive_avg_pool2d(maps.float(), resolution)


def gradient_image(pixels: np.ndarray) -> np.ndarray:
    """Guided Backprop / Guided Grad-CAM attributions ``(C, H, W)`` as an RGB uint8 picture, the
    usual way of showing gradient images (Springenberg et al. 2015; paper Fig. 1): centred on
    grey, scaled by 0.1 / std, clipped to [0, 1]."""
    x = np.asarray(pixels, np.float64)
    x = x - x.mean()
    std = x.std()
    x = x / std * 0.1 if std > 0 else x
    x = np.clip(x + 0.5, 0, 1)
    return (np.moveaxis(x, 0, -1) * 255).round().astype(np.uint8)
