"""Hostile inputs against the issue-14 features: estimator files, activation parameters, LAMB,
the learning-rate finder and the network picture. Each test is one fault found by trying it."""

import json
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning

from lecturenn.estimators import ThetaMLPClassifier
from lecturenn.optim import LAMB

X_IRIS, Y_IRIS = load_iris(return_X_y=True)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# -- estimator files: the optimizer state ------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{solver: path} of small fitted classifiers."""
    out = {}
    for solver in ("adam", "lamb", "sgd", "adagrad"):
        est = ThetaMLPClassifier((5,), solver=solver, max_iter=3, random_state=0).fit(X_IRIS, Y_IRIS)
        out[solver] = est.save(tmp_path_factory.mktemp(solver) / "m.npz")
    return out


def _arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _refused(tmp_path, arrays, words):
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=words) as err:
        ThetaMLPClassifier.load(bad)
    assert "\n" not in str(err.value) and "bad.npz" in str(err.value)


@pytest.mark.parametrize(
    "solver, key, value",
    [
        # a 0-d moment passed the shape check; the fused Adam kernel then wrote past its one element
        # (heap corruption: "corrupted double-linked list", the process aborted)
        ("adam", "optimizer.0.exp_avg", np.array(0.5, np.float32)),
        ("adam", "optimizer.0.exp_avg_sq", np.array(0.5, np.float32)),
        ("lamb", "optimizer.1.exp_avg", np.array(0.5, np.float32)),
        ("sgd", "optimizer.0.momentum_buffer", np.array(0.5, np.float32)),
        ("adam", "optimizer.0.step", np.zeros(3, np.float32)),  # step is one number
    ],
)
def test_optimizer_state_of_the_wrong_shape_is_refused(saved, tmp_path, solver, key, value):
    _refused(tmp_path, {**_arrays(saved[solver]), key: value}, "optimizer")


@pytest.mark.parametrize(
    "solver, key, fill",
    [
        ("adam", "optimizer.0.exp_avg_sq", -1.0),  # √ of a negative second moment: NaN weights
        ("adagrad", "optimizer.0.sum", -1.0),
        ("adam", "optimizer.0.step", -1.0),  # bias correction 1 − β^0 = 0: a division by zero
    ],
)
def test_optimizer_state_out_of_range_is_refused(saved, tmp_path, solver, key, fill):
    arrays = _arrays(saved[solver])
    _refused(tmp_path, {**arrays, key: np.full_like(arrays[key], fill)}, "optimizer")


def test_optimizer_state_for_a_parameter_that_does_not_exist_is_refused(saved, tmp_path):
    arrays = _arrays(saved["adam"])
    _refused(tmp_path, {**arrays, "optimizer.-1.exp_avg": arrays["optimizer.0.exp_avg"]}, "optimizer")


def _with_group(arrays, key, value):
    doc = json.loads(str(arrays["estimator"]))
    for kv in doc["optimizer"]["param_groups"][0]["dict"]:
        if kv[0] == key:
            kv[1] = value
    return {**arrays, "estimator": np.array(json.dumps(doc))}


@pytest.mark.parametrize(
    "key, value",
    [
        ("lr", -1.0),  # gradient ascent, silently
        ("lr", float("inf")),
        ("lr", float("nan")),
        ("eps", -1.0),
        ("maximize", True),
        ("weight_decay", -1.0),
        ("amsgrad", True),  # KeyError 'max_exp_avg_sq' at partial_fit
        ("betas", {"tuple": [5.0, 5.0]}),
    ],
)
def test_optimizer_hyperparameters_out_of_range_or_other_options_are_refused(saved, tmp_path, key, value):
    """Options the estimator never sets (amsgrad, maximize) and numbers the optimizer's own
    constructor refuses: before, partial_fit climbed the gradient (lr < 0), produced NaN or raised a
    raw KeyError. (A valid but different number, like any edited Θ, cannot be told from the saved one.)"""
    _refused(tmp_path, _with_group(_arrays(saved["adam"]), key, value), "optimizer")


