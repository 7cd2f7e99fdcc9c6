"""Every method runs in the model's own dtype (float32, float64) and on its device (CPU, CUDA)."""

from __future__ import annotations

import pytest
import torch
from conftest import EVERY_METHOD, images, small_cnn

from gradviz_lab.attribution import integrated_gradients, smoothgrad


# Every method (conftest's registry), plus the knobs whose arithmetic the registry's small
# calls do not reach: SmoothGrad^2 and the blurred baseline.
METHODS = {name: lambda m, x, method=method: method(m, x, [1, 3])
           for name, method in EVERY_METHOD.items()}
METHODS["smoothgrad-squared"] = lambda m, x: smoothgrad(m, x, [1, 3], n_samples=4, variant="squared")
METHODS["integrated_gradients-blur"] = lambda m, x: integrated_gradients(m, x, [1, 3], steps=5,
                                                                         baseline="blur")


@pytest.mark.parametrize("name", list(METHODS))
def test_float64_model_gives_float64_maps_matching_float32(name):
    x32 = images(2, seed=3)
    maps32 = METHODS[name](small_cnn(), x32)
    maps64 = METHODS[name](small_cnn().double(), x32.double())
    assert maps32.dtype == torch.float32 and maps64.dtype == torch.float64
    assert torch.allclose(maps64.float(), maps32, rtol=1e-3, atol=1e-5 * maps64.abs().max())


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("name", list(METHODS))
def test_cuda_maps_equal_cpu_maps(name):
    x = images(2, seed=3, dtype=torch.float64)
    on_cpu = METHODS[name](small_cnn().double(), x)
    on_gpu = METHODS[name](small_cnn().double().cuda(), x.cuda())
    assert on_gpu.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), on_cpu, rtol=1e-7, atol=1e-10)


@cuda
def test_input_on_another_device_than_the_model_is_a_clear_error():
    with pytest.raises(ValueError, match="x is on cpu but the model is on cuda:0"):
        input_gradient(small_cnn().cuda(), images(1))
