"""Tests for lecturenn.perceptron: convergence, XOR failure, hand-worked steps, bad inputs."""

import numpy as np
import pytest
import torch

from lecturenn.perceptron import PerceptronResult, batch_perceptron, perceptron_rule

BOOL2 = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
AND01 = torch.tensor([0, 0, 0, 1])
XOR01 = torch.tensor([0, 1, 1, 0])


def pm(y01):
    """{0, 1} -> {-1, +1}."""
    return 2 * y01 - 1


def blobs(seed=0, n=50):
    """Two gaussian blobs (sigma 1) at (-3, -3) and (+3, +3): 2n points, labels {0, 1}."""
    g = torch.Generator().manual_seed(seed)
    X0 = torch.randn(n, 2, generator=g) + torch.tensor([-3.0, -3.0])
    X1 = torch.randn(n, 2, generator=g) + torch.tensor([3.0, 3.0])
    X = torch.cat([X0, X1])
    y = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    return X, y


def assert_perfect(res: PerceptronResult, X, y):
    assert res.converged
    assert res.n_errors == 0
    assert res.stopped_because == "no errors"
    assert res.errors_per_epoch[-1] == 0
    assert 1 <= res.epochs == len(res.errors_per_epoch)
    assert torch.equal(res.predict(X), torch.as_tensor(y).long())


# ---------------------------------------------------------------------------- separable data


@pytest.mark.parametrize("shuffle", [False, True])
def test_rule_converges_on_blobs(shuffle):
    X, y = blobs()
    res = perceptron_rule(X, y, shuffle=shuffle, seed=1)
    assert_perfect(res, X, y)
    assert res.epochs < 100
    assert res.theta.shape == (3,)


def test_batch_converges_on_blobs():
    X, y = blobs()
    res = batch_perceptron(X, pm(y))
    assert_perfect(res, X, pm(y))
    assert res.epochs < 1000


def test_rule_converges_on_and():
    res = perceptron_rule(BOOL2, AND01)
    assert_perfect(res, BOOL2, AND01)
    assert res.errors_per_epoch[0] > 0  # theta = 0 predicts 1 everywhere, so epoch 1 has mistakes
    assert res.epochs > 1


def test_batch_converges_on_and():
    res = batch_perceptron(BOOL2, pm(AND01))
    assert_perfect(res, BOOL2, pm(AND01))
    assert res.errors_per_epoch[0] == 4  # at theta = 0 every y * theta^T x = 0 <= 0
    assert res.epochs > 1


def test_shuffle_is_reproducible_with_seed():
    X, y = blobs(seed=3)
    a = perceptron_rule(X, y, shuffle=True, seed=7)
    b = perceptron_rule(X, y, shuffle=True, seed=7)
    assert torch.equal(a.theta, b.theta)
    assert a.errors_per_epoch == b.errors_per_epoch


def test_rule_alpha_only_scales_theta():
    # theta starts at 0, so theta_t(alpha) = alpha * theta_t(1): the step sign never changes.
    X, y = blobs(seed=2)
    r1 = perceptron_rule(X, y, alpha=1.0)
    r2 = perceptron_rule(X, y, alpha=0.25)
    torch.testing.assert_close(r2.theta, 0.25 * r1.theta)
    assert r1.errors_per_epoch == r2.errors_per_epoch


# ---------------------------------------------------------------------------- XOR


def test_rule_fails_on_xor():
    res = perceptron_rule(BOOL2, XOR01, max_epochs=25)
    assert not res.converged
    assert res.n_errors > 0
    assert res.stopped_because == "max epochs"
    assert res.epochs == 25 == len(res.errors_per_epoch)
    assert all(e > 0 for e in res.errors_per_epoch)
    assert (res.predict(BOOL2) != XOR01).sum().item() == res.n_errors


def test_batch_fails_on_xor_with_small_update():
    # At theta = 0 all 4 points have y theta^T x = 0 <= 0, and sum_i y_i [1; x_i] =
    # -(1,0,0) + (1,0,1) + (1,1,0) - (1,1,1) = (0, 0, 0), so Delta = 0: it stops at once.
    res = batch_perceptron(BOOL2, pm(XOR01))
    assert res.stopped_because == "small update"
    assert not res.converged
    assert res.n_errors == 4
    assert res.epochs == 1
    assert res.errors_per_epoch == [4]
    assert torch.equal(res.theta, torch.zeros(3))


def test_batch_fails_on_xor_with_eps_zero():
    # With eps = 0 the small-update test never fires, so it runs to max_epochs.
    res = batch_perceptron(BOOL2, pm(XOR01), eps=0.0, max_epochs=10)
    assert res.stopped_because == "max epochs"
    assert not res.converged
    assert res.epochs == 10


# ---------------------------------------------------------------------------- by hand


