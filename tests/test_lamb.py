"""LAMB (lecturenn.optim.LAMB) against the paper's Algorithm 2 computed by hand in float64 numpy
(You et al. 2019, arXiv:1904.00962), its edge cases, state round trip, and training with it."""

import io
import math

import numpy as np
import pytest
import torch

from lecturenn.optim import LAMB


def _lamb_by_hand(x, grads, lr, b1, b2, eps, wd, bounds=None):
    """Algorithm 2 for one layer, step by step in numpy float64; returns x after len(grads) steps."""
    x = np.array(x, dtype=np.float64)
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        r = m_hat / (np.sqrt(v_hat) + eps)
        u = r + wd * x
        wn, un = np.linalg.norm(x), np.linalg.norm(u)
        phi = wn if bounds is None else min(max(wn, bounds[0]), bounds[1])
        ratio = phi / un if wn > 0 and un > 0 else 1.0
        x = x - lr * ratio * u
    return x


@pytest.mark.parametrize("wd,bounds", [(0.0, None), (0.01, None), (0.1, (0.5, 2.0))])
def test_three_steps_equal_algorithm_2_by_hand(wd, bounds):
    rng = np.random.default_rng(0)
    layers = [rng.normal(size=(3, 4)), rng.normal(size=(2, 4)) * 5]
    grads = [[rng.normal(size=s.shape) for _ in range(3)] for s in layers]
    params = [torch.tensor(x, requires_grad=True) for x in layers]
    opt = LAMB(params, lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=wd, norm_bounds=bounds)
    for t in range(3):
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g[t])
        opt.step()
    for p, x, g in zip(params, layers, grads):
        expected = _lamb_by_hand(x, g, 0.05, 0.8, 0.95, 1e-6, wd, bounds)
        np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-13, atol=1e-15)


def test_each_layer_moves_by_lr_times_its_norm():
    """The trust ratio makes every layer's step η‖x‖ long, whatever its gradient's scale."""
    a = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    b = (100 * torch.randn(4, 6, dtype=torch.float64)).requires_grad_(True)
    before = [a.detach().clone(), b.detach().clone()]
    opt = LAMB([a, b], lr=0.01)
    a.grad, b.grad = torch.randn_like(a) * 1e-4, torch.randn_like(b) * 1e3
    opt.step()
    for p, p0 in zip((a, b), before):
        assert math.isclose(float((p.detach() - p0).norm()), 0.01 * float(p0.norm()), rel_tol=1e-12)


def test_trust_ratio_is_one_for_zero_weights_or_zero_update():
    x = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)  # ‖x‖ = 0
    opt = LAMB([x], lr=0.1, eps=0.0)
    x.grad = torch.full((3, 3), 2.0, dtype=torch.float64)
    opt.step()
    # r = m̂/√v̂ = g/|g| = 1 for every entry; ratio 1: x = −η·1
    torch.testing.assert_close(x.detach(), torch.full((3, 3), -0.1, dtype=torch.float64))
    y = torch.ones(2, 2, dtype=torch.float64, requires_grad=True)
    opt = LAMB([y], lr=0.1)
    y.grad = torch.zeros(2, 2, dtype=torch.float64)  # zero gradient, no decay: u = 0
    opt.step()
    torch.testing.assert_close(y.detach(), torch.ones(2, 2, dtype=torch.float64))
    assert torch.isfinite(y).all()


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(0)
    p1 = torch.randn(4, 5, requires_grad=True)
    p2 = p1.detach().clone().requires_grad_(True)
    o1 = LAMB([p1], lr=0.02, weight_decay=0.01)
    g = [torch.randn(4, 5) for _ in range(4)]
    for t in range(2):
        p1.grad = g[t]
        o1.step()
    with torch.no_grad():
        p2.copy_(p1)
    o2 = LAMB([p2], lr=0.5)  # other settings: the loaded state dict brings back lr too
    buffer = io.BytesIO()
    torch.save(o1.state_dict(), buffer)  # as a checkpoint stores it (no live tensors shared)
    buffer.seek(0)
    o2.load_state_dict(torch.load(buffer, weights_only=True))
    for t in range(2, 4):
        p1.grad, p2.grad = g[t], g[t].clone()
        o1.step()
        o2.step()
    assert torch.equal(p1, p2)


