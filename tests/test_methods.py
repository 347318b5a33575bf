"""Explanation methods against independent oracles: captum, pytorch-grad-cam, and closed forms
on tiny hand-made examples; real embedded models and images where a model is needed."""

from __future__ import annotations

import copy
import inspect
import math

import numpy as np
import pytest
import torch
from torch import nn

from gradcam_core import methods, models
from gradcam_core.maps import normalize_maps, reduce_channels
from tests.helpers import image_batch

# ------------------------------------------------------------------------------ targets


def test_targets_forms_and_out_of_range_class():
    assert methods.as_class_targets(3, 2, 10, "cpu").tolist() == [[3], [3]]
    assert methods.as_class_targets([1, 2], 2, 10, "cpu").tolist() == [[1], [2]]
    assert methods.as_class_targets([[1, 2], [3, 4]], 2, 10, "cpu").shape == (2, 2)
    with pytest.raises(ValueError, match="class index 1000 out of range.*1000 classes"):
        methods.as_class_targets([[5, 1000]], 1, 1000, "cpu")
    with pytest.raises(ValueError, match="target must be"):
        methods.as_class_targets([1, 2, 3], 2, 10, "cpu")


def test_explainer_class_targets_use_the_models_class_count(squeezenet):
    x = torch.zeros(2, 3, 224, 224)
    explainer = methods.GradCAM(squeezenet)
    assert explainer.class_targets(x, 7).tolist() == [[7], [7]]
    assert explainer.class_targets(x, [[1, 999], [0, 5]]).tolist() == [[1, 999], [0, 5]]
    with pytest.raises(ValueError, match="class index 1000 out of range: the model has 1000 classes"):
        explainer.class_targets(x, [0, 1000])
    # a plain module: the number of classes comes from one forward pass
    plain = methods.Saliency(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)))
    assert plain.num_classes(torch.zeros(2, 3, 2, 2)) == 3
    with pytest.raises(ValueError, match="class index 3 out of range: the model has 3 classes"):
        plain.class_targets(torch.zeros(2, 3, 2, 2), 3)


def test_out_of_range_class_through_explainer(squeezenet, ilsvrc_records):
    x = image_batch(squeezenet, ilsvrc_records, 1)
    with pytest.raises(ValueError, match="class index 1000 out of range"):
        methods.GradCAM(squeezenet).attribute(x, 1000)
    with pytest.raises(ValueError, match="class index -1 out of range"):
        methods.GuidedBackprop(squeezenet).attribute(x, -1)


def test_unknown_layer_through_explainer(squeezenet):
    with pytest.raises(models.UnknownLayerError, match="features.12.expand3x3"):
        methods.GradCAM(squeezenet, layer="conv5_3")


# ------------------------------------------------------------------------------ Grad-CAM


@pytest.fixture(scope="module")
def top5(embedded_model, ilsvrc_records):
    x = image_batch(embedded_model, ilsvrc_records, 4, start=10)
    maps, classes, logits = methods.GradCAM(embedded_model).attribute_top_k(x, 5)
    return x, maps, classes, logits


def test_gradcam_top_k_shapes_and_classes(embedded_model, top5):
    x, maps, classes, logits = top5
    assert maps.shape == (4, 5, 224, 224) and (maps >= 0).all()
    assert torch.equal(classes, logits.topk(5, 1).indices)


def test_gradcam_equals_captum_layer_gradcam(embedded_model, top5):
    from captum.attr import LayerAttribution, LayerGradCam

    x, maps, classes, _ = top5
    oracle = LayerGradCam(embedded_model.module, embedded_model.layer())
    for k in range(5):
        ref = oracle.attribute(x, target=classes[:, k], relu_attributions=True)
        ref = LayerAttribution.interpolate(ref, (224, 224), "bilinear")[:, 0]
        ref = ref.detach()
        assert (ref - maps[:, k]).abs().max() <= 1e-4 * max(1.0, float(ref.abs().max()))  # raw maps too
        assert (normalize_maps(ref) - normalize_maps(maps[:, k])).abs().max() <= 1e-4


def _trainable(model):
    module = copy.deepcopy(model.module)
    for p in module.parameters():
        p.requires_grad_(True)  # pytorch-grad-cam needs a graph through the parameters
    return module


