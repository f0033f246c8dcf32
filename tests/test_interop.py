"""Interop: scikit-learn MLPs, torch.nn.Sequential, .npz/.mat files and ONNX hold the same Θ^(l)."""

import importlib.util
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.io
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler
from torch import nn

import lecturenn as ln
from lecturenn.interop.files import load_thetas, save_thetas
from lecturenn.interop.sklearn import from_sklearn, to_sklearn
from lecturenn.interop.torch_nn import from_sequential, to_sequential

ACTIVATIONS = ("sigmoid", "tanh", "softplus", "relu", "identity")
HEADS = ("sigmoid", "softmax", "identity")
SK_ACTIVATIONS = {"logistic": "sigmoid", "tanh": "tanh", "relu": "relu", "identity": "identity"}
F64 = torch.float64


def fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def standardized(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def iris():
    return standardized(load_iris)


@pytest.fixture(scope="module")
def cancer():
    return standardized(load_breast_cancer)


@pytest.fixture(scope="module")
def diabetes():
    X, y = standardized(load_diabetes)
    y = (y - y.mean()) / y.std()
    return X, y, np.column_stack([y, 0.5 * X[:, 0] + y**2])


def lbfgs(cls, act="tanh", hidden=(5,), alpha=0.3, max_iter=40, **kw):
    return cls(
        hidden_layer_sizes=hidden,
        activation=act,
        solver="lbfgs",
        alpha=alpha,
        max_iter=max_iter,
        tol=1e-12,
        random_state=0,
        **kw,
    )


def random_net(hidden="tanh", output="softmax", sizes=(4, 5, 6, 3), dtype=F64, **kw):
    return ln.ThetaMLP(list(sizes), hidden=hidden, output=output, generator=0, dtype=dtype, **kw)


def batch(net, n=9, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, net.sizes[0], generator=gen, dtype=net.thetas[0].dtype)


def h(net, X):
    with torch.no_grad():
        return net(torch.as_tensor(X, dtype=net.thetas[0].dtype)).numpy()


def assert_same_thetas(a, b):
    assert [tuple(t.shape) for t in a.thetas] == [tuple(t.shape) for t in b.thetas]
    for ta, tb in zip(a.thetas, b.thetas):
        assert ta.dtype == tb.dtype
        assert torch.equal(ta.detach(), tb.detach())


# -- scikit-learn -> lecturenn ------------------------------------------------------------------
@pytest.mark.parametrize("sk_act", SK_ACTIVATIONS)
def test_from_sklearn_multiclass_predict_proba(iris, sk_act):
    X, y = iris
    est = fit(lbfgs(MLPClassifier, sk_act, hidden=(6, 4)), X, y)
    net = from_sklearn(est)
    assert net.sizes == [4, 6, 4, 3] and net.activation.name == SK_ACTIVATIONS[sk_act]
    assert net.head.name == "softmax" and net.thetas[0].dtype == F64
    W, b = est.coefs_[0], est.intercepts_[0]
    assert np.array_equal(net.theta(1).detach().numpy(), np.column_stack([b, W.T]))
    np.testing.assert_allclose(h(net, X), est.predict_proba(X), rtol=0, atol=1e-12)


def test_from_sklearn_binary_and_multilabel(cancer, iris):
    X, y = cancer
    est = fit(lbfgs(MLPClassifier, "logistic", hidden=(4,)), X, y)
    net = from_sklearn(est)
    assert net.head.name == "sigmoid" and net.sizes[-1] == 1
    proba = est.predict_proba(X)  # (n, 2) = [1 - p, p]
    np.testing.assert_allclose(h(net, X)[:, 0], proba[:, 1], rtol=0, atol=1e-12)

    Xi, yi = iris
    Y = np.column_stack([yi == 0, yi == 2, Xi[:, 0] > 0]).astype(int)  # multi-label indicator
    est = fit(lbfgs(MLPClassifier, "relu", hidden=(5,)), Xi, Y)
    net = from_sklearn(est)
    assert net.head.name == "sigmoid" and net.sizes[-1] == 3
    np.testing.assert_allclose(h(net, Xi), est.predict_proba(Xi), rtol=0, atol=1e-12)


def test_from_sklearn_regressor_single_and_multi_output(diabetes):
    X, y, Y2 = diabetes
    for target, K in ((y, 1), (Y2, 2)):
        est = fit(lbfgs(MLPRegressor, "relu", hidden=(6,)), X, target)
        net = from_sklearn(est, backprop="autograd")
        assert net.head.name == "identity" and net.sizes[-1] == K and net.backprop == "autograd"
        pred = est.predict(X)
        assert pred.shape == ((len(X),) if K == 1 else (len(X), 2))
        np.testing.assert_allclose(h(net, X).reshape(pred.shape), pred, rtol=0, atol=1e-12)


def test_from_sklearn_keeps_float32(iris):
    X, y = iris
    est = MLPClassifier(hidden_layer_sizes=(5,), activation="tanh", solver="adam", max_iter=5, random_state=0)
    est = fit(est, X.astype(np.float32), y)  # lbfgs works in float64; adam keeps float32
    assert est.coefs_[0].dtype == np.float32
    net = from_sklearn(est)
    assert all(t.dtype == torch.float32 for t in net.thetas)
    np.testing.assert_allclose(
        h(net, X.astype(np.float32)), est.predict_proba(X.astype(np.float32)), atol=1e-6
    )


def test_from_sklearn_bad_input(diabetes):
    X, y, _ = diabetes
    with pytest.raises(NotFittedError):
        from_sklearn(MLPClassifier())
    with pytest.raises(TypeError, match="MLPClassifier or MLPRegressor"):
        from_sklearn(StandardScaler().fit(X))
    poisson = fit(lbfgs(MLPRegressor, "relu", max_iter=5, loss="poisson"), X, np.exp(y))
    assert from_sklearn(poisson).head.name == "poisson"  # out_activation_ "exp": the built-in head
    poisson.out_activation_ = "tanh"  # no head has it
    with pytest.raises(ValueError, match=r"out_activation_ = 'tanh' has no lecturenn output head"):
        from_sklearn(poisson)


# -- the cost: est.loss_ vs net.cost ------------------------------------------------------------
def test_cost_equals_sklearn_loss_multiclass(iris):
    X, y = iris
    est = fit(lbfgs(MLPClassifier, "tanh", alpha=0.3, max_iter=50), X, y)
    net = from_sklearn(est)
    idx = np.searchsorted(est.classes_, y)
    J = net.cost(torch.from_numpy(X), torch.from_numpy(idx), lam=est.alpha).item()
    assert J == pytest.approx(est.loss_, rel=1e-13, abs=1e-15)
    onehot = torch.nn.functional.one_hot(torch.from_numpy(idx), 3).to(F64)
    assert net.cost(torch.from_numpy(X), onehot, lam=est.alpha).item() == pytest.approx(est.loss_, rel=1e-13)
    assert net.cost(torch.from_numpy(X), torch.from_numpy(idx), lam=0.0).item() < est.loss_  # R > 0


def test_cost_equals_sklearn_loss_binary(cancer):
    X, y = cancer
    est = fit(lbfgs(MLPClassifier, "logistic", hidden=(4,), alpha=0.5, max_iter=50), X, y)
    net = from_sklearn(est)
    Y = (y == est.classes_[1]).astype(np.float64)[:, None]  # 0/1 column, 1 = classes_[1]
    J = net.cost(torch.from_numpy(X), torch.from_numpy(Y), lam=est.alpha).item()
    assert J == pytest.approx(est.loss_, rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("K", [1, 2])
def test_cost_relation_regressor(diabetes, K):
    X, y, Y2 = diabetes
    target = y if K == 1 else Y2
    est = fit(lbfgs(MLPRegressor, "relu", hidden=(6,), alpha=0.7, max_iter=50), X, target)
    net = from_sklearn(est)
    J = net.cost(torch.from_numpy(X), torch.from_numpy(target), lam=2 * K * est.alpha).item()
    assert J / (2 * K) == pytest.approx(est.loss_, rel=1e-13, abs=1e-15)
    # the naive λ = alpha does not match (the relation is not a coincidence of the fit)
    J_naive = net.cost(torch.from_numpy(X), torch.from_numpy(target), lam=est.alpha).item()
    assert abs(J_naive / (2 * K) - est.loss_) > 1e-6


# -- lecturenn -> scikit-learn ------------------------------------------------------------------
TO_SK_CASES = [
    ("sigmoid", 1),  # binary
    ("sigmoid", 3),  # multi-label
    ("softmax", 2),
    ("softmax", 4),
    ("identity", 1),
    ("identity", 2),
]


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "identity"])
@pytest.mark.parametrize("head, K", TO_SK_CASES)
def test_to_sklearn_matches_net_and_round_trips(act, head, K):
    net = random_net(act, head, sizes=(4, 6, 5, K))
    X = batch(net).numpy()
    est = to_sklearn(net)
    expected = h(net, X)
    if head == "identity":
        assert isinstance(est, MLPRegressor)
        np.testing.assert_allclose(est.predict(X), expected[:, 0] if K == 1 else expected, rtol=0, atol=1e-12)
        assert np.isfinite(est.score(X, expected))
    else:
        assert isinstance(est, MLPClassifier)
        proba = est.predict_proba(X)
        if K == 1:
            np.testing.assert_allclose(proba[:, 1], expected[:, 0], rtol=0, atol=1e-12)
            assert np.array_equal(est.classes_, [0, 1])
            assert np.array_equal(est.predict(X), (expected[:, 0] > 0.5).astype(int))
        else:
            np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-12)
            pred = est.predict(X)
            if head == "softmax":
                assert np.array_equal(pred, expected.argmax(axis=1))
            else:
                assert np.array_equal(pred, (expected > 0.5).astype(int))
    assert est.n_iter_ == 0 and est.n_features_in_ == 4
    back = from_sklearn(est)
    assert back.activation.name == act and back.head.name == head
    assert_same_thetas(back, net)


