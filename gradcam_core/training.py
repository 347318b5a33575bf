"""Training of the stand-in models, reproducibly, for the tasks whose real models cannot be had
where the report is built (Task 5: a chest X-ray classifier; Task 7: MNIST and CIFAR-10 CNNs).

Architectures, configurations and checkpoint paths are :mod:`gradcam_core.standins`; this module
holds the data splits the stand-ins train and test on, the training loop and the cache
(:func:`train_or_load`). Training runs on the CPU with a fixed thread count, seeded shuffling and
augmentation and ``torch.use_deterministic_algorithms``: a rerun on the same machine gives a
byte-identical state dict (tested through the checkpoint's ``state_sha256``).
"""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import data, metrics, models, standins
from .files import atomic_file
from .standins import TrainingConfig


@dataclass
class Split:
    """Network inputs ``(N, C, H, W)`` float32 and labels (class indices, or multi-hot rows)."""

    images: torch.Tensor
    labels: torch.Tensor
    names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, count: int | None, seed: int = 0) -> Split:
        """``count`` items drawn without replacement by a seeded permutation (all, in order,
        when ``count`` is None or at least the split's size)."""
        if count is None or count >= len(self):
            return self
        if count < 1:
            raise ValueError(f"sample size must be >= 1, got {count}")
        chosen = np.sort(np.random.default_rng(seed).permutation(len(self))[:count])
        return Split(
            self.images[chosen], self.labels[chosen], [self.names[i] for i in chosen] if self.names else []
        )


@dataclass
class TrainedModel:
    """A trained (or loaded) stand-in: its checkpoint and what training measured."""

    config: TrainingConfig
    path: Path
    state_sha256: str
    history: list[dict]
    seconds: float
    trained_now: bool

    def describe(self) -> str:
        """One line: the checkpoint, its state hash, whether it was trained now, how long
        training took."""
        origin = "trained now" if self.trained_now else "loaded from the cache"
        return (
            f"checkpoint {self.path.name}, state sha256 {self.state_sha256[:16]}, {origin}; "
            f"training took {self.seconds:.0f} s"
        )

    @property
    def seconds_this_run(self) -> float:
        """Training time spent by this process: the training's wall time when it trained now,
        0 when the checkpoint came from the cache."""
        return self.seconds if self.trained_now else 0.0


# --------------------------------------------------------------------------------------------
# Data splits
# --------------------------------------------------------------------------------------------


def mnist_splits(n_train: int = standins.MNIST_TRAIN_DIGITS, seed: int = 0) -> tuple[Split, Split]:
    """The embedded 10,000 MNIST digits split by a seeded permutation: ``n_train`` to train on,
    the rest to test on."""
    images, labels = data.load_mnist()
    if not 0 < n_train < len(images):
        raise ValueError(f"n_train must be between 1 and {len(images) - 1}, got {n_train}")
    order = np.random.default_rng(seed).permutation(len(images))
    pixels = torch.from_numpy(np.array(images)).float().div_(255).unsqueeze(1)
    targets = torch.from_numpy(labels)
    train, test = order[:n_train], order[n_train:]
    return Split(pixels[train], targets[train]), Split(pixels[test], targets[test])


def cifar10_split(split: str) -> Split:
    """The embedded CIFAR-10 ``split`` ("train": 20,000, "test": 10,000) as [0, 1] pixels."""
    images, labels = data.load_cifar10(split)
    return Split(
        torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255).contiguous(), torch.from_numpy(labels)
    )


def xray_splits(held_out_fraction: float = 0.25, seed: int = 0, records=None) -> tuple[Split, Split]:
    """The embedded X-rays **without** boxes (the 12 boxed ones are kept for evaluating maps),
    split by a seeded permutation into training and held-out images; labels are multi-hot over
    :data:`data.NIH_FINDINGS`. Images are network inputs: the stand-in's preprocessing (224 px,
    RGB, ImageNet normalisation)."""
    if not 0 < held_out_fraction < 1:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
    records = [r for r in (records if records is not None else data.load_nih_cxr()) if not r.boxes]
    spec = models.get_spec("squeezenet1_1-cxr")
    pixels = torch.stack([spec.transform(data.load_rgb(r.path)) for r in records])
    labels = torch.tensor(
        [[f in r.findings for f in data.NIH_FINDINGS] for r in records], dtype=torch.float32
    )
    order = np.random.default_rng(seed).permutation(len(records))
    n_held = int(round(held_out_fraction * len(records)))
    train, test = np.sort(order[n_held:]), np.sort(order[:n_held])
    names = [r.name for r in records]
    return (
        Split(pixels[train], labels[train], [names[i] for i in train]),
        Split(pixels[test], labels[test], [names[i] for i in test]),
    )


