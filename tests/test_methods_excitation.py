"""c-MWP and Excitation Backprop (:mod:`gradcam_core.methods.excitation`) against TorchRay called
directly, on the real embedded models and images; the model's state after a call; the layer table
and the errors."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradcam_core import methods, models
from gradcam_core.maps import upsample
from gradcam_core.methods import excitation
from tests.helpers import image_batch, loaded_module

with warnings.catch_warnings():  # TorchRay's own import warns (importlib_resources.open_text)
    warnings.filterwarnings("ignore", message="open_text is deprecated", category=DeprecationWarning)
    from torchray.attribution.excitation_backprop import contrastive_excitation_backprop, excitation_backprop


def _close(ours: torch.Tensor, reference: torch.Tensor) -> bool:
    """Equal up to 1e-5 of the reference's largest magnitude."""
    return ours.shape == reference.shape and torch.allclose(
        ours, reference, rtol=0, atol=1e-5 * float(reference.abs().max())
    )


def _torchray_maps(module, x, classes, layers, classifier, contrastive) -> torch.Tensor:
    """TorchRay's own maps, one call per column of ``classes``, resized to the input by TorchRay."""
    saliency_layer, contrast_layer = layers
    maps = []
    for k in range(classes.shape[1]):
        if contrastive:
            maps.append(
                contrastive_excitation_backprop(
                    module,
                    x,
                    classes[:, k],
                    saliency_layer=saliency_layer,
                    contrast_layer=contrast_layer,
                    classifier_layer=classifier,
                    resize=True,
                )
            )
        else:
            maps.append(
                excitation_backprop(module, x, classes[:, k], saliency_layer=saliency_layer, resize=True)
            )
    return torch.cat(maps, dim=1)


class _MeanAsPooling(nn.Module):
    """The TF.js MobileNet as TorchRay needs it, built here independently of
    :func:`~gradcam_core.methods.excitation.excitation_view`: global average pooling through
    ``F.adaptive_avg_pool2d`` and ReLU6 back-propagated like ReLU."""

    def __init__(self, net: models.TFJSClassifierNet):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                (name, excitation.ReLU6AsReLU() if isinstance(layer, nn.ReLU6) else layer)
                for name, layer in net.features.named_children()
            )
        )
        self.classifier = net.classifier

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


@pytest.fixture(scope="module")
def squeezenet_images(squeezenet, ilsvrc_records):
    x = image_batch(squeezenet, ilsvrc_records, count=2)
    with torch.no_grad():
        classes = squeezenet(x).topk(2, dim=1).indices
    return x, classes


@pytest.fixture(scope="module")
def squeezenet_cmwp(squeezenet, squeezenet_images):
    x, classes = squeezenet_images
    return methods.ContrastiveExcitationBackprop(squeezenet).attribute(x, classes)


# ------------------------------------------------------------------------------ against TorchRay


def test_cmwp_equals_torchray_on_squeezenet(squeezenet, squeezenet_images, squeezenet_cmwp):
    x, classes = squeezenet_images
    layers = excitation.EXCITATION_LAYERS["squeezenet1_1"]
    reference = _torchray_maps(squeezenet.module, x, classes, layers, "classifier.1", contrastive=True)
    assert squeezenet_cmwp.shape == (2, 2, 224, 224)
    assert _close(squeezenet_cmwp, reference)


def test_excitation_backprop_equals_torchray_on_squeezenet(squeezenet, squeezenet_images):
    x, classes = squeezenet_images
    ours = methods.ExcitationBackprop(squeezenet).attribute(x, classes)
    layers = excitation.EXCITATION_LAYERS["squeezenet1_1"]
    assert _close(ours, _torchray_maps(squeezenet.module, x, classes, layers, None, contrastive=False))


@pytest.mark.parametrize("method", [methods.ContrastiveExcitationBackprop, methods.ExcitationBackprop])
def test_maps_equal_torchray_on_mobilenet(mobilenet, ilsvrc_records, method):
    x = image_batch(mobilenet, ilsvrc_records, count=2)
    with torch.no_grad():
        logits = mobilenet(x)
        classes = logits.topk(2, dim=1).indices
        adapted = _MeanAsPooling(mobilenet.module).eval()  # TorchRay would switch a training model
        assert torch.allclose(adapted(x), logits, atol=1e-5)  # the same network
    contrastive = method is methods.ContrastiveExcitationBackprop
    layers = excitation.EXCITATION_LAYERS["mobilenet_v1_0.75"]
    reference = _torchray_maps(adapted, x, classes, layers, "classifier", contrastive)
    ours = method(mobilenet).attribute(x, classes)
    assert _close(ours, reference)
    assert float(reference.max()) > 0


