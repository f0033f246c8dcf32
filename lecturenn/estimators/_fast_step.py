"""The one private torch call of the estimators: ``optimizer.step()`` without its Python wrapper.

``torch.optim.Adam.step`` / ``SGD.step`` end in the functional ``torch.optim.adam.adam`` /
``torch.optim.sgd.sgd``; around that call they run hooks, a profiler record, grad-mode and
state look-ups, which on a small net cost as much as the update itself (half of a mini-batch
step on the 2-core CPU). :func:`fast_step` makes the first step through ``step()`` (which creates
the state) and later ones through the functional call on that same state. Any other optimizer or
setting, or a functional signature this torch does not have (``TypeError`` while binding, before
anything is updated), falls back to ``step()`` for good. ``tests/test_estimators.py`` pins that
the two give bitwise the same Θ, so a torch upgrade that changes the functions breaks a test.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["fast_step"]


def fast_step(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """A ``step()`` for ``optimizer`` (one parameter group, no closure): see the module docstring."""
    fast: list = [None if isinstance(optimizer, (torch.optim.Adam, torch.optim.SGD)) else False]

    def step() -> None:
        call = fast[0]
        if call:
            try:
                call()
                return
            except TypeError:  # the functional API changed: step() from now on
                fast[0] = False
        optimizer.step()
        if call is None:
            fast[0] = _functional(optimizer)

    return step


def _functional(opt: torch.optim.Optimizer):
    """The functional update on ``opt``'s state, or False where its settings need ``step()``."""
    if len(opt.param_groups) != 1:
        return False
    group = opt.param_groups[0]
    params = list(group["params"])
    if any(p.grad is None for p in params):
        return False
    grads, states = [p.grad for p in params], [opt.state[p] for p in params]
    common = {"foreach": group.get("foreach"), "fused": group.get("fused"), "maximize": False}
    if isinstance(opt, torch.optim.Adam):
        if group.get("amsgrad") or group.get("weight_decay") or group.get("capturable"):
            return False
        from torch.optim.adam import adam

        args = (params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [])
        steps = [s["step"] for s in states]
        beta1, beta2 = group["betas"]
        kw = dict(common, amsgrad=False, beta1=beta1, beta2=beta2, weight_decay=0.0)
        return lambda: adam(*args, steps, eps=group["eps"], lr=group["lr"], **kw)  # lr read per step
    if group.get("weight_decay") or group.get("dampening"):
        return False
    from torch.optim.sgd import sgd

    buffers = [s.get("momentum_buffer") for s in states]
    if group["momentum"] > 0 and any(b is None for b in buffers):
        return False
    kw = dict(common, weight_decay=0.0, momentum=group["momentum"], dampening=0.0)
    # lr is read at each call: a learning-rate schedule changes the group's lr between steps
    return lambda: sgd(params, grads, buffers, nesterov=group["nesterov"], lr=group["lr"], **kw)
