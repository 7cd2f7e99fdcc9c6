"""Attribution methods: which pixels (or which parts of a layer) matter for a score.

One call shape for all maps: ``method(model, x, target=None, **knobs)``. The exception is
``layer_gradients(model, x, layer, target=None)``: the layer comes third, and it returns a pair
(activations, gradients) at that layer rather than a map.

- x: a batch (B, C, H, W) of float images on the model's device and dtype.
- target: None (each image's predicted class), an int, B ints (a list or a (B,) tensor, e.g. the
  labels), or a callable ``output -> (B,)`` scores; the default score is the logit y_c (before
  softmax), as in the lecture. Each form becomes one score function (``gradviz_lab.targets``).
- The model runs in whatever mode it is in (train or eval) and leaves each call exactly as it
  came in: modes, requires_grad flags, parameter .grad, buffers and hooks
  (``gradviz_lab.hooks.preserved_state``).
- Each method is decorated with ``gradviz_lab._boundary.public``: x is checked, the target
  resolved and the model saved once per call, however many methods call each other inside.
- Baselines (integrated gradients, occlusion): one vocabulary, ``attribution.baselines``.

| family        | functions                                       | module         |
|---------------|-------------------------------------------------|----------------|
| gradients     | input_gradient, saliency, layer_gradients        | gradients.py   |
| noise         | smoothgrad                                      | smoothing.py   |
| paths         | integrated_gradients                            | integrated.py  |
| perturbation  | occlusion, occlusion_path                       | perturbation.py|
| ReLU rules    | deconvnet, guided_backprop                      | relu_rules.py  |
| layer maps    | gradcam, guided_gradcam (cam_inputs, cam_output) | cam.py         |
| CAM family    | cam, gradcam_plus_plus, xgradcam, hirescam,     | cam_family.py  |
|               | layercam, eigencam                              |                |
|               | scorecam, ablationcam                           | cam_scores.py  |
| relevance     | lrp (rules, composites)                          | lrp/           |
| differences   | input_x_gradient, deeplift                       | deeplift.py    |
| (layouts)     | tokens_to_maps, channels_last (for cam_inputs)   | layouts.py     |
| attention     | attention_map, attention_rollout, gradient_rollout, attention_per_layer | attention.py |
"""

from __future__ import annotations

import torch

from .approximate import OcclusionApproximation
from .attention import attention_map, attention_per_layer, attention_rollout, gradient_rollout
from .cam import cam_layers, default_cam_layer, gradcam, guided_gradcam
from .cam_family import cam, eigencam, gradcam_plus_plus, hirescam, layercam, xgradcam
from .cam_scores import ablationcam, scorecam
from .gradients import input_gradient, layer_gradients, saliency
from .integrated import integrated_gradients
from .deeplift import deeplift, input_x_gradient
from .incremental import OcclusionPath, occlusion_path
from .lrp import lrp
from .perturbation import occlusion, window_starts
from .relu_rules import deconvnet, guided_backprop
from .smoothing import smoothgrad


def max_response(output: torch.Tensor) -> torch.Tensor:
    """A callable target: the largest value of each image's output, e.g. the strongest feature
    of a convolutional trunk (the lecture's "max feature response"). (B, ...) -> (B,)."""
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"max_response takes the model's output tensor, got {type(output).__name__}")
    if output.dim() < 2 or output.shape[1:].numel() == 0:
        raise ValueError("max_response needs the model's output as (B, ...) with at least one "
                         f"value per image, got shape {tuple(output.shape)}")
    return output.flatten(1).amax(dim=1)


__all__ = [
    "input_gradient",
    "saliency",
    "layer_gradients",
    "smoothgrad",
    "integrated_gradients",
    "occlusion",
    "window_starts",
    "occlusion_path",
    "OcclusionPath",
    "OcclusionApproximation",
    "deconvnet",
    "guided_backprop",
    "gradcam",
    "guided_gradcam",
    "cam",
    "gradcam_plus_plus",
    "xgradcam",
    "hirescam",
    "layercam",
    "scorecam",
    "ablationcam",
    "eigencam",
    "cam_layers",
    "default_cam_layer",
    "lrp",
    "input_x_gradient",
    "deeplift",
    "max_response",
    "attention_map",
    "attention_per_layer",
    "attention_rollout",
    "gradient_rollout",
]