def test_sklearn_round_trip_keeps_estimator(iris):
    X, y = iris
    est = fit(lbfgs(MLPClassifier, "relu", hidden=(5,)), X, y)
    est2 = to_sklearn(from_sklearn(est), classes=est.classes_)
    for a, b in zip(est.coefs_ + est.intercepts_, est2.coefs_ + est2.intercepts_):
        assert np.array_equal(a, b)
    assert np.array_equal(est.predict_proba(X), est2.predict_proba(X))
    assert np.array_equal(est.predict(X), est2.predict(X))
    assert est2.get_params()["hidden_layer_sizes"] == (5,) and est2.activation == "relu"


def test_to_sklearn_classes_and_dtype():
    net = random_net("tanh", "softmax", sizes=(4, 5, 3))
    X = batch(net).numpy()
    est = to_sklearn(net, classes=["setosa", "versicolor", "virginica"])
    assert list(est.predict(X)) == [["setosa", "versicolor", "virginica"][i] for i in h(net, X).argmax(1)]
    binary = to_sklearn(random_net("relu", "sigmoid", sizes=(4, 3, 1)), classes=["no", "yes"])
    p = h(random_net("relu", "sigmoid", sizes=(4, 3, 1)), X)[:, 0]
    assert list(binary.predict(X)) == ["yes" if v > 0.5 else "no" for v in p]
    with pytest.raises(ValueError, match="2 labels"):
        to_sklearn(random_net("relu", "sigmoid", sizes=(4, 3, 1)), classes=[0, 1, 2])
    with pytest.raises(ValueError, match="None for a regression"):
        to_sklearn(random_net("relu", "identity"), classes=[0, 1, 2])
    est32 = to_sklearn(random_net("tanh", "softmax", dtype=torch.float32))
    assert est32.coefs_[0].dtype == np.float32
    assert from_sklearn(est32).thetas[0].dtype == torch.float32


