"""Does a network's Θ fit in memory? Checked before Θ is allocated, so that a layer size typed with a
few zeros too many is one clear line instead of the allocator's error (or a machine swapping).

Training keeps Θ and, per number of Θ, its gradient and up to two optimizer moments (Adam's m and v):
4 copies of Σ_l s_{l+1} (s_l + 1) numbers. That is compared with the device's memory (the GPU's total
on CUDA, the machine's physical memory otherwise). Used by the app's config check (``scripts/app.py``)
and the estimators' ``fit``; each names its own parameter in the message.
"""

from __future__ import annotations

import os

import torch

__all__ = ["theta_count", "check_theta_fits"]

COPIES = 4  # Θ, its gradient, and two optimizer moments (Adam's m and v)


def theta_count(sizes) -> int:
    """Σ_l s_{l+1} (s_l + 1): the numbers in Θ^(1..L) for layer sizes s_1..s_{L+1} (bias columns included)."""
    return sum((s + 1) * s_next for s, s_next in zip(sizes[:-1], sizes[1:]))


def _memory_of(device) -> tuple[int, str] | None:
    """(bytes, whose) of ``device``: a CUDA GPU's total memory, else the machine's physical memory;
    None where it cannot be read (no ``os.sysconf``, e.g. Windows)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory, "the GPU's"
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's"
    except (AttributeError, ValueError, OSError):
        return None


def check_theta_fits(sizes, itemsize: int, device, what: str) -> None:
    """``ValueError`` starting with ``what`` (e.g. ``"hidden_layer_sizes=(10000000000,)"``) when
    :data:`COPIES` × Σ_l s_{l+1}(s_l + 1) numbers of ``itemsize`` bytes exceed ``device``'s memory."""
    count = theta_count(sizes)
    need = COPIES * count * itemsize
    memory = _memory_of(device)
    if memory is not None and need > memory[0]:
        have, whose = memory
        raise ValueError(
            f"{what} gives Θ {count:,} numbers: ~{need / 1e9:.1f} GB with its gradient and optimizer "
            f"state, more than {whose} {have / 1e9:.1f} GB; choose smaller layers"
        )