def test_excitation_view_computes_the_same_logits_and_shares_the_parameters(mobilenet, ilsvrc_records):
    x = image_batch(mobilenet, ilsvrc_records, count=2)
    view = excitation.excitation_view(mobilenet.module)
    assert isinstance(view, excitation.PooledClassifierNet) and not view.training
    with torch.no_grad():
        assert torch.allclose(view(x), mobilenet(x), atol=1e-5)
    own = {id(p) for p in mobilenet.module.parameters()}
    assert {id(p) for p in view.parameters()} == own
    names = dict(view.named_modules())
    assert isinstance(names["features.conv_pw_11_relu"], excitation.ReLU6AsReLU)
    assert isinstance(mobilenet.module.features.conv_pw_11_relu, nn.ReLU6)  # the model is untouched
    # TorchRay back-propagates batch norm as the identity: EB on the BN-folded convolutions as long
    # as every BN scale is positive (EB ignores a positive scale per output channel)
    assert all((bn.weight > 0).all() for bn in mobilenet.module.modules() if isinstance(bn, nn.BatchNorm2d))
    squeezenet_like = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
    assert excitation.excitation_view(squeezenet_like) is squeezenet_like  # nothing to adapt


def test_relu6_as_relu_keeps_relu6_forward_and_passes_saturated_units_back():
    x = torch.tensor([-1.0, 0.0, 0.5, 6.0, 7.0], requires_grad=True)
    y = excitation.ReLU6AsReLU()(x)
    assert torch.equal(y, F.relu6(x))
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


# ------------------------------------------------------------------------------ the maps


def test_cmwp_maps_are_nonnegative_nonzero_and_class_specific(squeezenet_cmwp):
    assert (squeezenet_cmwp >= 0).all()
    assert (squeezenet_cmwp.flatten(2).amax(dim=2) > 0).all()  # every image and class
    first, second = squeezenet_cmwp[:, 0], squeezenet_cmwp[:, 1]
    assert not torch.allclose(first, second, atol=1e-3 * float(squeezenet_cmwp.max()))


def test_target_forms_and_top_k(squeezenet, squeezenet_images, squeezenet_cmwp):
    x, classes = squeezenet_images
    explainer = methods.ContrastiveExcitationBackprop(squeezenet)
    assert _close(explainer.attribute(x, classes[:, 1]), squeezenet_cmwp[:, 1:])  # (N,) classes
    assert _close(explainer.attribute(x[1:], int(classes[1, 0])), squeezenet_cmwp[1:, :1])  # one int
    maps, top, _ = explainer.attribute_top_k(x[:1], k=2)
    assert torch.equal(top, classes[:1]) and _close(maps, squeezenet_cmwp[:1])


def test_cmwp_is_zero_at_the_1x1_conv_classifiers_input(squeezenet, squeezenet_images):
    # The contrast layer of SqueezeNet is the 1x1-conv classifier's input: there the dual unit's
    # MWP has the same spatial distribution as the class's, so c-MWP vanishes (module docstring).
    x, classes = squeezenet_images
    at_contrast = methods.ContrastiveExcitationBackprop(squeezenet, saliency_layer="features.12")
    maps = at_contrast.attribute(x, classes[:, :1])
    excitation_maps = methods.ExcitationBackprop(squeezenet, saliency_layer="features.12").attribute(x, 0)
    assert float(maps.max()) < 1e-4 * float(excitation_maps.max())


# ------------------------------------------------------------------------------ the model's state


def _state(module: nn.Module):
    return (
        [p.requires_grad for p in module.parameters()],
        [m.training for m in module.modules()],
        {name: p.detach().clone() for name, p in module.named_parameters()},
        [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in module.modules()],
    )


def _assert_same_state(before, after):
    assert after[0] == before[0], "requires_grad flags changed"
    assert after[1] == before[1], "training modes changed"
    assert before[2].keys() == after[2].keys()
    for name, value in before[2].items():
        assert torch.equal(after[2][name], value), f"parameter {name} changed"
    assert after[3] == before[3], "hooks left on the model"


PATCHED = ("conv2d", "linear", "batch_norm", "avg_pool2d", "adaptive_avg_pool2d")


@pytest.fixture(scope="module")
def own_squeezenet():
    """A SqueezeNet of these tests' own, with a mix of ``requires_grad`` flags (as another explainer
    might leave them) and of training modes; not the session's, which must stay as loaded."""
    model = models.load_model("squeezenet1_1", device="cpu")
    for parameter in model.module.classifier.parameters():
        parameter.requires_grad_(True)
    model.module.classifier.train()
    return model


@pytest.mark.parametrize("name", ["c-mwp", "excitation-backprop"])
def test_attribute_leaves_the_model_and_torch_as_they_were(own_squeezenet, ilsvrc_records, name):
    originals = {f: getattr(F, f) for f in PATCHED}
    before = _state(own_squeezenet.module)
    x = image_batch(own_squeezenet, ilsvrc_records, count=1)
    methods.create(name, own_squeezenet).attribute(x, [[1, 2]])
    _assert_same_state(before, _state(own_squeezenet.module))
    assert {f: getattr(F, f) for f in PATCHED} == originals  # TorchRay's patches are removed


