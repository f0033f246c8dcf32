"""Hostile round on the registries: each registration or look-up that used to be accepted and then
trained or exported the wrong thing (or failed late with a raw traceback) is now refused at once,
with one line naming the field, the value and what to do."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lecturenn as ln
from lecturenn.activations import ACTIVATIONS
from lecturenn.heads import HEADS
from lecturenn.registry import NAME_PATTERN

ROOT = Path(__file__).resolve().parents[1]
F64 = torch.float64


def tanh_gprime(a):
    return 1 - a * a


def leaky(slope):
    return lambda z: F.leaky_relu(z, slope)


def leaky_gprime(a):  # slope 0.01, from a = g(z)
    return (a > 0).to(a.dtype) * 0.99 + 0.01


def poisson_cost(z, Y, weight=None):
    per_row = (torch.exp(z) - Y * z).sum(dim=1)
    return per_row.sum() if weight is None else (per_row * weight).sum()


def poisson_cost_ignoring_weight(z, Y, weight=None):  # the bug: Σ_i cost_i whatever the weights
    return (torch.exp(z) - Y * z).sum()


def poisson_delta(h, Y, inplace=False):
    return h.sub_(Y) if inplace else h - Y


@pytest.fixture
def registered():
    """Names registered by a test, removed afterwards (whether it passed or not)."""
    names = []
    yield names
    for name in names:
        ACTIVATIONS.pop(name, None)
        HEADS.pop(name, None)


def counts_batch(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g, dtype=F64)
    return X, torch.poisson(torch.exp(0.5 * X[:, :1]), generator=g)


# -- 1. names and aliases are one namespace ----------------------------------------------------------
def test_a_name_that_is_another_entrys_scikit_learn_name_is_refused():
    with pytest.raises(
        ValueError, match=r"'logistic' is the scikit-learn name of the registered activation 'sigmoid'"
    ):
        ln.register_activation("logistic", torch.tanh, tanh_gprime)
    with pytest.raises(
        ValueError, match=r"'logistic' is the scikit-learn name of the registered output head 'sigmoid'"
    ):
        ln.register_head("logistic", torch.exp, poisson_cost, poisson_delta)
    assert "logistic" not in dict(ACTIVATIONS) and "logistic" not in dict(HEADS)
    clf = ln.ThetaMLPClassifier((3,), activation="logistic", max_iter=1)
    with pytest.warns(Warning):  # not converged: only the trained activation matters here
        clf.fit(np.eye(4), [0, 1, 0, 1])
    assert clf.net_.activation is ACTIVATIONS["sigmoid"]


def test_a_scikit_learn_name_that_is_another_entrys_name_or_alias_is_refused():
    with pytest.raises(ValueError, match=r"sklearn='relu' is the name of the registered activation 'relu'"):
        ln.register_activation("my_tanh", torch.tanh, tanh_gprime, sklearn="relu")
    with pytest.raises(
        ValueError, match=r"sklearn='logistic' is already the scikit-learn name of .* 'sigmoid'"
    ):
        ln.register_activation("my_tanh", torch.tanh, tanh_gprime, sklearn="logistic")
    with pytest.raises(ValueError, match=r"sklearn='softmax' is the name of the registered output head"):
        ln.register_head("my_exp", torch.exp, poisson_cost, poisson_delta, sklearn="softmax")
    assert "my_tanh" not in ACTIVATIONS and "my_exp" not in HEADS


# -- 2. the speed options compute what the formulas do ---------------------------------------------
def test_g_out_that_computes_another_function_is_refused_at_registration():
    with pytest.raises(ValueError, match=r"activation 'leaky_h': g_out\(z, out\) does not write g\(z\)"):
        ln.register_activation(
            "leaky_h", leaky(0.01), leaky_gprime, g_out=lambda z, out: out.copy_(F.leaky_relu(z, 0.1))
        )
    assert "leaky_h" not in ACTIVATIONS
    with pytest.raises(ValueError, match=r"g_out\(z, out\) modified z"):
        ln.register_activation(
            "leaky_h", leaky(0.01), leaky_gprime, g_out=lambda z, out: out.copy_(F.leaky_relu_(z, 0.01))
        )
    with pytest.raises(ValueError, match=r"g_out failed on a float64 probe: RuntimeError"):
        ln.register_activation("leaky_h", leaky(0.01), leaky_gprime, g_out=lambda z, out: out.copy_(z[:, :2]))


def test_fused_backward_that_differs_from_gprime_is_refused_at_registration():
    with pytest.raises(
        ValueError, match=r"activation 'tanh_h': fused_backward\(delta, a\) differs from delta \* gprime"
    ):
        ln.register_activation("tanh_h", torch.tanh, tanh_gprime, lambda d, a: d * (1 - a))
    with pytest.raises(ValueError, match="fused_backward failed on a float64 probe"):
        ln.register_activation("tanh_h", torch.tanh, tanh_gprime, lambda d: d)
    assert "tanh_h" not in ACTIVATIONS


def test_consistent_speed_options_are_accepted_and_train_the_network_that_predicts(registered):
    entry = ln.register_activation(
        "leaky_h",
        leaky(0.01),
        leaky_gprime,
        lambda d, a: d * leaky_gprime(a),
        g_out=lambda z, out: out.copy_(F.leaky_relu(z, 0.01)),
    )
    registered.append("leaky_h")
    net = ln.ThetaMLP([3, 5, 1], entry, "identity", generator=0, dtype=F64)
    X, Y = counts_batch()
    assert ln.gradient_check(net, X, Y, 0.1).passed


def test_gradient_check_checks_g_out_on_the_datas_z(registered):
    """g_out right on the registration probe (|z| <= 8) but wrong beyond: caught on the data."""

    def g_out(z, out):
        return out.copy_(torch.where(z.abs() > 10, 0.1 * z, F.leaky_relu(z, 0.01)))

    ln.register_activation("leaky_far", leaky(0.01), leaky_gprime, g_out=g_out)
    registered.append("leaky_far")
    net = ln.ThetaMLP([3, 5, 1], "leaky_far", "identity", generator=0, dtype=F64)
    X, Y = counts_batch()
    assert ln.gradient_check(net, X, Y).passed  # ordinary z: g_out agrees
    with pytest.raises(ValueError, match=r"activation 'leaky_far': g_out\(z, out\) does not write g\(z\)"):
        ln.gradient_check(net, 100 * X, Y)


# -- 3. the weighted cost ------------------------------------------------------------------------
def test_gradient_check_with_weights_catches_a_head_that_ignores_them(registered):
    ln.register_head(
        "pois_noweight", torch.exp, poisson_cost_ignoring_weight, poisson_delta, tasks=("regression",)
    )
    ln.register_head("pois_ok", torch.exp, poisson_cost, poisson_delta, tasks=("regression",))
    registered += ["pois_noweight", "pois_ok"]
    X, Y = counts_batch()
    w = torch.linspace(0.2, 3.0, 12, dtype=F64)
    bad = ln.ThetaMLP([3, 4, 1], "tanh", "pois_noweight", generator=0, dtype=F64)
    assert ln.gradient_check(bad, X, Y, 0.1).passed  # without weights the bug is invisible
    assert not ln.gradient_check(bad, X, Y, 0.1, sample_weight=w).passed
    good = ln.ThetaMLP([3, 4, 1], "tanh", "pois_ok", generator=0, dtype=F64)
    assert ln.gradient_check(good, X, Y, 0.1, sample_weight=w).passed
    assert ln.gradient_check(good, X, Y, 0.1, sample_weight=w.numpy()).passed  # any array form
    with pytest.raises(ValueError, match="sample_weight"):
        ln.gradient_check(good, X, Y, sample_weight=-w)


# -- 4. every field of an entry is checked at registration ------------------------------------------
@pytest.mark.parametrize(
    "field, value, error, message",
    [
        ("class_indices", "no", TypeError, r"class_indices must be True or False, got 'no'"),
        ("min_outputs", "x", TypeError, r"min_outputs must be an integer >= 1, got 'x'"),
        ("min_outputs", 0, ValueError, r"min_outputs must be an integer >= 1, got 0"),
        ("min_outputs", True, TypeError, r"min_outputs must be an integer >= 1, got True"),
        ("cost_and_delta", 3, TypeError, r"cost_and_delta must be callable or None, got 3"),
        ("explain", "text", TypeError, r"explain must be callable or None, got 'text'"),
        ("tasks", ("regression", 5), ValueError, r"unknown task\(s\) \[5\]"),
        ("tasks", 5, TypeError, r"tasks must be a task name or a tuple of them"),
        ("tasks", ("regression", "regression"), ValueError, r"name a task twice"),
        ("sklearn", 5, TypeError, r"sklearn must be a non-empty str or None, got 5"),
        ("onnx", 5, TypeError, r"onnx must be a non-empty str or None, got 5"),
        ("torch_module", nn.Identity(), TypeError, r"got the instance Identity\(\); pass its class"),
        ("torch_module", lambda: 3, TypeError, r"torch_module\(\) returned int 3"),
        ("torch_module", lambda dim: nn.Softmax(dim), TypeError, r"calling torch_module\(\) failed"),
    ],
)
def test_register_head_refuses_bad_fields(field, value, error, message):
    with pytest.raises(error, match=rf"^head 'bad_head': .*{message}"):
        ln.register_head("bad_head", torch.exp, poisson_cost, poisson_delta, **{field: value})
    assert "bad_head" not in HEADS


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("torch_module", nn.Sigmoid(), r"got the instance Sigmoid\(\); pass its class \(nn.Sigmoid\)"),
        ("torch_module", "Tanh", r"torch_module must be a torch.nn.Module class .*, got 'Tanh'"),
        ("onnx", 5, r"onnx must be a non-empty str or None, got 5"),
        ("sklearn", ["tanh"], r"sklearn must be a non-empty str or None, got \['tanh'\]"),
        ("sklearn", "", r"sklearn must be a non-empty str or None, got ''"),
    ],
)
def test_register_activation_refuses_bad_fields(field, value, message):
    with pytest.raises(TypeError, match=rf"^activation 'bad_act': .*{message}"):
        ln.register_activation("bad_act", torch.tanh, tanh_gprime, **{field: value})
    assert "bad_act" not in ACTIVATIONS


def test_a_module_class_or_factory_is_accepted_and_exports(registered):
    ln.register_activation("tanh_cls", torch.tanh, tanh_gprime, torch_module=nn.Tanh)
    ln.register_activation("leaky_fac", leaky(0.01), leaky_gprime, torch_module=lambda: nn.LeakyReLU(0.01))
    registered += ["tanh_cls", "leaky_fac"]
    for name in ("tanh_cls", "leaky_fac"):
        net = ln.ThetaMLP([3, 4, 1], name, "identity", generator=0, dtype=F64)
        X = torch.randn(5, 3, dtype=F64)
        torch.testing.assert_close(net.to_sequential()(X), net(X), rtol=0, atol=1e-12)


# -- 5. names ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["a\nb", "a/b", "a=b", "a b", "a,b", "1a", "", "a'b", "a[0]", "-a", " relu "]
)
def test_names_hydra_overrides_and_file_names_cannot_carry_are_refused(name):
    with pytest.raises(ValueError, match=r"activation name must be .*letters, digits, '_', '\.', '-'.*got"):
        ln.register_activation(name, torch.tanh, tanh_gprime)
    with pytest.raises(ValueError, match=r"output head name must be"):
        ln.register_head(name, torch.exp, poisson_cost, poisson_delta)
    assert name not in ACTIVATIONS and name not in HEADS


def test_a_name_that_is_not_a_str_is_a_type_error():
    with pytest.raises(TypeError, match=r"activation name must be a str, got 5 \(int\)"):
        ln.register_activation(5, torch.tanh, tanh_gprime)


def test_builtin_names_fit_the_name_rule():
    for registry in (ACTIVATIONS, HEADS):
        for name, entry in registry.items():
            assert NAME_PATTERN.fullmatch(name) and (
                entry.sklearn is None or NAME_PATTERN.fullmatch(entry.sklearn)
            )


def test_unhashable_lookups_get_the_registrys_own_message():
    with pytest.raises(
        TypeError,
        match=r"activation must be a name \(str\), got \['relu'\] \(list\); choose one of .*'logistic'",
    ):
        ln.ThetaMLPClassifier(activation=["relu"]).fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(TypeError, match=r"activation must be a name \(str\), got \['relu'\] \(list\)"):
        ln.ThetaMLP([2, 3, 1], ["relu"])
    with pytest.raises(TypeError, match=r"output head must be a name \(str\), got \{'h': 1\} \(dict\)"):
        ln.ThetaMLP([2, 3, 1], "relu", {"h": 1})


# -- 6. gradient_check's own arguments ----------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"max_entries_per_layer": 0}, ValueError, r"max_entries_per_layer must be an integer >= 1, got 0"),
        (
            {"max_entries_per_layer": 2.5},
            TypeError,
            r"max_entries_per_layer must be an integer >= 1, got 2.5",
        ),
        (
            {"max_entries_per_layer": True},
            TypeError,
            r"max_entries_per_layer must be an integer >= 1, got True",
        ),
        ({"tol": -1}, ValueError, r"tol must be a finite number > 0, got -1"),
        ({"tol": 0}, ValueError, r"tol must be a finite number > 0, got 0"),
        ({"tol": float("nan")}, ValueError, r"tol must be a finite number > 0, got nan"),
        ({"tol": "1e-7"}, TypeError, r"tol must be a finite number > 0, got '1e-7'"),
        ({"eps": float("inf")}, ValueError, r"eps must be a finite number > 0, got inf"),
        ({"eps": "0.1"}, TypeError, r"eps must be a finite number > 0, got '0.1'"),
        ({"seed": 1.5}, TypeError, r"seed must be an integer, got 1.5"),
    ],
)
def test_gradient_check_refuses_bad_arguments(kwargs, error, message):
    net = ln.ThetaMLP([3, 4, 1], "tanh", "identity", generator=0, dtype=F64)
    X, Y = counts_batch()
    with pytest.raises(error, match=rf"^{message}$"):
        ln.gradient_check(net, X, Y, **kwargs)


def test_gradient_check_with_one_entry_per_layer():
    net = ln.ThetaMLP([3, 4, 1], "tanh", "identity", generator=0, dtype=F64)
    X, Y = counts_batch()
    result = ln.gradient_check(net, X, Y, max_entries_per_layer=1)
    assert result.passed and [c.n_checked for c in result.layers] == [1, 1]


# -- 7. to_sklearn of a Poisson head --------------------------------------------------------------
def test_to_sklearn_of_the_poisson_head_is_a_poisson_regressor():
    """The built-in poisson head (sklearn="exp"; examples/my_plugin.py registered one before it was
    built in) is an MLPRegressor(loss="poisson"), and back."""
    from sklearn.neural_network import MLPRegressor

    net = ln.ThetaMLP([3, 5, 1], "tanh", "poisson", generator=0, dtype=F64)
    est = ln.to_sklearn(net)
    assert type(est) is MLPRegressor and est.loss == "poisson" and est.out_activation_ == "exp"
    X, Y = counts_batch()
    np.testing.assert_allclose(est.predict(X.numpy()), net(X).detach().numpy()[:, 0], rtol=1e-12)
    assert ln.from_sklearn(est).head is HEADS["poisson"]
    assert ln.to_sklearn(ln.ThetaMLP([3, 5, 1], "tanh", "identity")).loss == "squared_error"


def test_to_sklearn_refuses_a_regression_head_scikit_learn_has_no_loss_for(registered):
    ln.register_head(
        "tanh_out", torch.tanh, poisson_cost, poisson_delta, tasks=("regression",), sklearn="tanh"
    )
    registered.append("tanh_out")
    with pytest.raises(
        ValueError, match=r"regression head 'tanh_out' has scikit-learn name 'tanh'.*'exp', 'identity'"
    ):
        ln.to_sklearn(ln.ThetaMLP([3, 4, 1], "tanh", "tanh_out"))


# -- 8. float class indices ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_float_class_indices_are_named_as_such(dtype):
    net = ln.ThetaMLP([2, 3, 3], "tanh", "softmax", generator=0)
    X = torch.randn(4, 2)
    y = torch.tensor([0, 1, 2, 1]).to(dtype)
    with pytest.raises(
        TypeError,
        match=rf"class indices for the softmax head must be integers .*got dtype {dtype}; pass Y.long\(\)",
    ):
        net.cost(X, y)
    torch.testing.assert_close(net.cost(X, y.long()), net.cost(X, F.one_hot(y.long(), 3).float()))
