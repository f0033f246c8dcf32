"""The estimators' solvers beyond sgd/adam (issue 14 §2): "adagrad", "rmsprop", "adamw" are torch's
optimizers and "lamb" is lecturenn.optim.LAMB with one trust ratio per Θ^(l). Twin test: from the
estimator's Θ and optimizer state after one full-batch epoch, the next epoch equals the same torch
optimizer stepped by hand on per-layer copies of Θ with the gradient of net.cost (float64)."""

import copy

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris

import lecturenn as ln
from lecturenn.estimators import ThetaMLPClassifier
from lecturenn.optim import LAMB

OPTIMIZERS = {
    "adagrad": lambda ps, est: torch.optim.Adagrad(ps, lr=est.learning_rate_init, eps=est.epsilon),
    "rmsprop": lambda ps, est: torch.optim.RMSprop(ps, lr=est.learning_rate_init, eps=est.epsilon),
    "adamw": lambda ps, est: torch.optim.AdamW(
        ps, lr=est.learning_rate_init, betas=(est.beta_1, est.beta_2), eps=est.epsilon
    ),
    "lamb": lambda ps, est: LAMB(
        ps, lr=est.learning_rate_init, betas=(est.beta_1, est.beta_2), eps=est.epsilon
    ),
    "adam": lambda ps, est: torch.optim.Adam(
        ps, lr=est.learning_rate_init, betas=(est.beta_1, est.beta_2), eps=est.epsilon
    ),
}


def _per_layer_state(engine, thetas):
    """The estimator's optimizer state split into per-Θ^(l) pieces (a flat state is sliced)."""
    opt = engine.optimizer
    params = opt.param_groups[0]["params"]
    if len(params) == len(thetas):  # LAMB: already per layer
        return [copy.deepcopy(opt.state[p]) for p in params]
    (flat,) = params
    states, offset = [], 0
    for t in thetas:
        k = t.numel()
        one = {}
        for key, value in opt.state[flat].items():
            one[key] = value.clone() if value.ndim == 0 else value[offset : offset + k].view(t.shape).clone()
        states.append(one)
        offset += k
    return states


@pytest.mark.parametrize("solver", list(OPTIMIZERS))
def test_next_epoch_equals_the_torch_optimizer_by_hand(solver):
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    est = ThetaMLPClassifier(
        (6,), solver=solver, batch_size=len(X), learning_rate_init=0.05, alpha=0.01, dtype="float64",
        random_state=0, shuffle=False,
    )  # fmt: skip
    est.partial_fit(X, y, classes=[0, 1, 2])
    theta1 = [t.detach().clone() for t in est.net_.thetas]
    states = _per_layer_state(est._engine, theta1)
    est.partial_fit(X, y)
    theta2 = [t.detach() for t in est.net_.thetas]

    net = ln.ThetaMLP([4, 6, 3], "relu", "softmax", dtype=torch.float64, backprop="autograd")
    with torch.no_grad():
        for p, t in zip(net.thetas, theta1):
            p.copy_(t)
    opt = OPTIMIZERS[solver](list(net.thetas), est)
    for p, st in zip(net.thetas, states):
        opt.state[p] = st
    Y = torch.nn.functional.one_hot(torch.tensor(y), 3).double()
    net.cost(torch.tensor(X), Y, lam=0.01).backward()
    opt.step()
    for mine, ref in zip(theta2, net.thetas):
        torch.testing.assert_close(mine, ref.detach(), rtol=1e-10, atol=1e-12)
    assert not all(torch.equal(a, b) for a, b in zip(theta1, theta2))  # it did move


def test_lamb_uses_one_trust_ratio_per_layer_not_per_flat_vector():
    """Each Θ^(l) moves by lr·‖Θ^(l)‖ in LAMB's first step (no weight decay)."""
    X, y = load_iris(return_X_y=True)
    est = ThetaMLPClassifier((6,), solver="lamb", batch_size=len(X), learning_rate_init=0.01, dtype="float64",
                             random_state=0)  # fmt: skip
    est.set_params(max_iter=1)
    est.partial_fit(X, y, classes=[0, 1, 2])
    # the first step of a fresh estimator: compare with its initial Θ, rebuilt from the same seed
    fresh = ThetaMLPClassifier((6,), solver="lamb", batch_size=len(X), learning_rate_init=1e-300,
                               dtype="float64", random_state=0)  # fmt: skip
    fresh.partial_fit(X, y, classes=[0, 1, 2])  # lr ≈ 0: Θ stays the initial Θ to the last bit
    for t0, t1 in zip(fresh.net_.thetas, est.net_.thetas):
        step = float((t1 - t0).norm())
        assert step == pytest.approx(0.01 * float(t0.norm()), rel=1e-9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["adagrad", "rmsprop", "adamw", "lamb"])
def test_new_solvers_fit_and_partial_fit(solver):
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    lr = {"adagrad": 0.1, "rmsprop": 0.01, "adamw": 0.01, "lamb": 0.02}[solver]
    est = ThetaMLPClassifier((16,), solver=solver, learning_rate_init=lr, max_iter=200, random_state=0)
    assert est.fit(X, y).score(X, y) > 0.9
    est.partial_fit(X, y)  # a stochastic solver: partial_fit is available
    assert np.isfinite(est.loss_)