def test_to_sklearn_bad_input():
    with pytest.raises(ValueError, match="softplus"):
        to_sklearn(random_net("softplus", "softmax"))
    with pytest.raises(ValueError, match="batch normalisation"):
        to_sklearn(random_net("tanh", "softmax", batchnorm=True))
    with pytest.raises(TypeError):
        to_sklearn(nn.Linear(3, 2))
    est = to_sklearn(random_net("tanh", "softmax"))
    with pytest.raises(ValueError, match="features"):
        est.predict(np.zeros((3, 7)))  # scikit-learn's own check: 7 features, expecting 4


def test_to_sklearn_warm_start_continues_training(iris):
    X, y = iris
    net = random_net("tanh", "softmax", sizes=(4, 5, 3))
    for solver in ("lbfgs", "adam"):
        est = to_sklearn(net).set_params(warm_start=True, solver=solver, max_iter=20, random_state=0)
        J0 = net.cost(torch.from_numpy(X), torch.from_numpy(y)).item()
        fit(est, X, y)
        J1 = from_sklearn(est).cost(torch.from_numpy(X), torch.from_numpy(y)).item()
        assert J1 < J0  # continued from Θ, not from a fresh initialisation


# -- torch.nn.Sequential ------------------------------------------------------------------------
MODULES = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "relu": nn.ReLU,
    "identity": nn.Identity,
}


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("head", HEADS)
def test_to_sequential_and_back(act, head):
    net = random_net(act, head)
    seq = to_sequential(net)
    kinds = [type(m) for m in seq]
    expected = [nn.Linear, MODULES[act], nn.Linear, MODULES[act], nn.Linear]
    expected += {"sigmoid": [nn.Sigmoid], "softmax": [nn.Softmax], "identity": []}[head]
    assert kinds == expected
    assert torch.equal(seq[0].weight, net.theta(1)[:, 1:]) and torch.equal(seq[0].bias, net.theta(1)[:, 0])
    X = batch(net)
    torch.testing.assert_close(seq(X), net(X), rtol=0, atol=1e-12)
    back = from_sequential(seq)
    assert (back.activation.name, back.head.name, back.backprop) == (act, head, "manual")
    assert_same_thetas(back, net)
    seq2 = to_sequential(back)
    for a, b in zip(seq.state_dict().values(), seq2.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_from_sequential_of_a_plain_torch_model(act):
    torch.manual_seed(3)
    module = MODULES[act]
    seq = nn.Sequential(
        nn.Linear(3, 7), module(), nn.Linear(7, 2), module(), nn.Linear(2, 4), nn.Softmax(dim=-1)
    )
    seq = seq.to(F64)
    net = from_sequential(seq, backprop="autograd")
    assert net.sizes == [3, 7, 2, 4] and net.backprop == "autograd" and net.activation.name == act
    X = batch(net)
    torch.testing.assert_close(net(X), seq(X), rtol=0, atol=1e-12)
    seq2 = to_sequential(net)
    torch.testing.assert_close(seq2(X), seq(X), rtol=0, atol=1e-12)
    J = net.cost(X, torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0]))
    J.backward()  # the converted net trains like any ThetaMLP
    assert all(t.grad is not None for t in net.thetas)


