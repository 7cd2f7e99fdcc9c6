"""Bad input gets a clear error that names the problem, before any work is done."""

from __future__ import annotations

import pytest
import torch
from conftest import EVERY_METHOD, TwiceReLU, images, small_cnn

from gradviz_lab.attribution import (
    gradcam,
    guided_gradcam,
    input_gradient,
    integrated_gradients,
    layer_gradients,
    max_response,
    occlusion,
    saliency,
    smoothgrad,
    window_starts,
)


names = list(EVERY_METHOD)


@pytest.fixture(scope="module")
def model():
    return small_cnn()  # 3 input channels, 5 classes


@pytest.mark.parametrize("name", names)
def test_a_single_image_without_batch_dimension_is_refused(model, name):
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*unsqueeze\(0\)"):
        EVERY_METHOD[name](model, images(1)[0])


@pytest.mark.parametrize("name", names)
@pytest.mark.parametrize("shape", [(8,), (1, 3, 8, 8, 1)])
def test_wrong_rank_is_refused(model, name, shape):
    with pytest.raises(ValueError, match="must be a batch of images of shape"):
        EVERY_METHOD[name](model, torch.rand(shape))


@pytest.mark.parametrize("name", names)
def test_channel_count_not_matching_the_model(model, name):
    with pytest.raises(ValueError, match="x has 1 channels but the model's first convolution "
                                         r"\(conv1\) expects 3"):
        EVERY_METHOD[name](model, torch.rand(2, 1, 8, 8))


@pytest.mark.parametrize("name", names)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_refused(model, name, bad):
    x = images(2)
    x[1, 2, 3, 4] = bad
    with pytest.raises(ValueError, match="x contains non-finite values"):
        EVERY_METHOD[name](model, x)