def test_gradcam_equals_pytorch_grad_cam(embedded_model, top5):
    from pytorch_grad_cam import GradCAM as Oracle
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x, maps, classes, _ = top5
    module = _trainable(embedded_model)
    oracle = Oracle(module, [models.get_layer(module, embedded_model.spec.target_layer)])
    for k in range(5):
        ref = torch.as_tensor(oracle(x, targets=[ClassifierOutputTarget(int(c)) for c in classes[:, k]]))
        # pytorch-grad-cam normalises with a 1e-7 guard before resizing; bring both to our normaliser
        assert (normalize_maps(ref) - normalize_maps(maps[:, k])).abs().max() <= 1e-4


def test_gradcam_differentiates_only_the_target_activations(squeezenet, ilsvrc_records):
    x = image_batch(squeezenet, ilsvrc_records, 2)
    explainer = methods.GradCAM(squeezenet)
    forward = explainer.forward(x)
    assert isinstance(forward, methods.LayerForward) and forward.input_size == (224, 224)
    assert forward.activations.is_leaf and forward.activations.requires_grad
    assert forward.activations.shape == (2, 512, 13, 13)  # SqueezeNet 1.1's features.12
    assert not x.requires_grad and not any(p.requires_grad for p in squeezenet.module.parameters())
    assert forward.features.requires_grad  # classifier input depends on the activations only
    with torch.no_grad():
        assert torch.allclose(forward.logits.detach(), squeezenet(x), atol=1e-5)


def test_one_forward_pass_serves_every_member_of_the_family(squeezenet, ilsvrc_records):
    """The public two-step pair: maps(forward, classes) of Grad-CAM, Grad-CAM++ and CAM from one
    shared forward pass equal each method's own attribute()."""
    x = image_batch(squeezenet, ilsvrc_records, 2, start=7)
    gradcam = methods.GradCAM(squeezenet)
    forward = gradcam.forward(x)
    classes = forward.logits.detach().topk(3, dim=1).indices
    for method in (gradcam, methods.GradCAMPlusPlus(squeezenet), methods.CAM(squeezenet)):
        shared = method.maps(forward, classes)
        own = method.attribute(x, classes)
        assert shared.shape == (2, 3, 224, 224)
        assert torch.allclose(shared, own, rtol=1e-5, atol=1e-6 * float(own.abs().max())), type(method)
    # maps() may be called again on the same pass (the graph is kept for it)
    assert torch.equal(gradcam.maps(forward, classes[:, :1]), gradcam.maps(forward, classes[:, :1]))


def test_class_scores_that_disagree_with_the_logits_are_refused(squeezenet, ilsvrc_records):
    x = image_batch(squeezenet, ilsvrc_records, 1)
    doubled = methods.GradCAM(squeezenet, class_scores=lambda z: 2 * models.scores_relu_avgpool(z))
    with pytest.raises(RuntimeError, match="class scores computed from the classifier layer disagree"):
        doubled.attribute(x, 3)


def test_cam_family_needs_a_layer_and_cam_a_classifier():
    plain = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    with pytest.raises(ValueError, match="layer is required for a model that is not in the registry"):
        methods.GradCAM(plain)
    with pytest.raises(ValueError, match="CAM needs the classifier layer"):
        methods.CAM(plain, layer="1")
    cam = methods.CAM(plain, layer="1", classifier="4")
    x = torch.rand(1, 3, 3, 3)
    # closed form: ReLU(sum_k w[c, k] A_k), A = ReLU(conv(x)); the layer is at input size
    activations = torch.relu(plain[0](x))
    expected = torch.relu(torch.einsum("k,nkhw->nhw", plain[4].weight[1], activations))
    assert torch.allclose(cam.attribute(x, 1)[:, 0], expected.detach(), atol=1e-6)


# ------------------------------------------------------------------------------ Grad-CAM++


class _SquareHead(nn.Module):
    """A layer ``features`` (identity on the input A) and a score S_c = sum_k W[c,k] sum_ij A_kij^2 / 2,
    so dS_c/dA_kij = W[c,k] A_kij."""

    def __init__(self, weight):
        super().__init__()
        self.features = nn.Identity()
        self.weight = weight

    def forward(self, x):
        a = self.features(x)
        return torch.einsum("ck,nk->nc", self.weight, (a * a).sum(dim=(2, 3)) / 2)