def test_from_sequential_accepts_linear_chains_nested_and_bias_free():
    seq = nn.Sequential(
        nn.Linear(3, 4), nn.Linear(4, 2, bias=False), nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
    )
    net = from_sequential(seq)
    assert net.activation.name == "identity" and net.head.name == "sigmoid" and net.sizes == [3, 4, 2, 1]
    assert torch.equal(net.theta(2)[:, 0], torch.zeros(2))
    X = torch.randn(5, 3)
    torch.testing.assert_close(net(X), seq(X))
    single = from_sequential(nn.Sequential(nn.Linear(3, 2)))  # L = 1, linear regression
    assert single.sizes == [3, 2] and single.head.name == "identity"


@pytest.mark.parametrize(
    "seq, match",
    [
        (nn.Sequential(nn.Linear(3, 4), nn.Conv2d(1, 1, 1), nn.Linear(4, 2)), r"module 1 \(nn.Conv2d\)"),
        (nn.Sequential(nn.Linear(3, 4), nn.Softplus(beta=2), nn.Linear(4, 2)), r"module 1 .*beta = 2"),
        (nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(-0.2), nn.Linear(4, 2)), r"module 1 .*slope -0.2"),
        (
            nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)),
            r"module 3 \(nn.ReLU\).*'tanh'.*one hidden activation",
        ),
        (
            nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.Linear(4, 2)),
            r"module 3 \(nn.Linear\) follows module 2 .*no activation",
        ),
        (nn.Sequential(nn.Linear(3, 2), nn.LogSoftmax(dim=1)), r"module 1 \(nn.LogSoftmax\).*output head"),
        (nn.Sequential(nn.Linear(3, 2), nn.Softmax(dim=0)), r"module 1 .*dim=1"),
        (nn.Sequential(nn.Linear(3, 2), nn.Sigmoid(), nn.Sigmoid()), r"module 2 \(nn.Sigmoid\)"),
        (nn.Sequential(nn.ReLU(), nn.Linear(3, 2)), r"module 0 \(nn.ReLU\) comes before"),
        (nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(5, 2)), r"module 2 .*in_features = 5"),
        (nn.Sequential(nn.Tanh()), "no nn.Linear"),
        (nn.Sequential(), "empty"),
    ],
)
def test_from_sequential_refuses_what_thetamlp_cannot_hold(seq, match):
    with pytest.raises(ValueError, match=match):
        from_sequential(seq)