@pytest.mark.parametrize("name", names)
def test_non_tensor_integer_and_empty_inputs(model, name):
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        EVERY_METHOD[name](model, images(1).numpy())
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        EVERY_METHOD[name](model, torch.ones(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty batch"):
        EVERY_METHOD[name](model, torch.rand(0, 3, 8, 8))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        EVERY_METHOD[name](lambda x: x, images(1))


@pytest.mark.parametrize("name", names)
def test_dtype_not_matching_the_model(model, name):
    with pytest.raises(TypeError, match="x has dtype torch.float64 but the model uses "
                                        "torch.float32"):
        EVERY_METHOD[name](model, images(1, dtype=torch.float64))


@pytest.mark.parametrize("name", names)
@pytest.mark.parametrize("target", [5, -1, [0, 7]])
def test_target_class_out_of_range(model, name, target):
    with pytest.raises(ValueError, match=r"target class out of range.*valid classes are 0\.\.4"):
        EVERY_METHOD[name](model, images(2), target)


@pytest.mark.parametrize("name", names)
def test_out_of_range_message_names_each_wrong_class_once(model, name):
    """SmoothGrad and IG score many copies per image: the message still names the user's values."""
    with pytest.raises(ValueError, match=r"target class out of range: got \[7\], valid"):
        EVERY_METHOD[name](model, images(2), [0, 7])


@pytest.mark.parametrize("name", names)
def test_numpy_integer_targets_are_accepted(model, name):
    import numpy as np

    x = images(2)
    expected = EVERY_METHOD[name](model, x, [1, 3])
    for target in (np.array([1, 3]), [np.int64(1), np.int64(3)]):
        torch.testing.assert_close(EVERY_METHOD[name](model, x, target), expected)
    torch.testing.assert_close(EVERY_METHOD[name](model, x, np.int64(2)), EVERY_METHOD[name](model, x, 2))


@pytest.mark.parametrize("name", names)
@pytest.mark.parametrize("target", [[0], [0, 1, 2], torch.tensor([1, 1, 1])])
def test_target_of_the_wrong_length(model, name, target):
    with pytest.raises(ValueError, match="target has .* class indices but the batch has 2 images"):
        EVERY_METHOD[name](model, images(2), target)


@pytest.mark.parametrize("name", names)
def test_class_names_are_accepted_where_the_model_carries_them(name):
    """issue 18: target="circle" on a model with .classes (the lab models) or .categories
    (torchvision's) means that class's index, one name or one per image."""
    model, x = small_cnn(), images(2)
    model.classes = ("circle", "square", "triangle", "cross", "star")
    method = EVERY_METHOD[name]
    torch.testing.assert_close(method(model, x, "cross"), method(model, x, 3), rtol=0, atol=0)
    torch.testing.assert_close(method(model, x, ["star", "circle"]), method(model, x, [4, 0]), rtol=0, atol=0)
    del model.classes
    model.categories = ["a", "b", "c", "d", "e"]
    torch.testing.assert_close(method(model, x, "b"), method(model, x, 1), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"unknown class name 'f'; the model's classes are: a, b, c, d, e"):
        method(model, x, "f")
    model.categories = ["circle", "square", "triangle", "cross", "star"]
    with pytest.raises(ValueError, match=r"'circel' \(did you mean 'circle'\?\)"):
        method(model, x, ["square", "circel"])


@pytest.mark.parametrize("name", names)
def test_a_class_name_without_the_models_class_names_says_to_pass_an_index(model, name):
    with pytest.raises(TypeError, match=r"carries no class names .* class_names.index\('cat'\)"):
        EVERY_METHOD[name](model, images(2), "cat")


@pytest.mark.parametrize("name", names)
def test_target_of_the_wrong_type(model, name):
    with pytest.raises(TypeError, match="target"):
        EVERY_METHOD[name](model, images(2), "cat")
    with pytest.raises(TypeError, match="target"):
        EVERY_METHOD[name](model, images(2), 1.5)
    with pytest.raises(TypeError, match="target tensor must hold integers"):
        EVERY_METHOD[name](model, images(2), torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("name", names)
def test_callable_target_must_return_one_score_per_image(model, name):
    # (smoothgrad and integrated gradients score batches of copies: 4 rows here)
    with pytest.raises(ValueError, match=r"one score per image, shape \((2|4),\), "
                                         r"got \((2|4), 5\)"):
        EVERY_METHOD[name](model, images(2), lambda out: out)


def test_a_non_logit_output_needs_a_callable_target():
    trunk = small_cnn()[:5]  # stops at the second ReLU: (B, 8, 4, 4) feature maps
    with pytest.raises(ValueError, match="not \\(B, num_classes\\).*callable target"):
        input_gradient(trunk, images(1))
    out = input_gradient(trunk, images(1), lambda o: o.flatten(1).amax(1))
    assert out.shape == (1, 3, 8, 8)


@pytest.mark.parametrize("call", [
    lambda m, x: gradcam(m, x, layer="conv3"),
    lambda m, x: guided_gradcam(m, x, layer="conv3"),
    lambda m, x: layer_gradients(m, x, "conv3"),
])
def test_unknown_layer_lists_close_matches_and_valid_names(model, call):
    with pytest.raises(ValueError) as error:
        call(model, images(1))
    message = str(error.value)
    assert "unknown layer 'conv3'" in message
    assert "Did you mean conv1, conv2" in message or "Did you mean conv2, conv1" in message
    for name in ("conv1", "relu1", "pool", "conv2", "relu2", "gap", "flat", "fc"):
        assert name in message


def test_layer_module_not_in_the_model(model):
    with pytest.raises(ValueError, match="not a submodule"):
        gradcam(model, images(1), layer=torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(TypeError, match="layer must be a module or a dotted name"):
        gradcam(model, images(1), layer=3)


def test_gradcam_layer_must_output_feature_maps(model):
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        gradcam(model, images(1), layer="fc")


def test_layer_that_does_not_run_or_runs_twice():
    net = TwiceReLU()
    with pytest.raises(ValueError, match="layer 'relu' ran 2 times"):
        gradcam(net, images(1), layer="relu")
    unused = TwiceReLU()
    unused.spare = torch.nn.Conv2d(3, 3, 1)  # registered, never called by forward
    with pytest.raises(ValueError, match="layer 'spare' ran 0 times"):
        gradcam(unused, images(1), layer="spare")


@pytest.mark.parametrize("window", [(9, 2), (2, 9), 9])
def test_window_larger_than_the_image(model, window):
    with pytest.raises(ValueError, match=r"window .* is larger than the image \(8, 8\)"):
        occlusion(model, images(1), window=window)


@pytest.mark.parametrize("knob, value, error, message", [
    ("stride", 0, ValueError, "stride\\[0\\] must be >= 1, got 0"),
    ("stride", (2, -1), ValueError, "stride\\[1\\] must be >= 1, got -1"),
    ("stride", 1.5, TypeError, "stride must be an int or a pair"),
    ("window", 0, ValueError, "window\\[0\\] must be >= 1"),
    ("batch_size", 0, ValueError, "batch_size must be >= 1"),
    ("baseline", float("nan"), ValueError, "baseline must be finite"),
    ("baseline", torch.zeros(3, 4, 4), ValueError, "baseline must have shape"),
])
def test_occlusion_knobs(model, knob, value, error, message):
    with pytest.raises(error, match=message):
        occlusion(model, images(1), **{knob: value})


@pytest.mark.parametrize("knob, value, error, message", [
    ("steps", 0, ValueError, "steps must be >= 1, got 0"),
    ("steps", -3, ValueError, "steps must be >= 1, got -3"),
    ("steps", 2.0, TypeError, "steps must be an int"),
    ("rule", "simpson", ValueError, "rule must be one of"),
    ("baseline", "white", ValueError, "baseline must be one of"),
    ("baseline", torch.full((3, 8, 8), float("inf")), ValueError, "baseline contains non-finite"),
    ("batch_size", -1, ValueError, "batch_size must be >= 1"),
])
def test_integrated_gradients_knobs(model, knob, value, error, message):
    with pytest.raises(error, match=message):
        integrated_gradients(model, images(1), **{knob: value})
    with pytest.raises(ValueError, match="trapezoid rule needs steps >= 2"):
        integrated_gradients(model, images(1), rule="trapezoid", steps=1)


@pytest.mark.parametrize("knob, value, error, message", [
    ("sigma", -0.1, ValueError, "sigma must be >= 0.0, got -0.1"),
    ("sigma", float("nan"), ValueError, "sigma must be finite"),
    ("n_samples", 0, ValueError, "n_samples must be >= 1"),
    ("variant", "median", ValueError, "variant must be one of \\['mean', 'squared', 'variance'\\]"),
    ("batch_size", 0, ValueError, "batch_size must be >= 1"),
    ("method", "gradient", TypeError, "method must be an attribution function"),
])
def test_smoothgrad_knobs(model, knob, value, error, message):
    with pytest.raises(error, match=message):
        smoothgrad(model, images(1), **{knob: value})


def test_smoothgrad_method_must_return_maps(model):
    with pytest.raises(TypeError, match="return_delta=True"):
        smoothgrad(model, images(1), method=integrated_gradients, n_samples=1, return_delta=True)


def test_saliency_reduce_knob(model):
    with pytest.raises(ValueError, match="reduce must be one of \\['max', 'mean'\\]"):
        saliency(model, images(1), reduce="sum")


def test_a_score_that_does_not_depend_on_the_input(model):
    with pytest.raises(ValueError, match="does not depend on the input"):
        input_gradient(model, images(1), lambda out: torch.zeros(len(out)))


@pytest.mark.parametrize("size, window, stride, error, message", [
    (10, 0, 2, ValueError, "window must be >= 1, got 0"),
    (10, 3, 0, ValueError, "stride must be >= 1, got 0"),
    (10, 3, -2, ValueError, "stride must be >= 1, got -2"),
    (2, 5, 1, ValueError, "window 5 is larger than the size 2"),
    (0, 1, 1, ValueError, "size must be >= 1, got 0"),
    (10, 2.5, 1, TypeError, "window must be an int, got float"),
])
def test_window_starts_rejects_bad_arguments(size, window, stride, error, message):
    with pytest.raises(error, match=message):
        window_starts(size, window, stride)


@pytest.mark.parametrize("output", [torch.tensor([1.0, 2.0]), torch.tensor(3.0), torch.zeros(2, 0)])
def test_max_response_needs_one_or_more_values_per_image(output):
    with pytest.raises(ValueError, match=r"max_response needs the model's output as \(B, \.\.\.\)"):
        max_response(output)
    with pytest.raises(TypeError, match="max_response takes the model's output tensor, got list"):
        max_response([[1.0, 2.0]])