def test_state_is_restored_when_a_call_fails(own_squeezenet, ilsvrc_records, monkeypatch):
    model = own_squeezenet
    module = model.module
    before = _state(module)
    explainer = methods.ContrastiveExcitationBackprop(model)
    calls = []

    def second_class_fails(images, classes):
        calls.append(classes)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return excitation._TorchRayExcitation._saliency(explainer, images, classes)

    monkeypatch.setattr(explainer, "_saliency", second_class_fails)
    with pytest.raises(RuntimeError, match="boom"):
        explainer.attribute(image_batch(model, ilsvrc_records, count=1), [[1, 2]])
    _assert_same_state(before, _state(module))


def test_classifier_weights_restored_on_mobilenet(mobilenet, ilsvrc_records):
    weight = mobilenet.module.classifier.weight.detach().clone()
    x = image_batch(mobilenet, ilsvrc_records, count=1)
    methods.ContrastiveExcitationBackprop(mobilenet).attribute(x, 3)
    assert torch.equal(mobilenet.module.classifier.weight, weight)
    assert not any(p.requires_grad for p in mobilenet.module.parameters())


# ------------------------------------------------------------------------------ registry and errors


def test_create_by_registry_name(squeezenet, squeezenet_images, squeezenet_cmwp):
    x, classes = squeezenet_images
    cmwp = methods.create("c-mwp", squeezenet)
    assert type(cmwp) is methods.ContrastiveExcitationBackprop
    assert (cmwp.saliency_layer, cmwp.contrast_layer, cmwp.classifier) == (
        "features.8",
        "features.12",
        "classifier.1",
    )
    assert _close(cmwp.attribute(x[:1], classes[:1, :1]), squeezenet_cmwp[:1, :1])
    eb = methods.create("excitation-backprop", squeezenet, saliency_layer="features.5")
    assert type(eb) is methods.ExcitationBackprop and eb.saliency_layer == "features.5"
    assert set(methods.settings_of(methods.ContrastiveExcitationBackprop)) == {
        "saliency_layer",
        "contrast_layer",
        "classifier",
        "num_classes",
    }
    assert set(methods.settings_of(methods.ExcitationBackprop)) == {"saliency_layer", "num_classes"}


def _tiny() -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 4, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(4, 4, 3, padding=1),
            relu2=nn.ReLU(),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(4, 3),
        )
    )


def test_unknown_model_needs_explicit_layers():
    torch.manual_seed(0)
    tiny = loaded_module(_tiny(), ["a", "b", "c"], name="tiny-net", classifier="fc")
    message = r"c-MWP has no default layers for model 'tiny-net'; known models: vgg16, alexnet"
    with pytest.raises(ValueError, match=message):
        methods.create("c-mwp", tiny)
    with pytest.raises(ValueError, match="pass saliency_layer= and contrast_layer="):
        methods.ContrastiveExcitationBackprop(tiny, saliency_layer="relu1")
    with pytest.raises(ValueError, match="Excitation Backprop has no default layers for model 'tiny-net'"):
        methods.create("excitation-backprop", tiny)
    with pytest.raises(ValueError, match="a model that is not in the registry"):
        methods.ExcitationBackprop(_tiny())
    with pytest.raises(models.UnknownLayerError, match="unknown layer 'pool5'.*conv1, relu1"):
        methods.ContrastiveExcitationBackprop(tiny, saliency_layer="pool5", contrast_layer="pool")
    x = torch.rand(2, 3, 8, 8)
    cmwp = methods.create("c-mwp", tiny, saliency_layer="relu1", contrast_layer="pool")
    maps = cmwp.attribute(x, [0, 2])
    assert maps.shape == (2, 1, 8, 8) and (maps >= 0).all()
    reference = contrastive_excitation_backprop(
        tiny.module, x, torch.tensor([0, 2]), "relu1", "pool", classifier_layer="fc"
    )
    assert _close(maps, upsample(reference, (8, 8)))
    eb = methods.ExcitationBackprop(_tiny(), saliency_layer="relu2")  # a plain module, num_classes by a pass
    assert eb.attribute(x, 1).shape == (2, 1, 8, 8)


def test_layer_table_names_layers_of_each_model(squeezenet, mobilenet):
    for loaded in (squeezenet, mobilenet):
        saliency, contrast = excitation.EXCITATION_LAYERS[loaded.name]
        loaded.layer(saliency), loaded.layer(contrast), loaded.classifier
    from torchvision import models as tvm

    with torch.device("meta"):  # the architectures only, no weights
        builds = {
            "vgg16": tvm.vgg16(),
            "alexnet": tvm.alexnet(),
            "googlenet": tvm.googlenet(aux_logits=False, init_weights=False),
        }
    assert set(excitation.EXCITATION_LAYERS) == set(builds) | {"squeezenet1_1", "mobilenet_v1_0.75"}
    for name, module in builds.items():
        for layer in (*excitation.EXCITATION_LAYERS[name], models.get_spec(name).classifier):
            models.get_layer(module, layer)
    assert isinstance(builds["vgg16"].features[23], nn.MaxPool2d)  # pool4
    assert isinstance(builds["vgg16"].classifier[4], nn.ReLU)  # relu7
    assert isinstance(builds["alexnet"].features[5], nn.MaxPool2d)  # pool2
    assert isinstance(builds["alexnet"].classifier[5], nn.ReLU)  # relu7
