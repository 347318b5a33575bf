"""Stand-ins trained here: determinism, the configuration-hash cache, splits, checkpoints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gradcam_core import data, methods, models, training

TINY = training.TrainingConfig("mnist-cnn", "mnist", epochs=1, batch_size=64, learning_rate=3e-3, n_train=600)


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(
        training, "checkpoint_path", lambda config: tmp_path / f"{config.name}-{config.digest()}.pt"
    )
    return tmp_path


def test_training_twice_gives_the_same_weights_and_another_seed_does_not():
    train, test = training.mnist_splits(600, seed=0)
    test = test.sample(200)
    first, history = training.fit(TINY, train, test, progress=False)
    second, _ = training.fit(TINY, train, test, progress=False)
    assert training.state_sha256(first.state_dict()) == training.state_sha256(second.state_dict())
    other, _ = training.fit(dataclasses.replace(TINY, seed=1), train, test, progress=False)
    assert training.state_sha256(other.state_dict()) != training.state_sha256(first.state_dict())
    assert len(history) == 1 and 0.1 < history[0]["eval_accuracy"] <= 1.0  # learned something in one epoch
    assert (
        torch.get_num_threads() == 2 and not torch.are_deterministic_algorithms_enabled()
    )  # settings restored


def test_checkpoints_are_cached_by_configuration_hash(checkpoints):
    first = training.train_or_load(TINY, progress=False)
    assert first.trained_now and first.path.is_file()
    again = training.train_or_load(TINY, progress=False)
    assert (
        not again.trained_now and again.state_sha256 == first.state_sha256 and again.history == first.history
    )
    changed = dataclasses.replace(TINY, learning_rate=1e-3)
    assert changed.digest() != TINY.digest() and training.checkpoint_path(changed) != first.path
    assert TINY.digest() == dataclasses.replace(TINY).digest()
    assert not list(checkpoints.glob("*.part*"))  # written atomically, nothing left behind
    model = models.load_model("mnist-cnn", weights_path=str(first.path), device="cpu")
    assert training.state_sha256(model.module.state_dict()) == first.state_sha256


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(models.WeightsUnavailableError, match="does not exist"):
        training.read_checkpoint(tmp_path / "absent.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(models.WeightsUnavailableError, match="bad.pt"):
        training.read_checkpoint(bad)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(models.WeightsUnavailableError, match="no state_dict"):
        training.read_checkpoint(tmp_path / "other.pt")


def test_mnist_split_is_a_disjoint_seeded_partition():
    train, test = training.mnist_splits(8000, seed=0)
    assert len(train) == 8000 and len(test) == 2000
    assert (
        train.images.shape[1:] == (1, 28, 28)
        and 0 <= float(train.images.min())
        and float(train.images.max()) <= 1
    )
    images, labels = data.load_mnist()
    total = np.sort(np.concatenate([train.labels.numpy(), test.labels.numpy()]))
    assert np.array_equal(total, np.sort(labels))
    again, _ = training.mnist_splits(8000, seed=0)
    assert torch.equal(again.images, train.images)
    with pytest.raises(ValueError, match="n_train"):
        training.mnist_splits(10000)


def test_split_sample_is_seeded_and_without_replacement():
    split = training.Split(torch.arange(10).float()[:, None], torch.arange(10))
    sample = split.sample(4, seed=1)
    assert len(sample) == 4 and len(set(sample.labels.tolist())) == 4
    assert torch.equal(sample.labels, split.sample(4, seed=1).labels)
    assert split.sample(None) is split and split.sample(50) is split
    with pytest.raises(ValueError, match="sample size"):
        split.sample(0)


def test_xray_splits_hold_out_unboxed_images_only():
    train, held_out = training.xray_splits(0.25, seed=0)
    boxed = {r.name for r in data.load_nih_cxr() if r.boxes}
    assert len(train) + len(held_out) == 609 and len(held_out) == 152
    assert not (set(train.names) | set(held_out.names)) & boxed and not set(train.names) & set(held_out.names)
    assert train.labels.shape[1] == len(data.NIH_FINDINGS) and train.images.shape[1:] == (3, 224, 224)


def test_unknown_standin_and_dataset_are_refused():
    with pytest.raises(ValueError, match="stand-ins: mnist-cnn"):
        training.load_standin("vgg16")
    with pytest.raises(ValueError, match="unknown dataset"):
        training.training_data(dataclasses.replace(TINY, dataset="svhn"))


@pytest.mark.parametrize(
    "name, shape",
    [("mnist-cnn", (2, 1, 28, 28)), ("cifar10-cnn", (2, 3, 32, 32)), ("squeezenet1_1-cxr", (2, 3, 224, 224))],
)
def test_standin_specs_give_cam_equal_grad_cam(name, shape, tmp_path):
    # random weights saved as a checkpoint: the registry's layers and scores fit the architecture
    torch.manual_seed(0)
    module = (
        training.architecture(name)
        if name != "squeezenet1_1-cxr"
        else models.squeezenet_multilabel(14, False)
    )
    path = tmp_path / "random.pt"
    torch.save({"state_dict": module.state_dict()}, path)
    model = models.load_model(name, weights_path=str(path), device="cpu")
    x = torch.rand(shape).contiguous(memory_format=torch.channels_last)
    grad_cam = methods.normalize_maps(methods.GradCAM(model).attribute(x, [1, 2]))
    cam = methods.normalize_maps(methods.CAM(model).attribute(x, [1, 2]))
    assert torch.allclose(grad_cam, cam, atol=1e-4)  # GAP + linear classifier: Sec. 3.1