def test_from_sequential_type_errors():
    with pytest.raises(TypeError, match="nn.Sequential"):
        from_sequential(nn.Linear(3, 2))


def test_batchnorm_and_dropout_round_trip():
    net = random_net("relu", "softmax", batchnorm=True, dropout=0.25)
    net.train()
    for _ in range(3):  # move the running statistics away from their initial values
        net(batch(net, n=16, seed=_))
    net.eval()
    seq = to_sequential(net)
    assert [type(m) for m in seq][:4] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout]
    assert not seq.training
    X = batch(net)
    torch.testing.assert_close(seq(X), net(X), rtol=0, atol=1e-12)
    back = from_sequential(seq)
    assert back.norms is not None and back.dropout == 0.25 and not back.training
    torch.testing.assert_close(back(X), net(X), rtol=0, atol=1e-12)
    mixed = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 4), nn.Dropout(0.2), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="dropout"):
        from_sequential(mixed)


def test_thetamlp_methods_when_present():
    if not hasattr(ln.ThetaMLP, "to_sequential") or not hasattr(ln.ThetaMLP, "from_sequential"):
        pytest.skip("ThetaMLP.to_sequential / from_sequential not added yet")
    net = random_net("tanh", "sigmoid")
    seq = net.to_sequential()
    X = batch(net)
    torch.testing.assert_close(seq(X), net(X), rtol=0, atol=1e-12)
    back = ln.ThetaMLP.from_sequential(seq)
    assert isinstance(back, ln.ThetaMLP)
    assert_same_thetas(back, net)


def test_lazy_names_on_the_package():
    assert ln.from_sklearn is from_sklearn and ln.to_sklearn is to_sklearn
    assert ln.save_thetas is save_thetas and ln.load_thetas is load_thetas
    import lecturenn.interop as interop

    assert interop.to_sequential is to_sequential and interop.from_sequential is from_sequential


def test_subpackages_are_attributes_after_a_plain_import():
    # README: `lecturenn.data.NpyStreamDataModule(...)` after `import lecturenn` gave AttributeError (a
    # newcomer's find); a fresh interpreter, since this test session has imported them all already
    code = (
        "import sys, lecturenn\n"
        "assert 'sklearn' not in sys.modules and 'lecturenn.data' not in sys.modules\n"
        "print(lecturenn.data.NpyStreamDataModule.__name__, lecturenn.training.ThetaMLPModule.__name__,\n"
        "      lecturenn.estimators.ThetaMLPRegressor.__name__, lecturenn.interop.to_sequential.__name__,\n"
        "      'data' in dir(lecturenn))\n"
        "lecturenn.nope\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == [
        "NpyStreamDataModule",
        "ThetaMLPModule",
        "ThetaMLPRegressor",
        "to_sequential",
        "True",
    ]
    assert "AttributeError: module 'lecturenn' has no attribute 'nope'" in proc.stderr


# -- files ------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_npz_round_trip(tmp_path, head, dtype):
    net = random_net("softplus", head, dtype=dtype, dropout=0.1)
    path = save_thetas(net, tmp_path / "net.npz")
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ["Theta1", "Theta2", "Theta3", "architecture"]
        assert f["Theta1"].shape == (5, 5) and f["Theta1"].dtype == net.thetas[0].detach().numpy().dtype
        arch = json.loads(str(f["architecture"]))
    assert arch["sizes"] == [4, 5, 6, 3] and arch["hidden"] == "softplus" and arch["output"] == head
    back = load_thetas(path, backprop="autograd")
    assert back.config == {**net.config, "backprop": "autograd"}
    assert_same_thetas(back, net)


