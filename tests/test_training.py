"""Training the stand-ins (:mod:`gradcam_core.training`): determinism, the configuration-hash
cache, the data splits, the starting network. Configurations, checkpoint paths and
architectures are tested in ``test_standins.py``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gradcam_core import data, models, standins, training

TINY = standins.TrainingConfig("mnist-cnn", "mnist", epochs=1, batch_size=64, learning_rate=3e-3, n_train=600)


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(
        standins, "checkpoint_path", lambda config: tmp_path / f"{config.name}-{config.digest()}.pt"
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
    assert first.path == checkpoints / f"mnist-cnn-{TINY.digest()}.pt"  # train_or_load asks standins
    assert first.seconds > 0 and first.seconds_this_run == first.seconds
    again = training.train_or_load(TINY, progress=False)
    assert (
        not again.trained_now and again.state_sha256 == first.state_sha256 and again.history == first.history
    )
    assert again.seconds == first.seconds and again.seconds_this_run == 0.0  # from the cache: no time now
    assert first.describe() == (
        f"checkpoint {first.path.name}, state sha256 {first.state_sha256[:16]}, trained now; "
        f"training took {first.seconds:.0f} s"
    )
    assert ", loaded from the cache;" in again.describe()
    changed = dataclasses.replace(TINY, learning_rate=1e-3)
    assert changed.digest() != TINY.digest() and standins.checkpoint_path(changed) != first.path
    assert TINY.digest() == dataclasses.replace(TINY).digest()
    assert not list(checkpoints.glob("*.part*"))  # written atomically, nothing left behind
    model = models.load_model("mnist-cnn", weights_path=str(first.path), device="cpu")
    assert training.state_sha256(model.module.state_dict()) == first.state_sha256


def test_mnist_split_is_a_disjoint_seeded_partition():
    train, test = training.mnist_splits(8000, seed=0)
    assert len(train) == 8000 and len(test) == 2000
    assert (
        train.images.shape[1:] == (1, 28, 28)
        and float(train.images.min()) >= 0
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


def test_initial_network_starts_the_xray_standin_from_imagenet_features():
    torch.manual_seed(0)
    start = training.initial_network("squeezenet1_1-cxr")
    torch.manual_seed(0)
    random = standins.architecture("squeezenet1_1-cxr")
    imagenet = models.imagenet_squeezenet_features()
    features = start.features.state_dict()
    assert set(features) == set(imagenet) and all(torch.equal(features[k], imagenet[k]) for k in imagenet)
    assert not torch.equal(random.features[0].weight, imagenet["0.weight"])
    # no random draw in between: the fresh head is the seeded architecture's
    assert torch.equal(start.classifier[1].weight, random.classifier[1].weight)
    torch.manual_seed(0)
    mnist = training.initial_network("mnist-cnn")
    torch.manual_seed(0)
    reference = standins.architecture("mnist-cnn")
    assert all(
        torch.equal(a, b) for a, b in zip(mnist.state_dict().values(), reference.state_dict().values())
    )


def test_initial_network_is_the_same_as_before_the_standins_moved():
    """The checkpoint digest did not change with the restructuring, so the starting network must
    not either: the old construction was torchvision's SqueezeNet 1.1 with all ImageNet weights
    loaded, then a fresh 14-way head, under the same seed."""
    from torch import nn
    from torchvision.models import squeezenet1_1

    torch.manual_seed(0)
    old = squeezenet1_1(weights=None)
    old.load_state_dict(models.squeezenet_state_dict(data.fetch_group("weights/squeezenet1_1") / "weights"))
    old.classifier = nn.Sequential(
        nn.Dropout(0.5), nn.Conv2d(512, 14, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(1)
    )
    after_old = torch.rand(3)
    torch.manual_seed(0)
    new = training.initial_network("squeezenet1_1-cxr")
    assert torch.equal(torch.rand(3), after_old)  # the same draws, so training's dropout draws match too
    old_state, new_state = old.state_dict(), new.state_dict()
    assert list(old_state) == list(new_state)
    assert all(torch.equal(old_state[k], new_state[k]) for k in old_state)


def test_load_model_or_standin_uses_the_registry_given_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "random.pt"
    module = standins.architecture("mnist-cnn")
    torch.save({"state_dict": module.state_dict()}, path)
    trained, model = training.load_model_or_standin("mnist-cnn", weights_path=str(path), device="cpu")
    assert trained is None and model.name == "mnist-cnn"
    assert training.state_sha256(model.module.state_dict()) == training.state_sha256(module.state_dict())
    trained, model = training.load_model_or_standin("squeezenet1_1", device="cpu")
    assert trained is None and model.name == "squeezenet1_1" and model.num_classes == 1000


def test_permuted_label_training_data_permute_the_training_labels_only():
    mnist = standins.default_config("mnist-cnn")
    permuted = standins.default_config("mnist-cnn-permuted-labels")
    train, test = training.training_data(mnist)
    permuted_train, permuted_test = training.training_data(permuted)
    assert torch.equal(permuted_train.images, train.images)  # the same digits ...
    assert torch.equal(permuted_test.images, test.images) and torch.equal(permuted_test.labels, test.labels)
    assert torch.equal(permuted_train.labels.sort().values, train.labels.sort().values)  # ... the same labels
    agreement = float((permuted_train.labels == train.labels).float().mean())
    assert 0.07 < agreement < 0.13  # about sum_c p_c^2 = 0.1 agree by chance, as for independent labels
    assert torch.equal(training.training_data(permuted)[0].labels, permuted_train.labels)  # seeded
    order = np.random.default_rng([0, training.LABEL_PERMUTATION_STREAM]).permutation(len(train))
    assert torch.equal(permuted_train.labels, train.labels[order])


def test_with_permuted_labels_by_hand():
    split = training.Split(torch.arange(5).float()[:, None], torch.tensor([0, 1, 2, 3, 4]), list("abcde"))
    permuted = training.with_permuted_labels(split, seed=3)
    order = np.random.default_rng([3, 1]).permutation(5)
    assert permuted.labels.tolist() == order.tolist() and permuted.names == list("abcde")
    assert torch.equal(permuted.images, split.images) and split.labels.tolist() == [0, 1, 2, 3, 4]
    assert training.with_permuted_labels(split, seed=4).labels.tolist() != permuted.labels.tolist()