#: The seed sequence of the label permutation is ``[config.seed, LABEL_PERMUTATION_STREAM]``: a
#: stream of its own, apart from the one that splits MNIST (``default_rng(config.seed)``).
LABEL_PERMUTATION_STREAM = 1


def with_permuted_labels(split: Split, seed: int = 0) -> Split:
    """``split`` with its labels randomly permuted among its items (seeded by ``[seed,
    LABEL_PERMUTATION_STREAM]``): the images stay, each gets another item's label, so the label
    counts are unchanged but labels and images are independent (Adebayo et al. 2018, Sec. 4,
    the data randomisation test; Zhang et al. 2017's random labels)."""
    order = np.random.default_rng([seed, LABEL_PERMUTATION_STREAM]).permutation(len(split))
    return Split(split.images, split.labels[torch.from_numpy(order)], list(split.names))


def training_data(config: TrainingConfig) -> tuple[Split, Split]:
    """(train, evaluation) splits for ``config``'s dataset; with ``config.permute_labels`` the
    training labels are permuted (:func:`with_permuted_labels`), the evaluation split keeps the
    true ones."""
    if config.dataset == "mnist":
        train, evaluation = mnist_splits(config.n_train or standins.MNIST_TRAIN_DIGITS, config.seed)
    elif config.dataset == "cifar10":
        train, evaluation = cifar10_split("train"), cifar10_split("test")
    elif config.dataset == "nih_cxr":
        train, evaluation = xray_splits(config.held_out_fraction, config.seed)
    else:
        raise ValueError(f"unknown dataset {config.dataset!r}; known: mnist, cifar10, nih_cxr")
    if config.permute_labels:
        train = with_permuted_labels(train, config.seed)
    return train, evaluation


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@contextmanager
def deterministic_cpu(threads: int, seed: int):
    """Fixed thread count, deterministic algorithms and a seeded global RNG for the duration;
    the previous settings come back afterwards."""
    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            yield
        finally:
            torch.set_num_threads(old_threads)
            torch.use_deterministic_algorithms(old_deterministic)


#: Stand-ins whose ``features`` start from the embedded ImageNet SqueezeNet 1.1.
STARTS_FROM_IMAGENET_SQUEEZENET = ("squeezenet1_1-cxr",)


def initial_network(name: str) -> nn.Module:
    """The network training starts from: the stand-in's architecture with random weights, its
    ``features`` from ImageNet for the X-ray stand-in (no random draw in between, so the seeded
    initialisation is the same either way)."""
    module = standins.architecture(name)
    if name in STARTS_FROM_IMAGENET_SQUEEZENET:
        module.features.load_state_dict(models.imagenet_squeezenet_features())
    return module


