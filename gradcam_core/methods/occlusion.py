"""Perturbation: occlusion sensitivity, the reference map of the paper's faithfulness test
(Sec. 5.3)."""

from __future__ import annotations

import numpy as np
import torch

from .base import Explainer

#: The default window: 45 px squares (the seed's), moved by a third of their side.
PATCH_SIZE = 45
STRIDE = 15


class Occlusion(Explainer):
    """Occlusion sensitivity (Zeiler & Fergus 2014, https://arxiv.org/abs/1311.2901): slide a
    ``patch_size`` square of ``fill`` over the image with ``stride``; each pixel's value is the
    mean drop of the class score over the windows that cover it. Windows start at
    ``0, stride, 2 stride, ...`` up to the first that reaches the border (the last one clipped), as
    captum's ``Occlusion``. All windows of an image are scored in batches of ``batch_size``.
    """

    def __init__(
        self,
        model,
        patch_size=PATCH_SIZE,
        stride=STRIDE,
        fill=0.0,
        batch_size=64,
        num_classes: int | None = None,
    ):
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
        classes = self.class_targets(images, target)
        n, _, height, width = images.shape
        masks = self.windows(height, width, images.device)
        counts = masks.sum(0).to(images.dtype)
        maps = []
        with torch.no_grad():
            base = self.module(images).gather(1, classes)  # (N, K)
            for i in range(n):
                drops = []
                for start in range(0, len(masks), self.batch_size):
                    m = masks[start : start + self.batch_size, None]  # (B, 1, H, W)
                    occluded = torch.where(
                        m, torch.as_tensor(self.fill, dtype=images.dtype), images[i : i + 1]
                    )
                    drops.append(base[i] - self.module(occluded)[:, classes[i]])  # (B, K)
                drops = torch.cat(drops)  # (M, K)
                maps.append(torch.einsum("mk,mhw->khw", drops, masks.to(images.dtype)) / counts)
        return torch.stack(maps)