def test_gradcam_plus_plus_closed_form_on_hand_computed_example():
    # One image, two channels of 2x2 activations, one class with channel weights (1, -1).
    a0 = [[1.0, 2.0], [0.0, 1.0]]
    a1 = [[1.0, 0.0], [0.0, 1.0]]
    x = torch.tensor([[a0, a1]])
    model = _SquareHead(torch.tensor([[1.0, -1.0]]))
    raw = methods.GradCAMPlusPlus(model, layer="features", num_classes=1).attribute(x, 0)
    # By hand. S = (1+4+0+1)/2 - (1+0+0+1)/2 = 2.
    # Channel 0: g = A, sum A = 4, alpha_ij = g^2/(2g^2 + 4 g^3) = 1/(2 + 4A) where g != 0:
    #   alpha = [[1/6, 1/10], [0, 1/6]];  sum alpha*relu(g) = 1/6 + 2/10 + 1/6 = 8/15.
    # Channel 1: g = -A <= 0, so relu(g) = 0 and the weight is 0.
    # w = exp(S) * (8/15, 0); map = relu(w0 * A0) = e^2 * 8/15 * A0 (2x2 layer = input size).
    expected = math.exp(2.0) * 8.0 / 15.0 * torch.tensor(a0, dtype=torch.float64)
    assert torch.allclose(raw[0, 0], expected, rtol=1e-12)


def test_gradcam_plus_plus_matches_pytorch_grad_cam_where_its_epsilon_is_negligible():
    """pytorch-grad-cam drops exp(S) (a per-map constant, gone after normalisation) and adds 1e-6
    to the alpha denominator. With gradients of order 1 that epsilon is negligible and the
    normalised maps must agree. (On SqueezeNet, whose gradients are ~1e-3, its epsilon is of the
    order of g^2 and distorts its maps; ours follow the closed form.)"""
    from pytorch_grad_cam import GradCAMPlusPlus as Oracle
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    model = _SquareHead(torch.tensor([[1.0, -0.5, 2.0], [0.3, 1.0, -1.0]]))
    stem = nn.Conv2d(3, 3, 1, bias=False)  # identity, trainable: pytorch-grad-cam needs a graph
    stem.weight.data = torch.eye(3).view(3, 3, 1, 1)
    net = nn.Sequential(stem, model)
    x = torch.rand(2, 3, 5, 5) * 2 + 0.5
    ours = methods.GradCAMPlusPlus(net, layer="1.features", num_classes=2).attribute(x, [[0, 1], [1, 0]])
    oracle = Oracle(net, [net[1].features])
    for k, classes in enumerate(([0, 1], [1, 0])):
        ref = torch.as_tensor(oracle(x, targets=[ClassifierOutputTarget(c) for c in classes]))
        assert (normalize_maps(ref).double() - normalize_maps(ours[:, k])).abs().max() <= 1e-4


# ------------------------------------------------------------------------------ Guided Backprop


def test_only_guided_backprop_uses_guided_relus(squeezenet, ilsvrc_records):
    assert not methods.Saliency.uses_guided_relus and methods.GuidedBackprop.uses_guided_relus
    x = image_batch(squeezenet, ilsvrc_records, 1, start=2)
    plain = methods.Saliency(squeezenet).attribute_pixels(x, 472)
    # Saliency is the plain input gradient of the class score
    x_grad = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (oracle,) = torch.autograd.grad(squeezenet.module(x_grad)[0, 472], x_grad)
    assert torch.allclose(plain[0, 0], oracle, atol=1e-6 * float(oracle.abs().max()))
    assert not torch.allclose(plain, methods.GuidedBackprop(squeezenet).attribute_pixels(x, 472))


def test_guided_backprop_equals_captum_on_nn_relu_model(squeezenet, ilsvrc_records):
    from captum.attr import GuidedBackprop as Oracle

    x = image_batch(squeezenet, ilsvrc_records, 2, start=5)
    targets = torch.tensor([[472, 10], [260, 3]])
    ours = methods.GuidedBackprop(squeezenet).attribute_pixels(x, targets)
    module = copy.deepcopy(squeezenet.module)
    for m in module.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False  # captum's module hooks cannot wrap in-place ReLUs
    oracle = Oracle(module)
    for k in range(2):
        ref = oracle.attribute(x, target=targets[:, k])
        assert (ref - ours[:, k]).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))


