"""Hostile inputs against session 9's changes (issue 13): the CPU check's Python sums, the checks
skipped under torch.func transforms, save running load's checks, exact integer labels and the plain
list of Θ the cost reads. Each test failed before its fix."""

import os
import stat

import numpy as np
import pytest
import torch

import lecturenn as ln
from lecturenn.arrays import as_array, to_tensor


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_float16_weights_whose_sum_overflows_are_refused_not_a_zero_cost(backprop):
    """fp16 weights 32752 each: Σw = inf in float16. The manual path widens the data term to float32,
    so J = Σ w_i cost_i / Σw was a finite 0 (and every gradient 0), which the check let through;
    the autograd path got NaN and named the weights. Both must name the weights, nothing written."""
    net = ln.ThetaMLP([3, 4, 2], "tanh", "softmax", backprop=backprop, generator=0, dtype=torch.float16)
    X = torch.randn(5, 3, generator=torch.Generator().manual_seed(0)).half()
    y = torch.tensor([0, 1, 1, 0, 1])
    with pytest.raises(FloatingPointError, match="weights' sum Σw overflows torch.float16"):
        net.cost(X, y, sample_weight=torch.full((5,), 32752.0, dtype=torch.float16))
    assert all(theta.grad is None for theta in net.thetas)
    J = net.cost(X, y, sample_weight=torch.full((5,), 10000.0, dtype=torch.float16))  # Σw fits
    torch.testing.assert_close(J.float(), net.cost(X, y).float(), rtol=2e-3, atol=0)


class _Twice(torch.nn.Module):
    def forward(self, theta):
        return 2 * theta


def _same_net(backprop, sizes=(3, 4, 3)):
    return ln.ThetaMLP(list(sizes), "tanh", "softmax", backprop=backprop, generator=0, dtype=torch.float64)


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
@pytest.mark.parametrize("index", [0, 1])
def test_a_parametrized_theta_is_the_one_cost_and_forward_use(backprop, index):
    """nn.utils.parametrize (weight_norm, spectral_norm, ...) moves Θ out of ParameterList's
    _parameters: Θ^(2) was silently dropped (a one-layer net's J), Θ^(1) a raw KeyError '0'."""
    X = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 2, 1, 1, 0, 2, 1])
    net, ref = _same_net(backprop), _same_net("autograd")
    torch.nn.utils.parametrize.register_parametrization(net.thetas, str(index), _Twice())
    with torch.no_grad():
        ref.thetas[index].mul_(2)
    J = net.cost(X, y, 0.3)
    torch.testing.assert_close(J, ref.cost(X, y, 0.3), rtol=1e-13, atol=0)
    torch.testing.assert_close(net(X), ref(X), rtol=1e-13, atol=0)
    J.backward()  # the gradient reaches the parametrization's original tensor: ∂J/∂Θ₀ = 2 ∂J/∂Θ
    ref.cost(X, y, 0.3).backward()
    original = net.thetas.parametrizations[str(index)].original
    torch.testing.assert_close(original.grad, 2 * ref.thetas[index].grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_removing_a_parametrization_keeps_the_layer_order(backprop):
    """remove_parametrizations puts Θ^(1) back at the end of ParameterList's dict: with equal shapes
    (3-3-3) the cost read the dict's order and silently swapped the layers."""
    X = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 2, 1, 1, 0])
    net, ref = _same_net(backprop, (3, 3, 3)), _same_net("autograd", (3, 3, 3))
    torch.nn.utils.parametrize.register_parametrization(net.thetas, "0", _Twice())
    torch.nn.utils.parametrize.remove_parametrizations(net.thetas, "0")  # Θ^(1) := 2 Θ^(1), kept
    with torch.no_grad():
        ref.thetas[0].mul_(2)
    torch.testing.assert_close(net.cost(X, y, 0.3), ref.cost(X, y, 0.3), rtol=1e-13, atol=0)
    torch.testing.assert_close(net(X), ref(X), rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "Y",
    [[2**63] * 3, [2**64 - 1, 2**63, 2**63], np.array([0, 1, 2**63], dtype="Q")],
    ids=["list", "max", "Q"],
)
def test_labels_numpy_makes_ulonglong_are_named_not_a_torch_dtype_error(Y):
    """Python ints all ≥ 2**63 (or dtype="Q") make numpy's ulonglong, which torch.as_tensor refuses
    ("can't convert np.ndarray of type numpy.ulonglong"): the labels must be named like any uint64."""
    net = ln.ThetaMLP([2, 3, 3], "tanh", "softmax", generator=0)
    with pytest.raises(
        ValueError, match=r"class index out of range: Y has labels in \[\d+, \d+\] \(dtype uint64\)"
    ):
        net.cost(torch.zeros(3, 2), Y)
    assert to_tensor(Y).dtype == torch.uint64
    assert to_tensor(Y).tolist() == [int(v) for v in Y]