# -- LAMB ---------------------------------------------------------------------------------------------------
def test_lamb_eps_zero_leaves_an_entry_without_gradient_finite():
    """eps = 0 is allowed; an entry whose gradient has been 0 so far has m = v = 0, so r = 0/0. Before:
    NaN in Θ, silently (the trust ratio's norm was NaN and the update went through)."""
    x = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = LAMB([x], lr=0.1, eps=0.0)
    x.grad = torch.tensor([1.0, 0.0])
    opt.step()
    assert torch.isfinite(x).all() and x[1] == 2.0
    # its direction r = (1, 0): the trust ratio ‖x‖/‖r‖ = √5, so x_1 moves by 0.1·√5
    assert torch.allclose(x[0], torch.tensor(1.0 - 0.1 * 5**0.5))


@pytest.mark.parametrize(
    "group, word",
    [({"lr": -1.0}, "lr"), ({"betas": (2.0, 2.0)}, "betas"), ({"eps": float("nan")}, "eps"),
     ({"weight_decay": -1.0}, "weight_decay"), ({"norm_bounds": (2.0, 1.0)}, "norm_bounds")],
)  # fmt: skip
def test_lamb_checks_hyperparameters_of_every_parameter_group(group, word):
    """Before, only the defaults were checked: a group {"params": …, "lr": -1} climbed the gradient."""
    p, q = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=word):
        LAMB([{"params": [p], **group}])
    opt = LAMB([p])
    with pytest.raises(ValueError, match=word):
        opt.add_param_group({"params": [q], **group})


def test_lamb_norm_bounds_with_upper_bound_zero_are_refused():
    """φ = min(max(‖x‖, 0), 0) = 0: every trust ratio 0, so training silently never moves Θ."""
    with pytest.raises(ValueError, match="norm_bounds"):
        LAMB([torch.nn.Parameter(torch.ones(2))], norm_bounds=(0.0, 0.0))


def test_lamb_refuses_complex_parameters():
    """v = β2 v + (1 − β2) g·g is not |g|² for complex g: silently wrong steps before."""
    c = torch.nn.Parameter(torch.ones(2, dtype=torch.complex64))
    opt = LAMB([c])
    c.grad = torch.ones(2, dtype=torch.complex64)
    with pytest.raises(RuntimeError, match="complex"):
        opt.step()


# -- activation parameters --------------------------------------------------------------------------------
def test_elu_alpha_beyond_the_nets_dtype_is_a_clear_error_at_construction():
    """elu:1e39 is a valid name (ALPHA > 0), but α overflows float32: before, the first forward pass
    raised torch's bare "value cannot be converted to type float without overflow" (in the app: a
    traceback after the run had started)."""
    import lecturenn as ln

    with pytest.raises(ValueError, match=r"activation 'elu:1e\+39' cannot run in torch.float32"):
        ln.ThetaMLP([2, 3, 1], hidden="elu:1e39")
    net = ln.ThetaMLP([2, 3, 1], hidden="elu:1e39", dtype=torch.float64)  # a double holds it
    assert torch.isfinite(net(torch.zeros(1, 2, dtype=torch.float64))).all()
    with pytest.raises(ValueError, match="elu:1e\\+39"):
        ThetaMLPClassifier((3,), activation="elu:1e39", max_iter=1).fit(X_IRIS, Y_IRIS)


# -- the network picture ----------------------------------------------------------------------------------
def test_plot_network_draws_a_bfloat16_net():
    """Before: TypeError "Got unsupported ScalarType BFloat16" (numpy has no bfloat16)."""
    import matplotlib.pyplot as plt

    import lecturenn as ln

    net = ln.ThetaMLP([2, 3, 1], dtype=torch.bfloat16, generator=0)
    X, y = torch.randn(4, 2, dtype=torch.bfloat16), torch.tensor([0, 1, 0, 1])
    picture = ln.plot_network(net, X, y)
    plt.close(picture.figure)
    assert picture.thetas[1].dtype == np.float64
    assert np.array_equal(picture.thetas[1], net.thetas[0].detach().float().numpy())