def test_rule_hand_worked():
    # x1 = (1, 1), y1 = 0  ->  [1; x1] = (1, 1, 1)
    # x2 = (2, 0), y2 = 1  ->  [1; x2] = (1, 2, 0)       alpha = 1, step(0) = 1, theta = (0, 0, 0)
    # epoch 1: x1: theta.x = 0  -> h = 1, y - h = -1 -> theta = (0,0,0) - (1,1,1) = (-1,-1,-1)
    #          x2: theta.x = -1 - 2 = -3 -> h = 0, y - h = +1 -> theta = (-1,-1,-1) + (1,2,0)
    #                                                                  = (0, 1, -1)
    # epoch 2: x1: 0 + 1 - 1 = 0 -> h = 1, -1 -> theta = (-1, 0, -2)
    #          x2: -1 + 0 + 0 = -1 -> h = 0, +1 -> theta = (0, 2, -2)
    # epoch 3: x1: 0 + 2 - 2 = 0 -> h = 1, -1 -> theta = (-1, 1, -3)
    #          x2: -1 + 2 + 0 = 1 -> h = 1, correct
    # epoch 4: x1: -1 + 1 - 3 = -3 -> h = 0, correct;  x2: 1 -> correct.  No errors: stop.
    X = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
    y = torch.tensor([0, 1])

    one = perceptron_rule(X, y, max_epochs=1)
    assert torch.equal(one.theta, torch.tensor([0.0, 1.0, -1.0]))
    assert one.stopped_because == "max epochs"
    assert one.errors_per_epoch == [2]
    assert one.n_errors == 1 and not one.converged  # x1 sits on the boundary, predicted 1

    full = perceptron_rule(X, y)
    assert torch.equal(full.theta, torch.tensor([-1.0, 1.0, -3.0]))
    assert full.errors_per_epoch == [2, 2, 1, 0]
    assert full.epochs == 4
    assert full.converged and full.stopped_because == "no errors"


def test_batch_hand_worked():
    # x1 = 1, y1 = +1 -> [1; x1] = (1, 1);  x2 = -1, y2 = -1 -> [1; x2] = (1, -1).  alpha = 1.
    # epoch 1: theta = 0, both misclassified. sum y_i x_i = (1, 1) + (-1, 1) = (0, 2)
    #          Delta = -(0, 2) / 2 = (0, -1);  theta = 0 - Delta = (0, 1)
    # epoch 2: y1 theta.x1 = 1 > 0, y2 theta.x2 = (-1)(-1) = 1 > 0: no errors, stop.
    X = torch.tensor([[1.0], [-1.0]])
    res = batch_perceptron(X, torch.tensor([1, -1]))
    assert torch.equal(res.theta, torch.tensor([0.0, 1.0]))
    assert res.errors_per_epoch == [2, 0]
    assert res.epochs == 2
    assert res.converged and res.stopped_because == "no errors"
    assert torch.equal(res.predict(torch.tensor([[0.5], [-3.0]])), torch.tensor([1, -1]))


# ---------------------------------------------------------------------------- dtype / inputs


@pytest.mark.parametrize("fn, y", [(perceptron_rule, AND01), (batch_perceptron, pm(AND01))])
def test_float64_in_float64_out(fn, y):
    res = fn(BOOL2.double(), y)
    assert res.theta.dtype == torch.float64


@pytest.mark.parametrize("fn, y", [(perceptron_rule, AND01), (batch_perceptron, pm(AND01))])
def test_integer_numpy_and_list_inputs(fn, y):
    ref = fn(BOOL2, y)
    for X in (BOOL2.long(), BOOL2.numpy().astype(np.int64), BOOL2.tolist()):
        res = fn(X, y.tolist())
        assert res.theta.dtype == torch.get_default_dtype()
        assert torch.equal(res.theta, ref.theta)


def test_predict_checks_feature_count():
    res = perceptron_rule(BOOL2, AND01)
    with pytest.raises(ValueError, match="3 features but theta was trained on 2"):
        res.predict(torch.zeros(2, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.cuda
def test_cuda_device_follows_input():
    X, y = blobs()
    for res in (perceptron_rule(X.cuda(), y), batch_perceptron(X.cuda(), pm(y))):
        assert res.theta.device.type == "cuda"
        assert res.converged


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("fn, y", [(perceptron_rule, AND01), (batch_perceptron, pm(AND01))])
class TestBadInput:
    def test_x_not_2d(self, fn, y):
        with pytest.raises(ValueError, match="X must be a 2-D"):
            fn(torch.zeros(4), y)

    def test_x_empty(self, fn, y):
        with pytest.raises(ValueError, match="X is empty"):
            fn(torch.zeros(0, 2), y[:0])

    @pytest.mark.parametrize("bad", [float("nan"), float("inf")])
    def test_x_not_finite(self, fn, y, bad):
        X = BOOL2.clone()
        X[1, 0] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            fn(X, y)

    def test_y_not_1d(self, fn, y):
        with pytest.raises(ValueError, match="y must be 1-D"):
            fn(BOOL2, y[:, None])

    def test_y_wrong_length(self, fn, y):
        with pytest.raises(ValueError, match="y has length 3 but X has 4 rows"):
            fn(BOOL2, y[:3])

    def test_alpha(self, fn, y):
        for alpha in (0.0, -1.0, float("nan")):
            with pytest.raises(ValueError, match="alpha must be"):
                fn(BOOL2, y, alpha=alpha)

    def test_max_epochs(self, fn, y):
        for m in (0, -3):
            with pytest.raises(ValueError, match="max_epochs must be an integer >= 1"):
                fn(BOOL2, y, max_epochs=m)
        for m in (2.5, True):  # the wrong kind: TypeError (lecturenn.validation)
            with pytest.raises(TypeError, match="max_epochs must be an integer >= 1"):
                fn(BOOL2, y, max_epochs=m)


def test_rule_rejects_pm1_labels():
    with pytest.raises(ValueError, match=r"labels must be in \{0, 1\}, found labels \[-1, 1\]"):
        perceptron_rule(BOOL2, pm(AND01))


def test_batch_rejects_01_labels():
    with pytest.raises(ValueError, match=r"labels must be in \{-1, 1\}, found labels \[0, 1\]"):
        batch_perceptron(BOOL2, AND01)


def test_batch_rejects_negative_eps():
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        batch_perceptron(BOOL2, pm(AND01), eps=-1e-3)