def _loss(config: TrainingConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if config.dataset == "nih_cxr":  # multi-label: one sigmoid per finding
        return F.binary_cross_entropy_with_logits(logits, labels)
    return F.cross_entropy(logits, labels)


def predict(module: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits of ``module`` (eval mode) over ``images`` in batches."""
    module.eval()
    device = next(module.parameters()).device
    with torch.no_grad():
        return torch.cat(
            [
                module(models.to_model_input(images[i : i + batch_size], device)).cpu()
                for i in range(0, len(images), batch_size)
            ]
        )


def fit(
    config: TrainingConfig, train: Split, evaluation: Split, progress: bool = True
) -> tuple[nn.Module, list[dict]]:
    """Adam with a one-cycle learning-rate schedule for ``config.epochs`` over ``train``,
    seeded; returns the model and a per-epoch history (training loss; after the last epoch also
    the evaluation loss and, for single-label datasets, the evaluation accuracy)."""
    with deterministic_cpu(config.threads, config.seed):
        module = initial_network(config.name).to(memory_format=torch.channels_last)
        frozen = nn.Sequential()
        if config.frozen_layers:  # SqueezeNet: keep the first feature blocks, precompute their output
            frozen = module.features[: config.frozen_layers].eval()
            for parameter in frozen.parameters():
                parameter.requires_grad_(False)
            train = Split(predict(frozen, train.images, 64), train.labels)
            trainable = nn.Sequential(module.features[config.frozen_layers :], module.classifier)
        else:
            trainable = module
        parameters = [p for p in trainable.parameters() if p.requires_grad]
        optimiser = torch.optim.Adam(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
        steps = config.epochs * ((len(train.images) + config.batch_size - 1) // config.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=steps)
        generator = torch.Generator().manual_seed(config.seed)
        history = []
        for epoch in tqdm(
            range(config.epochs), desc=f"training {config.name}", disable=not progress, unit="epoch"
        ):
            trainable.train()
            order = torch.randperm(len(train.images), generator=generator)
            total = 0.0
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                x = train.images[batch]
                if config.flip:
                    flip = torch.rand(len(batch), generator=generator) < 0.5
                    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                loss = _loss(
                    config, trainable(models.to_model_input(x, torch.device("cpu"))), train.labels[batch]
                )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.item() * len(batch)
            row = {"epoch": epoch + 1, "train_loss": total / len(order)}
            if epoch == config.epochs - 1:  # evaluation split: once, at the end
                logits = predict(module, evaluation.images)
                row["eval_loss"] = float(_loss(config, logits, evaluation.labels))
                if config.dataset != "nih_cxr":
                    row["eval_accuracy"] = float((logits.argmax(1) == evaluation.labels).float().mean())
            history.append(row)
        module.eval()
        return module, history


def state_sha256(state_dict: dict) -> str:
    """sha256 over a state dict's names, dtypes, shapes and bytes (independent of pickling)."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(
            tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else tensor.float().numpy().tobytes()
        )
    return digest.hexdigest()


def accuracy(module: nn.Module, split: Split) -> float:
    """Top-1 accuracy of ``module`` on a single-label split."""
    return float((predict(module, split.images).argmax(1) == split.labels).float().mean())


def load_standin(name: str, device="auto", progress: bool = True):
    """Train (or load from the cache) the stand-in ``name`` with its default configuration and
    return ``(TrainedModel, LoadedModel)`` ready for explanation."""
    trained = train_or_load(standins.default_config(name), progress)
    return trained, models.load_model(name, weights_path=str(trained.path), device=device)


def load_model_or_standin(name: str, weights_path: str | None = None, device="auto", progress: bool = True):
    """``(TrainedModel or None, LoadedModel)``: a stand-in trained here when ``name`` is one and
    no ``weights_path`` is given, else the registry's model (e.g. the full profile's)."""
    if name in standins.DEFAULT_CONFIGS and weights_path is None:
        return load_standin(name, device, progress)
    return None, models.load_model(name, weights_path=weights_path, device=device)


def heldout_auc(model, config: TrainingConfig):
    """The X-ray stand-in's per-finding ROC AUC on its held-out unboxed images."""
    _, held_out = xray_splits(config.held_out_fraction, config.seed)
    scores = predict(model.module, held_out.images)
    return metrics.per_class_auc(held_out.labels.numpy(), scores.numpy(), data.NIH_FINDINGS)


def train_or_load(config: TrainingConfig, progress: bool = True) -> TrainedModel:
    """Load ``config``'s cached checkpoint, or train it and cache it (written atomically)."""
    path = standins.checkpoint_path(config)
    if path.is_file():
        saved = standins.read_checkpoint(path)
        return TrainedModel(config, path, saved["state_sha256"], saved["history"], saved["seconds"], False)
    start = time.perf_counter()
    train, evaluation = training_data(config)
    module, history = fit(config, train, evaluation, progress)
    seconds = time.perf_counter() - start
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    saved = {
        "state_dict": state,
        "config": asdict(config),
        "history": history,
        "seconds": seconds,
        "state_sha256": state_sha256(state),
    }
    with atomic_file(path, "wb") as handle:
        torch.save(saved, handle)
    return TrainedModel(config, path, saved["state_sha256"], history, seconds, True)
