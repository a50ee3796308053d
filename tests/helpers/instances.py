"""Comparing instance-segmentation results with a reference's, whatever their order."""
from __future__ import annotations

from typing import Any, Dict

import torch


def assert_same_instances(inst: Dict[str, torch.Tensor], exp: Any) -> None:
    """``inst`` (``scores``, ``labels``, ``masks``, ``bboxes``) holds ``exp``'s instances
    (an object with those attributes), matched by descending score."""
    order, exp_order = inst['scores'].argsort(descending=True), exp.scores.argsort(descending=True)
    torch.testing.assert_close(inst['scores'][order], exp.scores[exp_order], rtol=1e-5, atol=1e-6)
    assert torch.equal(inst['labels'][order], exp.labels[exp_order])
    assert torch.equal(inst['masks'][order], exp.masks[exp_order])
    torch.testing.assert_close(inst['bboxes'][order], exp.bboxes[exp_order])