@pytest.mark.parametrize("head", HEADS)
def test_mat_round_trip(tmp_path, head):
    net = random_net("tanh", head)
    path = save_thetas(net, tmp_path / "weights.mat")
    m = scipy.io.loadmat(path)
    assert {"Theta1", "Theta2", "Theta3", "sizes", "hidden", "output"} <= set(m)
    assert [m[f"Theta{l}"].shape for l in (1, 2, 3)] == [(5, 5), (6, 6), (3, 7)]
    assert m["Theta1"].dtype == np.float64
    np.testing.assert_array_equal(m["Theta2"], net.theta(2).detach().numpy())
    assert m["sizes"].ravel().tolist() == [4, 5, 6, 3] and str(m["output"][0]) == head
    back = load_thetas(path)
    assert (back.activation.name, back.head.name) == ("tanh", head)
    assert_same_thetas(back, net)


def test_ex4_style_mat_loads_as_the_exercise_network(tmp_path):
    rng = np.random.default_rng(0)
    Theta1, Theta2 = rng.normal(size=(25, 401)) * 0.1, rng.normal(size=(10, 26)) * 0.1
    scipy.io.savemat(tmp_path / "ex4weights.mat", {"Theta1": Theta1, "Theta2": Theta2})
    net = load_thetas(tmp_path / "ex4weights.mat")
    assert net.sizes == [400, 25, 10] and net.activation.name == "sigmoid" and net.head.name == "sigmoid"
    assert net.thetas[0].dtype == F64
    X = rng.normal(size=(3, 400))
    a2 = 1 / (1 + np.exp(-(np.column_stack([np.ones(3), X]) @ Theta1.T)))
    h_ex4 = 1 / (1 + np.exp(-(np.column_stack([np.ones(3), a2]) @ Theta2.T)))  # the exercise's predict.m
    np.testing.assert_allclose(h(net, X), h_ex4, rtol=0, atol=1e-12)
    assert load_thetas(tmp_path / "ex4weights.mat", dtype=torch.float32).thetas[1].dtype == torch.float32