def test_a_list_of_floats_is_not_scanned_for_big_ints(monkeypatch):
    """as_array's exact-int rule must cost a list of floats nothing: main's version ran abs/compare
    ufuncs under np.errstate on every float list (32 floats: 3.7x the time of np.asarray; timeit,
    interleaved). A list of floats cannot hold only Python ints: its first entry says so."""

    def scanned(*args, **kwargs):
        raise AssertionError("a list of floats was scanned")

    monkeypatch.setattr(np, "errstate", scanned)
    assert as_array([0.5, 1.5, 2.5]).dtype == np.float64
    assert as_array([[0.5, 2.0], [1.0, 3.0]]).dtype == np.float64
    monkeypatch.undo()
    assert as_array([0, 1, 2**63]).dtype == np.uint64  # the rule itself still holds
    assert as_array([[1, 2], [0, 2**63]]).tolist() == [[1, 2], [0, 2**63]]
    assert as_array([2**63, 0.5]).dtype == np.float64


class _Cost(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.batch = net, None

    def forward(self):
        return self.net.cost(*self.batch)


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_per_example_gradients_with_uint64_labels(backprop):
    """vmap(grad(net.cost)) with valid uint64 class indices: the uint64 range check (arrays.
    to_class_indices) read a value under vmap, torch's raw '.item()' error; transforms skip value
    checks. Equals the gradients with the same labels as int64; outside transforms still refused."""
    net = ln.ThetaMLP([3, 4, 3], "tanh", "softmax", backprop=backprop, generator=0, dtype=torch.float64)
    X = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    model = _Cost(net)
    params = {f"net.{k}": v.detach() for k, v in net.named_parameters()}

    def J(p, x, t):
        model.batch = (x.unsqueeze(0), t.unsqueeze(0))
        return torch.func.functional_call(model, p, ())

    per_row = torch.func.vmap(torch.func.grad(J), in_dims=(None, 0, 0))
    got, want = per_row(params, X, y.to(torch.uint64)), per_row(params, X, y)
    for k in params:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    with pytest.raises(ValueError, match="class index out of range"):
        net.cost(X, torch.tensor([0, 1, 2, 0, 1, 2**63], dtype=torch.uint64))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_save_writes_a_file_with_the_usual_permissions(tmp_path):
    """save renames a tempfile.mkstemp file into place: the model got mkstemp's 0600 (unreadable for
    the group, other users, a web server), also when it replaced a 0644 file; np.savez gives
    0666 & ~umask."""
    from lecturenn.estimators import ThetaMLPClassifier

    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    est = ThetaMLPClassifier((3,), max_iter=3, random_state=0).fit(X, y)
    old = os.umask(0o022)
    try:
        reference = tmp_path / "reference.npz"
        np.savez(reference, a=np.zeros(1))
        path = est.save(tmp_path / "m.npz")
        assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode) == 0o644
        os.umask(0o077)
        assert stat.S_IMODE(est.save(tmp_path / "private.npz").stat().st_mode) == 0o600
    finally:
        os.umask(old)