class _ReluSpy(torch.overrides.TorchFunctionMode):
    """Records, for every ReLU call of the forward pass, the gradient that reaches its input."""

    def __init__(self):
        super().__init__()
        self.input_grads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.nn.functional.relu, torch.relu, torch.Tensor.relu, torch.nn.functional.hardtanh):
            x = args[0]
            if x.requires_grad:
                x.register_hook(lambda g: self.input_grads.append(g.detach()))
        return func(*args, **kwargs)


def test_guided_backprop_passes_no_negative_gradient_through_googlenet_relus():
    import torchvision

    torch.manual_seed(0)
    googlenet = models.prepare(
        torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False), torch.device("cpu")
    )
    assert not any(isinstance(m, nn.ReLU) for m in googlenet.modules())  # F.relu only
    x = torch.randn(2, 3, 224, 224).requires_grad_(True)

    with methods.guided_relus(), _ReluSpy() as spy:  # spy sits above the guided rule
        googlenet(x)[:, 7].sum().backward()
    assert len(spy.input_grads) > 50
    assert all((g >= 0).all() for g in spy.input_grads)
    guided = x.grad.clone()

    x.grad = None
    with _ReluSpy() as plain_spy:
        googlenet(x)[:, 7].sum().backward()
    assert any((g < 0).any() for g in plain_spy.input_grads)  # the check above can fail
    assert not torch.allclose(guided, x.grad, rtol=1e-2, atol=0)

    # the public method gives the same guided gradient
    ours = methods.GuidedBackprop(googlenet, num_classes=1000).attribute_pixels(x.detach(), 7)[:, 0]
    assert (ours - guided).abs().max() <= 1e-5 * guided.abs().max()


def test_guided_backprop_handles_relu6_and_inplace_relu():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.ReLU6(),
        nn.Conv2d(4, 4, 3),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    torch.manual_seed(1)
    model = models.prepare(model, torch.device("cpu"))
    x = torch.randn(2, 3, 8, 8)
    with methods.guided_relus(), _ReluSpy() as spy:  # spy above the guided rule
        model(x.requires_grad_(True))[:, 1].sum().backward()
    assert len(spy.input_grads) == 2
    assert spy.input_grads and all((g >= 0).all() for g in spy.input_grads)


def test_guided_gradcam_is_guided_backprop_times_upsampled_gradcam(squeezenet, ilsvrc_records):
    x = image_batch(squeezenet, ilsvrc_records, 2)
    targets = torch.tensor([[472], [260]])
    explainer = methods.GuidedGradCAM(squeezenet)
    assert (
        type(explainer.grad_cam) is methods.GradCAM
        and type(explainer.guided_backprop) is methods.GuidedBackprop
    )
    ggc = explainer.attribute_pixels(x, targets)
    gb = methods.GuidedBackprop(squeezenet).attribute_pixels(x, targets)
    cam = methods.GradCAM(squeezenet).attribute(x, targets)
    assert torch.allclose(ggc, gb * cam[:, :, None])
    assert methods.GuidedGradCAM(squeezenet).attribute(x, targets).shape == (2, 1, 224, 224)


# ------------------------------------------------------------------------------ Occlusion


def test_occlusion_equals_captum_occlusion(squeezenet, ilsvrc_records):
    from captum.attr import Occlusion as Oracle

    x = image_batch(squeezenet, ilsvrc_records, 2)
    targets = torch.tensor([[472, 3], [260, 1]])
    ours = methods.Occlusion(squeezenet, patch_size=64, stride=40, fill=0.5).attribute(x, targets)
    oracle = Oracle(squeezenet.module)
    for k in range(2):
        ref = oracle.attribute(
            x,
            sliding_window_shapes=(3, 64, 64),
            strides=(3, 40, 40),
            baselines=0.5,
            target=targets[:, k],
            perturbations_per_eval=32,
        )
        assert torch.allclose(ref[:, 0], ref[:, 2])
        assert (ref[:, 0] - ours[:, k]).abs().max() <= 1e-4 * max(1.0, float(ref.abs().max()))