def test_files_bad_input(tmp_path):
    rng = np.random.default_rng(0)
    scipy.io.savemat(
        tmp_path / "bad.mat", {"Theta1": rng.normal(size=(24, 401)), "Theta2": rng.normal(size=(10, 26))}
    )
    with pytest.raises(
        ValueError, match="Theta2 has 26 columns, so it expects s_2 = 25 units, but Theta1 gives s_2 = 24"
    ):
        load_thetas(tmp_path / "bad.mat")
    scipy.io.savemat(tmp_path / "none.mat", {"W": np.ones((2, 3))})
    with pytest.raises(ValueError, match="no Theta1"):
        load_thetas(tmp_path / "none.mat")
    scipy.io.savemat(tmp_path / "gap.mat", {"Theta1": np.ones((2, 3)), "Theta3": np.ones((2, 3))})
    with pytest.raises(ValueError, match="missing Theta2"):
        load_thetas(tmp_path / "gap.mat")
    theta = np.ones((2, 3))
    theta[1, 2] = np.nan
    np.savez(tmp_path / "nan.npz", Theta1=theta)
    with pytest.raises(ValueError, match="Theta1 contains NaN or inf.*row 1, column 2"):
        load_thetas(tmp_path / "nan.npz")
    np.savez(
        tmp_path / "sizes.npz", Theta1=np.ones((2, 3)), architecture=np.array(json.dumps({"sizes": [3, 2]}))
    )
    with pytest.raises(ValueError, match="do not match"):
        load_thetas(tmp_path / "sizes.npz")
    np.savez(tmp_path / "head.npz", Theta1=np.ones((2, 3)), architecture=np.array('{"output": "cosine"}'))
    with pytest.raises(ValueError, match="cosine"):
        load_thetas(tmp_path / "head.npz")
    (tmp_path / "net.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match="extension '.txt'"):
        load_thetas(tmp_path / "net.txt")
    with pytest.raises(ValueError, match="extension"):
        save_thetas(random_net(), tmp_path / "net.pt")
    with pytest.raises(FileNotFoundError):
        load_thetas(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="batch normalisation"):
        save_thetas(random_net(batchnorm=True), tmp_path / "bn.npz")


def test_npz_loading_never_unpickles(tmp_path, monkeypatch):
    import pickle

    calls = []
    for name in ("load", "loads"):
        real = getattr(pickle, name)
        monkeypatch.setattr(pickle, name, lambda *a, _real=real, **k: calls.append(a) or _real(*a, **k))
    obj = np.empty(1, dtype=object)
    obj[0] = {"evil": True}
    np.savez(tmp_path / "objects.npz", Theta1=np.ones((2, 3)), extra=obj)
    with pytest.raises(ValueError, match="'extra' is an object array.*never unpickles"):
        load_thetas(tmp_path / "objects.npz")
    np.savez(tmp_path / "obj_theta.npz", Theta1=obj)
    with pytest.raises(ValueError, match="never unpickles"):
        load_thetas(tmp_path / "obj_theta.npz")
    with open(tmp_path / "pickled.npz", "wb") as f:
        pickle.dump({"Theta1": np.ones((2, 3))}, f)
    with pytest.raises(ValueError, match="never unpickles"):
        load_thetas(tmp_path / "pickled.npz")
    assert calls == []


def test_uppercase_extension(tmp_path):
    net = random_net("relu", "identity")
    path = save_thetas(net, tmp_path / "NET.NPZ")
    assert path.exists() and not (tmp_path / "NET.NPZ.npz").exists()
    assert_same_thetas(load_thetas(path), net)


# -- ONNX ---------------------------------------------------------------------------------------
ONNX_CASES = [
    ("tanh", "sigmoid", torch.float32),
    ("relu", "softmax", torch.float32),
    ("softplus", "identity", torch.float32),
]


@pytest.mark.slow
@pytest.mark.parametrize("act, head, dtype", ONNX_CASES)
def test_onnx_matches_torch(tmp_path, act, head, dtype):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    net = random_net(act, head, dtype=dtype)
    path = ln.export_onnx(net, tmp_path / "net.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert all(node.domain in ("", "ai.onnx") for node in model.graph.node)  # standard ops only
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"] and [o.name for o in session.get_outputs()] == [
        "h"
    ]
    assert isinstance(session.get_inputs()[0].shape[0], str)  # dynamic batch dimension
    for n in (1, 17):
        X = batch(net, n=n)
        (out,) = session.run(None, {"x": X.numpy()})
        assert out.shape == (n, 3)
        np.testing.assert_allclose(out, h(net, X), rtol=0, atol=1e-5)


def test_onnx_import_error_hint(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r'pip install "lecturenn\[onnx\]"'):
        ln.export_onnx(random_net(), tmp_path / "net.onnx")


@pytest.mark.slow
def test_onnx_torchscript_fallback_without_onnxscript(tmp_path, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a)
    )
    # float64 softplus goes out as plain ops: onnxruntime has no double-precision Softplus kernel
    net = random_net("softplus", "softmax", dtype=F64)
    path = ln.export_onnx(net, tmp_path / "net.onnx", opset=17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        X = batch(net, n=n)
        np.testing.assert_allclose(session.run(None, {"x": X.numpy()})[0], h(net, X), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "content,words",
    [
        (b"MATLAB 5.0 MAT-file, written by lecturenn", "a MATLAB .mat file; ln.load_thetas reads"),
        (b"epoch 1 loss 0.5\n", "not a zip file"),
        (b"\x80\x04\x95 pickled", "a Python pickle; lecturenn never unpickles data"),
        (b"", "empty"),
    ],
)
def test_a_file_that_is_no_npz_is_named_for_what_it_is(tmp_path, content, words):
    """Session-7 hostile note: a .mat (or a text file) given to est.load got numpy's "contains pickled
    data ... allow_pickle=" — advice to unpickle, for a file that is no pickle at all."""
    from lecturenn.estimators import ThetaMLPClassifier

    path = tmp_path / "model.npz"
    path.write_bytes(content)
    for load in (ThetaMLPClassifier.load, ln.load_thetas):
        with pytest.raises(ValueError, match="is not an .npz archive") as err:
            load(path)
        assert words in str(err.value) and "allow_pickle" not in str(err.value)