@pytest.mark.parametrize(
    "kwargs,word",
    [({"lr": 0}, "lr"), ({"lr": float("nan")}, "lr"), ({"betas": (0.9, 1.0)}, "betas"),
     ({"eps": -1}, "eps"), ({"weight_decay": -0.1}, "weight_decay"),
     ({"norm_bounds": (2, 1)}, "norm_bounds")],
)  # fmt: skip
def test_bad_arguments_are_named(kwargs, word):
    with pytest.raises(ValueError, match=word):
        LAMB([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize(
    "kwargs,words",
    [({"lr": True}, "LAMB: lr must be a finite number > 0, got True"),
     ({"eps": True}, "LAMB: eps must"), ({"weight_decay": False}, "LAMB: weight_decay must"),
     ({"betas": (True, 0.9)}, r"LAMB: betas\[0\] must"), ({"betas": 0.9}, "LAMB: betas must be a pair"),
     ({"betas": (0.9,)}, "LAMB: betas must be a pair"), ({"lr": "0.1"}, "LAMB: lr must"),
     ({"lr": torch.tensor(0.1)}, "LAMB: lr must be a Python number"),
     ({"norm_bounds": (True, 2)}, r"LAMB: norm_bounds\[0\] must"),
     ({"norm_bounds": "ab"}, "LAMB: norm_bounds must be a pair"),
     ({"bias_correction": "no"}, "LAMB: bias_correction must be True or False")],
)  # fmt: skip
def test_arguments_of_the_wrong_kind_are_named(kwargs, words):
    """Session-7 hostile note: LAMB(lr=True) trained with lr = 1; a bool is no number (TypeError, one
    line naming the argument), in __init__ and in add_param_group."""
    with pytest.raises(TypeError, match=words):
        LAMB([torch.zeros(2, requires_grad=True)], **kwargs)
    opt = LAMB([torch.zeros(2, requires_grad=True)])
    with pytest.raises(TypeError, match=words):
        opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], **kwargs})
    assert len(opt.param_groups) == 1  # refused before it was added


def test_numbers_of_other_types_become_floats():
    opt = LAMB([torch.zeros(2, requires_grad=True)], lr=1, betas=[0, 0.5], eps=0, norm_bounds=[0, 2])
    group = opt.param_groups[0]
    assert group["lr"] == 1.0 and group["betas"] == (0.0, 0.5) and group["norm_bounds"] == (0.0, 2.0)
    assert all(type(v) is float for v in (group["lr"], *group["betas"], group["eps"], *group["norm_bounds"]))


def test_trains_a_theta_mlp_with_a_large_batch():
    """Digits-like: a 64-32-10 ThetaMLP, full batch of 1797 rows, lr 0.02 — the cost falls."""
    from sklearn.datasets import load_digits

    import lecturenn as ln

    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16, dtype=torch.float32)
    Y = torch.nn.functional.one_hot(torch.tensor(y), 10).float()
    net = ln.ThetaMLP([64, 32, 10], "sigmoid", "softmax", generator=0)
    opt = LAMB(net.parameters(), lr=0.02)
    costs = []
    for _ in range(60):
        opt.zero_grad()
        J = net.cost(X, Y, lam=1e-3)
        J.backward()
        opt.step()
        costs.append(float(J))
    assert costs[-1] < 0.5 * costs[0]
    assert (net(X).argmax(1) == torch.tensor(y)).float().mean() > 0.85


def test_the_digits_job_trains_with_lamb_at_batch_512(tmp_path):
    """`python scripts/train.py optimizer=lamb data.batch_size=512 optimizer.lr=0.03` (the main job,
    LAMB's large-batch setting), shortened to 15 epochs: LAMB in the run's config, test/acc > 0.9.
    In-process (train.train on the composed config: the CLI's code; test_app.py runs the process)."""
    pytest.importorskip("hydra")
    import json

    from test_app import QUIET, make_cfg
    from train import train

    run_dir = tmp_path / "run"
    overrides = ["optimizer=lamb", "data.batch_size=512", "optimizer.lr=0.03", "trainer.max_epochs=15"]
    cfg = make_cfg(run_dir, [*overrides, "callbacks.plots=null", *QUIET])
    assert cfg.optimizer._target_ == "lecturenn.optim.LAMB"
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    try:
        train(cfg)
    finally:  # threads: auto and matmul_precision are set for the process
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(precision)
    assert json.loads((run_dir / "metrics.json").read_text())["test/acc"] > 0.9