def test_plot_network_refuses_a_net_on_the_meta_device_with_one_line():
    """Before: RuntimeError "Tensor.item() cannot be called on meta tensors" from deep inside."""
    import lecturenn as ln

    net = ln.ThetaMLP([2, 3, 1], device="meta")
    with pytest.raises(ValueError, match="meta device"):
        ln.plot_network(net, torch.zeros(2, 2, device="meta"), torch.zeros(2, device="meta"))


def test_app_pictures_of_a_bfloat16_run(tmp_path):
    """trainer.precision=bf16-true: Θ is bfloat16 while the data module keeps float32 rows. Before,
    network.png ("X has dtype torch.float32 but Θ is torch.bfloat16") and boundary.png ("Got
    unsupported ScalarType BFloat16", from predict_scores) were skipped with a warning."""
    from lecturenn.data import PlaygroundDataModule
    from lecturenn.training import ThetaMLPModule
    from lecturenn.training.plots import _draw_network

    dm = PlaygroundDataModule("xor", n=60, noise=0.1, batch_size=16, seed=0)
    dm.setup("fit")
    info = dm.info
    model = ThetaMLPModule(info.n_features, info.n_outputs, info.task, hidden_sizes=[3], init_seed=0)
    model = model.to(torch.bfloat16)
    assert model.predict_scores(dm.val[0][:4]).dtype == np.float32
    path = _draw_network(model, dm, tmp_path / "network.png")
    assert path is not None and path.stat().st_size > 0


# -- estimator files: where they are written --------------------------------------------------------------
def test_save_to_a_directory_or_a_missing_folder_names_the_users_path(tmp_path):
    """Before: the OSError named the temporary file ('…/no/tmpcec2ucbl.npz'), a name the user never gave."""
    est = ThetaMLPClassifier((3,), max_iter=1, random_state=0).fit(X_IRIS, Y_IRIS)
    (tmp_path / "dir.npz").mkdir()
    cases = ((tmp_path / "dir.npz", "is a directory"), (tmp_path / "no" / "m.npz", "is no directory"))
    for target, words in cases:
        with pytest.raises(OSError, match=words) as err:
            est.save(target)
        assert str(target) in str(err.value) and "tmp" not in str(err.value).replace(str(tmp_path), "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.npz"]  # nothing left behind


# -- estimator and Θ files: zip entries that are not what they say --------------------------------------
def _zip_with(tmp_path, good, name, extra: dict, drop=(), compression=0):
    import zipfile

    out = tmp_path / name
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w", compression=compression) as dst:
        for info in src.infolist():
            if info.filename not in drop:
                dst.writestr(info.filename, src.read(info.filename))
        for key, data in extra.items():
            with dst.open(key, "w", force_zip64=True) as f:
                for chunk in data:
                    f.write(chunk)
    return out


def _npy_header(shape, descr="<f8") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@pytest.mark.parametrize("loader", ["estimator", "load_thetas"])
def test_zip_entries_that_lie_are_refused_with_one_line_before_memory_is_spent(saved, tmp_path, loader):
    """Before: a raw (non-.npy) entry gave AttributeError "'bytes' object has no attribute 'dtype'";
    an .npy header claiming 10^12 rows a raw MemoryError; and a 0.08 MB deflated entry of zeros was
    inflated to 80 MB before being refused as unknown (a 30 MB file: 30 GB, the process killed)."""
    import zipfile

    import lecturenn

    load = ThetaMLPClassifier.load if loader == "estimator" else lecturenn.load_thetas
    good = saved["adam"]
    mib = bytes(1 << 20)
    cases = {
        "raw.npz": ({"Theta1": [b"\0" * 40]}, ("Theta1.npy",), "not a NumPy .npy array"),
        "lying.npz": ({"Theta1.npy": [_npy_header((10**12, 5)), b"\0" * 64]}, ("Theta1.npy",), "allocate"),
        "bomb.npz": ({"payload.npy": [_npy_header((80 << 17,)), *[mib] * 80]}, (), "decompression bomb"),
    }
    for name, (extra, drop, words) in cases.items():
        path = _zip_with(tmp_path, good, name, extra, drop, compression=zipfile.ZIP_DEFLATED)
        assert path.stat().st_size < 1 << 20
        with pytest.raises(ValueError, match=words) as err:
            load(path)
        assert "\n" not in str(err.value) and name in str(err.value)