def test_occlusion_windows_cover_every_pixel_and_bad_parameters():
    occ = methods.Occlusion(nn.Identity(), patch_size=3, stride=2, num_classes=1)
    masks = occ.windows(5, 6)
    # rows start at 0, 2 (ceil((5-3)/2)+1 = 2); cols at 0, 2, 4 (last clipped to width 6)
    assert masks.shape == (6, 5, 6) and masks.any(0).all()
    assert masks[5].nonzero().min(0).values.tolist() == [2, 4]
    with pytest.raises(ValueError, match="stride 5 larger than patch_size 3"):
        methods.Occlusion(nn.Identity(), patch_size=3, stride=5)
    with pytest.raises(ValueError, match="patch_size 9 exceeds"):
        methods.Occlusion(nn.Identity(), patch_size=9, stride=2).windows(5, 5)


# ------------------------------------------------------------------------------ IG, SHAP


def _linear_model():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    return models.prepare(model, torch.device("cpu"))


def test_integrated_gradients_closed_form_on_linear_model():
    model = _linear_model()
    x = torch.randn(2, 3, 4, 4)
    ig = methods.IntegratedGradients(model, n_steps=8, baseline=0.0).attribute_pixels(x, [[1, 4], [0, 2]])
    weight = model[1].weight.view(5, 3, 4, 4)
    # for a linear score, IG = (x - baseline) * w exactly
    assert torch.allclose(ig[0, 1], x[0] * weight[4], atol=1e-6)
    assert torch.allclose(ig[1, 0], x[1] * weight[0], atol=1e-6)


def test_integrated_gradients_completeness_on_real_model(squeezenet, ilsvrc_records):
    x = image_batch(squeezenet, ilsvrc_records, 1)
    ig = methods.IntegratedGradients(squeezenet, n_steps=64).attribute_pixels(x, 472)
    with torch.no_grad():
        gap = squeezenet(x)[0, 472] - squeezenet(torch.zeros_like(x))[0, 472]
    assert abs(float(ig.sum()) - float(gap)) <= 0.05 * abs(float(gap))  # Eq. 3 (completeness)


@pytest.mark.parametrize("method", ["gradient-shap", "shap-gradient-explainer"])
def test_shap_methods_closed_form_on_linear_model(method):
    """captum's GradientShap and shap's GradientExplainer, the same estimator, both give the
    exact SHAP values of a linear model with one reference point."""
    model = _linear_model()
    x = torch.randn(2, 3, 4, 4)
    background = torch.randn(1, 3, 4, 4)
    explainer = methods.create(method, model, background=background, n_samples=16, seed=0)
    values = explainer.attribute_pixels(x, [[1, 4], [0, 2]])
    weight = model[1].weight.view(5, 3, 4, 4)
    # one reference point, linear score: SHAP = (x - reference) * w
    assert torch.allclose(values[0, 1], (x[0] - background[0]) * weight[4], atol=1e-5)
    assert torch.allclose(values[1, 1], (x[1] - background[0]) * weight[2], atol=1e-5)
    assert torch.equal(values, explainer.attribute_pixels(x, [[1, 4], [0, 2]]))  # seeded
    assert explainer.attribute(x, [[1, 4], [0, 2]]).shape == (2, 2, 4, 4)
    # colour channels summed (captum's convention for signed attributions)
    assert torch.allclose(explainer.attribute(x, [[1, 4], [0, 2]]), values.sum(dim=2), atol=1e-6)


def test_shap_gradient_explainer_agrees_with_captum_gradient_shap():
    """shap's GradientExplainer is GradientShap's estimator with the same settings: on a linear
    model both are exact, so they agree to float precision for every class."""
    assert issubclass(methods.ShapGradientExplainer, methods.GradientShap)
    shap_settings = methods.settings_of(methods.ShapGradientExplainer)
    assert list(shap_settings) == list(methods.settings_of(methods.GradientShap))  # the same names
    assert shap_settings["n_samples"].default == 64  # one image at a time, it can afford more samples
    model = _linear_model()
    x, background = torch.randn(3, 3, 4, 4), torch.randn(1, 3, 4, 4)
    targets = [[0, 1, 2], [3, 4, 0], [2, 2, 1]]
    captum = methods.GradientShap(model, background=background, n_samples=8, seed=1)
    shap = methods.ShapGradientExplainer(model, background=background, n_samples=8, seed=1)
    assert torch.allclose(captum.attribute_pixels(x, targets), shap.attribute_pixels(x, targets), atol=1e-5)


