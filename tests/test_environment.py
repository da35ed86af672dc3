"""The environment the README's commands build: a broken torchvision is silent everywhere else."""

import os


def test_torchvision_operators_load():
    # pip on these machines can pair torch 2.13.0+cpu with PyPI's torchvision, which imports the
    # package but fails on its compiled ops; nms is the first one Qwen3-VL's processors touch.
    import torch
    from torchvision.ops import nms

    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.9]])
    keep = nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.5)
    assert keep.tolist() == [0]


def test_hub_is_offline_in_tests():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
