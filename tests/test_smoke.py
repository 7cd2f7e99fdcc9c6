"""torch and torchvision import together: the compiled torchvision ops load against this torch."""

from __future__ import annotations

import torch
import torchvision


def test_torchvision_compiled_op_runs():
    # nms is the op that fails to register when torchvision was built for another torch.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    # box 1 overlaps box 0 with IoU 81/119 ~ 0.68 > 0.5, so it is suppressed
    assert torchvision.ops.nms(boxes, scores, iou_threshold=0.5).tolist() == [0, 2]


def test_vgg11_random_weights_forward_pass():
    torch.manual_seed(0)
    model = torchvision.models.vgg11(weights=None).eval()
    with torch.inference_mode():
        logits = model(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 1000)
    assert torch.isfinite(logits).all()
    # two different images give two different outputs (the network is not degenerate)
    assert not torch.allclose(logits[0], logits[1])