def test_method_table_names_each_class_once():
    assert {
        "grad-cam": methods.GradCAM,
        "grad-cam++": methods.GradCAMPlusPlus,
        "cam": methods.CAM,
        "backprop": methods.Saliency,
        "guided-backprop": methods.GuidedBackprop,
        "guided-grad-cam": methods.GuidedGradCAM,
        "occlusion": methods.Occlusion,
        "integrated-gradients": methods.IntegratedGradients,
        "gradient-shap": methods.GradientShap,
        "shap-gradient-explainer": methods.ShapGradientExplainer,
        "c-mwp": methods.ContrastiveExcitationBackprop,
        "excitation-backprop": methods.ExcitationBackprop,
        "hirescam": methods.HiResCAM,
        "xgrad-cam": methods.XGradCAM,
        "layer-cam": methods.LayerCAM,
        "score-cam": methods.ScoreCAM,
    } == methods.METHODS
    assert "shap" not in methods.METHODS


@pytest.mark.parametrize("name", list(methods.METHODS))
def test_create_builds_every_registered_method(squeezenet, name):
    settings = {"background": torch.zeros(1, 3, 224, 224)} if "shap" in name else {}
    explainer = methods.create(name, squeezenet, **settings)
    assert type(explainer) is methods.METHODS[name]
    assert explainer.module is squeezenet.module and explainer.spec is squeezenet.spec


def test_create_passes_the_settings_on(squeezenet):
    ig = methods.create("integrated-gradients", squeezenet, n_steps=5, baseline=0.5, reduction="abs_max")
    assert (ig.n_steps, ig.baseline, ig.reduction) == (5, 0.5, "abs_max")
    background = torch.ones(2, 3, 224, 224)
    shap = methods.create("gradient-shap", squeezenet, background=background, n_samples=3, stdevs=0.1, seed=9)
    assert shap.background is background and (shap.n_samples, shap.stdevs, shap.seed) == (3, 0.1, 9)
    occlusion = methods.create("occlusion", squeezenet, patch_size=20, stride=10)
    assert (occlusion.patch_size, occlusion.stride) == (20, 10)
    assert methods.create("grad-cam", squeezenet, layer="features.11").layer_name == "features.11"


def test_settings_of_follows_kwargs_to_the_base_classes():
    assert set(methods.settings_of(methods.GradCAM)) == {"layer", "classifier", "class_scores", "num_classes"}
    assert set(methods.settings_of(methods.CAM)) == {"layer", "classifier", "num_classes"}
    assert set(methods.settings_of(methods.IntegratedGradients)) == {
        "n_steps",
        "baseline",
        "internal_batch_size",
        "reduction",
        "num_classes",
    }
    shap = methods.settings_of(methods.GradientShap)
    assert set(shap) == {"background", "n_samples", "stdevs", "seed", "reduction", "num_classes"}
    assert shap["background"].default is inspect.Parameter.empty and shap["n_samples"].default == 32


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("lime", {}, r"unknown method 'lime'; known methods: grad-cam, grad-cam\+\+, cam"),
        ("shap", {}, "unknown method 'shap'; known methods:.*shap-gradient-explainer"),
        ("grad-cam", {"n_steps": 4}, r"method 'grad-cam' has no setting\(s\) \['n_steps'\]"),
        (
            "integrated-gradients",
            {"steps": 4, "n_sample": 2},
            r"method 'integrated-gradients' has no setting\(s\) \['n_sample', 'steps'\]; "
            r"its settings: n_steps",
        ),
        ("gradient-shap", {}, r"method 'gradient-shap' needs the setting\(s\) \['background'\]"),
        ("shap-gradient-explainer", {"n_samples": 4}, r"needs the setting\(s\) \['background'\]"),
    ],
)
def test_create_errors_name_the_method_and_setting(squeezenet, name, settings, message):
    with pytest.raises(ValueError, match=message):
        methods.create(name, squeezenet, **settings)


