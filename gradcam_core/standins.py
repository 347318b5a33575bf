"""Stand-in models: the networks trained here because the real models of Tasks 5 and 7 cannot be
downloaded where the report is built, and the MNIST network trained on permuted labels for the
data randomisation test (Adebayo et al. 2018, :mod:`gradcam_core.tasks.sanity`) -- their
architectures, the configurations that determine their weights, and where their checkpoints live.

A :class:`TrainingConfig` says everything that determines a checkpoint; its :meth:`digest`
(sha256 of the configuration, the training code's version and torch's version) names the cached
file ``<cache>/checkpoints/<name>-<digest>.pt`` (:func:`checkpoint_path`), so a changed
configuration trains anew and an unchanged one loads. Training itself is
:mod:`gradcam_core.training`; the model registry (:mod:`gradcam_core.models`) loads checkpoints
through :func:`read_checkpoint`. This module depends on :mod:`gradcam_core.data` only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from . import data

#: Bump when the training code changes what a configuration produces.
TRAINING_CODE_VERSION = 1

#: MNIST: how many of the 10,000 embedded digits the stand-in trains on (the rest test it).
MNIST_TRAIN_DIGITS = 8000


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that determines a stand-in's weights."""

    name: str  # registry name of the model it produces
    dataset: str  # "mnist", "cifar10" or "nih_cxr"
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 2  # CPU threads while training: float sums depend on how work is split
    n_train: int | None = None  # MNIST: digits used for training (the rest are the test split)
    held_out_fraction: float = 0.0  # X-rays: fraction of the unboxed images held out for AUC
    frozen_layers: int = 0  # X-rays: SqueezeNet feature blocks kept at their ImageNet weights
    flip: bool = False  # random horizontal flips (seeded)
    permute_labels: bool = False  # train on a seeded permutation of the training labels (Adebayo et al.)

    def digest(self) -> str:
        """sha256 (12 hex digits) of the configuration, :data:`TRAINING_CODE_VERSION` and torch's
        version. Fields added after checkpoints were first cached
        (:data:`DIGEST_OMITTED_AT_DEFAULT`) enter only when they differ from their default, so
        every configuration that existed before them keeps its digest, and its checkpoint."""
        config = {
            key: value
            for key, value in asdict(self).items()
            if not (key in DIGEST_OMITTED_AT_DEFAULT and value == DIGEST_OMITTED_AT_DEFAULT[key])
        }
        text = json.dumps(
            {"config": config, "code": TRAINING_CODE_VERSION, "torch": torch.__version__}, sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]


#: Fields of :class:`TrainingConfig` added after checkpoints were cached, with the default at which
#: :meth:`TrainingConfig.digest` leaves them out (so existing digests stay what they were).
DIGEST_OMITTED_AT_DEFAULT = {"permute_labels": False}


DEFAULT_CONFIGS = {
    "mnist-cnn": TrainingConfig(
        "mnist-cnn", "mnist", epochs=8, batch_size=64, learning_rate=3e-3, n_train=MNIST_TRAIN_DIGITS
    ),
    # Adebayo et al. 2018, Sec. 4 (data randomisation test): mnist-cnn's configuration, trained on
    # its training digits with their labels randomly permuted (seeded); tested on the true labels.
    "mnist-cnn-permuted-labels": TrainingConfig(
        "mnist-cnn-permuted-labels",
        "mnist",
        epochs=8,
        batch_size=64,
        learning_rate=3e-3,
        n_train=MNIST_TRAIN_DIGITS,
        permute_labels=True,
    ),
    "cifar10-cnn": TrainingConfig(
        "cifar10-cnn", "cifar10", epochs=6, batch_size=64, learning_rate=3e-3, weight_decay=5e-4, flip=True
    ),
    "squeezenet1_1-cxr": TrainingConfig(
        "squeezenet1_1-cxr",
        "nih_cxr",
        epochs=12,
        batch_size=32,
        learning_rate=1e-3,
        weight_decay=1e-4,
        held_out_fraction=0.25,
        frozen_layers=9,
        flip=False,
    ),
}


def default_config(name: str) -> TrainingConfig:
    """The configuration the report trains the stand-in ``name`` with."""
    if name not in DEFAULT_CONFIGS:
        raise ValueError(f"{name!r} is not a stand-in trained here; stand-ins: {', '.join(DEFAULT_CONFIGS)}")
    return DEFAULT_CONFIGS[name]


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def checkpoint_path(config: TrainingConfig) -> Path:
    """Where the checkpoint of ``config`` is cached: ``<cache>/checkpoints/<name>-<digest>.pt``."""
    return data.cache_dir() / "checkpoints" / f"{config.name}-{config.digest()}.pt"


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint written by :func:`gradcam_core.training.train_or_load`, with a clear error
    for a missing or unreadable file."""
    saved = data.read_weights_file(path, "checkpoint")
    if not isinstance(saved, dict) or "state_dict" not in saved:
        raise data.WeightsUnavailableError(
            f"{path} is not a checkpoint of gradcam_core.training (no state_dict)"
        )
    return saved


# --------------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------------


class Standardize(nn.Module):
    """``(x - mean) / std`` per channel inside the network, so the network takes [0, 1] pixels
    (occlusion and attribution baselines then live in pixel space: 0 is black)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    """A small all-convolutional classifier for MNIST / CIFAR-10: ``blocks`` of
    (3x3 conv, BatchNorm, ReLU) x ``convs_per_block`` each followed by 2x2 max-pooling except
    the last, then global average pooling and one linear layer (so Grad-CAM at ``features``'
    last ReLU is also CAM, paper Sec. 3.1). Takes [0, 1] pixels."""

    def __init__(
        self, in_channels: int, widths: tuple[int, ...], mean, std, num_classes=10, convs_per_block=2
    ):
        super().__init__()
        layers: list[nn.Module] = [Standardize(mean, std)]
        channels = in_channels
        for i, width in enumerate(widths):
            for _ in range(convs_per_block):
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(),
                ]
                channels = width
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    @property
    def target_layer(self) -> str:
        return f"features.{len(self.features) - 1}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def mnist_cnn() -> SmallCNN:
    """MNIST stand-in: widths 16, 32, 64 at 28, 14, 7 px; Grad-CAM at 7 x 7."""
    return SmallCNN(1, (16, 32, 64), (0.1307,), (0.3081,), convs_per_block=1)


def cifar10_cnn() -> SmallCNN:
    """CIFAR-10 stand-in: widths 32, 64, 128 at 32, 16, 8 px, two convs per block; Grad-CAM at
    8 x 8."""
    return SmallCNN(3, (32, 64, 128), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def squeezenet_multilabel(num_classes: int) -> nn.Module:
    """SqueezeNet 1.1 with a fresh ``num_classes`` 1x1-conv classifier and no final ReLU (its
    scores are averaged logits, :func:`gradcam_core.models.scores_avgpool`); training starts its
    ``features`` from the embedded ImageNet weights."""
    model = torchvision.models.squeezenet1_1(weights=None)
    model.classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Conv2d(512, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(1)
    )
    return model


def architecture(name: str) -> nn.Module:
    """The untrained network of the stand-in ``name`` (random weights)."""
    if name in ("mnist-cnn", "mnist-cnn-permuted-labels"):
        return mnist_cnn()
    if name == "cifar10-cnn":
        return cifar10_cnn()
    if name == "squeezenet1_1-cxr":
        return squeezenet_multilabel(len(data.NIH_FINDINGS))
    raise ValueError(f"no stand-in architecture {name!r}; known: {', '.join(DEFAULT_CONFIGS)}")
