"""Which device a module is on, and whether a precision setting means bf16 there."""

from __future__ import annotations

import itertools
from typing import Any

import torch


def module_device(obj: Any) -> torch.device:
    """The device of a module's first parameter or buffer, else of its ``.device``; CPU when it has neither."""
    if isinstance(obj, torch.nn.Module):
        for t in itertools.chain(obj.parameters(), obj.buffers()):
            return t.device
    dev = getattr(obj, "device", None)
    return torch.device(dev) if dev is not None else torch.device("cpu")


def uses_bf16(precision: str, device: torch.device) -> bool:
    """``precision`` ("auto", "bf16" or "fp32") on ``device``: "auto" is bf16 on CUDA, fp32 elsewhere."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")