def test_path_methods_take_reduction_and_num_classes_as_keywords():
    model = _linear_model()
    x = torch.randn(2, 3, 4, 4)
    ig = methods.IntegratedGradients(model, n_steps=4, reduction="abs_max", num_classes=5)
    assert ig.reduction == "abs_max" and ig.num_classes(x) == 5
    assert torch.equal(ig.attribute(x, [1, 2]), reduce_channels(ig.attribute_pixels(x, [1, 2]), "abs_max"))
    assert methods.IntegratedGradients(model).reduction == "sum"
    shap = methods.GradientShap(model, torch.zeros(1, 3, 4, 4), reduction="abs_max", num_classes=5)
    assert shap.reduction == "abs_max" and shap.num_classes(x) == 5


# ------------------------------------------------------------------------------ CAM


def test_cam_equals_gradcam_times_map_size_on_gap_linear_model(mobilenet, ilsvrc_records):
    """Paper Sec. 3.1: for global average pooling followed by a linear classifier, Grad-CAM's
    weights are CAM's weights divided by the number of positions Z (7x7 here)."""
    x = image_batch(mobilenet, ilsvrc_records, 2, start=3)
    cam, classes, _ = methods.CAM(mobilenet).attribute_top_k(x, 3)
    gradcam = methods.GradCAM(mobilenet).attribute(x, classes)
    assert torch.allclose(cam / 49.0, gradcam, rtol=1e-4, atol=1e-6)


def test_cam_refuses_models_without_gap_classifier():
    spec = models.get_spec("vgg16")
    import torchvision

    module = models.prepare(torchvision.models.vgg16(weights=None), torch.device("cpu"))
    with pytest.raises(ValueError, match="CAM does not apply to vgg16"):
        methods.CAM(models.LoadedModel(spec, module, spec.class_names(), torch.device("cpu")))


def test_gradient_shap_is_seeded_on_a_nonlinear_model_and_leaves_global_rngs_alone():
    # On a linear model any path coefficient gives the same answer; a ReLU network does not,
    # so this catches an unseeded draw (captum draws its coefficients with numpy's generator).
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 16, 4)
    ).eval()
    x, background = torch.randn(2, 3, 4, 4), torch.randn(5, 3, 4, 4)
    explainer = methods.GradientShap(model, background=background, n_samples=8, seed=3)
    first = explainer.attribute_pixels(x, [1, 2])
    # numpy's legacy global generator on purpose: captum draws from it, and it must be restored
    np.random.seed(123)  # noqa: NPY002 -- the global stream under test
    expected_next = np.random.rand()  # noqa: NPY002 -- the global stream under test
    np.random.seed(123)  # noqa: NPY002 -- the global stream under test
    second = explainer.attribute_pixels(x, [1, 2])
    assert torch.equal(first, second)
    assert np.random.rand() == expected_next  # noqa: NPY002 -- numpy's global stream was restored
    other = methods.GradientShap(model, background=background, n_samples=8, seed=4).attribute_pixels(
        x, [1, 2]
    )
    assert not torch.equal(first, other)  # the seed matters, so the check above can fail


def test_grad_cam_plus_plus_stays_finite_for_huge_scores():
    # an untrained network can score far above 709, where exp() overflows float64
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(2, 2),
    )
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
        model[4].weight.fill_(1.0)
        model[4].bias.fill_(5000.0)
    x = torch.rand(1, 1, 4, 4) + 0.5
    maps = methods.GradCAMPlusPlus(model, layer="1", num_classes=2).attribute(x, 0)
    assert torch.isfinite(maps).all() and maps.max() > 0
    reference = methods.GradCAMPlusPlus(model, layer="1", num_classes=2)
    with torch.no_grad():
        model[4].bias.fill_(0.0)  # same gradients, small score: same normalised map
    small = reference.attribute(x, 0)
    assert torch.allclose(normalize_maps(maps), normalize_maps(small), atol=1e-6)
    # raw scale: the capped factor exp(MAX_EXPONENT) in place of exp(S) for the small score S
    assert methods.GradCAMPlusPlus.MAX_EXPONENT == 700.0
    with torch.no_grad():
        score = float(model(x)[0, 0])
    inside = small > 0
    ratio = maps[inside] / small[inside]
    assert torch.allclose(ratio, torch.full_like(ratio, math.exp(700.0 - score)), rtol=1e-9)
