"""ln.plot_network: the lecture's picture of backpropagation. The numbers drawn are backpropagate()'s
(and, independently, n·∂J/∂z from torch autograd); every Θ^(l)_ij is one edge; bias units are drawn;
bad input is one clear line; the app writes plots/network.png for small nets and says why not for big ones.
"""

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

import lecturenn as ln
from lecturenn.training.figures.network import EDGE_GID

ROOT = Path(__file__).resolve().parents[1]
XOR_X = torch.tensor([[0.0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.float64)
XOR_Y = torch.tensor([0, 1, 1, 0])


def xor_net(**kw):
    return ln.ThetaMLP([2, 3, 2], output="softmax", generator=0, dtype=torch.float64, **kw)


def autograd_deltas(net, X, Y) -> dict[int, torch.Tensor]:
    """n·∂J/∂z^(l) for each row, l = 2..L+1, from a plain-torch forward that torch differentiates
    (J: the mean cost over the n rows, as the design notes define it per head)."""
    zs, a = {}, X
    for l in range(1, net.num_layers + 1):
        theta = net.theta(l)
        z = a @ theta[:, 1:].T + theta[:, 0]
        zs[l + 1] = z
        a = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[net.activation.name](z)
    z = zs[net.num_layers + 1]
    if net.head.name == "softmax":
        J = F.cross_entropy(z, Y)
    elif net.head.name == "sigmoid":
        J = F.binary_cross_entropy_with_logits(z, Y, reduction="sum") / len(X)
    else:
        J = ((z - Y) ** 2).sum() / len(X)
    grads = torch.autograd.grad(J, list(zs.values()))
    return {l: g * len(X) for l, g in zip(zs, grads)}


# -- the numbers drawn are backpropagate's ---------------------------------------------------------
def test_batch_mean_is_backpropagate_s_mean_over_rows():
    net = xor_net()
    picture = ln.plot_network(net, XOR_X, XOR_Y)
    bp = ln.backpropagate(net, XOR_X, XOR_Y)
    assert picture.example is None and picture.rows == 4
    assert set(picture.a) == {1, 2, 3} and set(picture.delta) == {2, 3}  # the input layer has no δ
    for l in (1, 2, 3):
        np.testing.assert_array_equal(picture.a[l], bp.a[l].mean(0).numpy())
    for l in (2, 3):
        np.testing.assert_array_equal(picture.delta[l], bp.delta[l].mean(0).numpy())
        # the mean δ^(l) is the bias column of D^(l-1) = ∂J/∂Θ^(l-1) (bias not regularised)
        np.testing.assert_allclose(picture.delta[l], bp.D[l - 1][:, 0].numpy(), rtol=1e-12, atol=1e-15)
    for l in (1, 2):
        np.testing.assert_array_equal(picture.thetas[l], net.theta(l).detach().numpy())


@pytest.mark.parametrize("i", range(4))
def test_one_example_is_backpropagate_s_row(i):
    net = xor_net()
    picture = ln.plot_network(net, XOR_X, XOR_Y, example=i)
    bp = ln.backpropagate(net, XOR_X, XOR_Y)
    assert picture.example == i
    for l in (1, 2, 3):
        np.testing.assert_array_equal(picture.a[l], bp.a[l][i].numpy())
    for l in (2, 3):
        np.testing.assert_array_equal(picture.delta[l], bp.delta[l][i].numpy())


@pytest.mark.parametrize(
    "hidden,output,K", [("sigmoid", "softmax", 3), ("tanh", "sigmoid", 2), ("relu", "identity", 2)]
)
def test_delta_is_n_times_autograd_dJ_dz(hidden, output, K):
    g = torch.Generator().manual_seed(1)
    net = ln.ThetaMLP([3, 4, 5, K], hidden=hidden, output=output, generator=2, dtype=torch.float64)
    X = torch.randn(7, 3, generator=g, dtype=torch.float64)
    Y = (
        torch.randint(0, K, (7,), generator=g)
        if output == "softmax"
        else torch.randint(0, 2, (7, K), generator=g).double()
        if output == "sigmoid"
        else torch.randn(7, K, generator=g, dtype=torch.float64)
    )
    reference = autograd_deltas(net, X, Y)
    mean = ln.plot_network(net, X, Y)
    for l, d in reference.items():
        np.testing.assert_allclose(mean.delta[l], d.mean(0).numpy(), rtol=1e-10, atol=1e-14)
    for i in (0, 6):
        one = ln.plot_network(net, X, Y, example=i)
        for l, d in reference.items():
            np.testing.assert_allclose(one.delta[l], d[i].numpy(), rtol=1e-10, atol=1e-14)


# -- what is drawn -----------------------------------------------------------------------------------
def edges_of(picture):
    (edges,) = [c for c in picture.figure.axes[0].collections if c.get_gid() == EDGE_GID]
    return edges


def test_every_theta_entry_is_one_edge_wider_for_larger_magnitude_coloured_by_sign():
    net = ln.ThetaMLP([4, 6, 3], output="softmax", generator=3)
    picture = ln.plot_network(net, torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))
    edges = edges_of(picture)
    thetas = np.concatenate([t.ravel() for t in picture.thetas.values()])
    assert len(edges.get_segments()) == len(thetas) == 6 * 5 + 3 * 7  # Σ_l s_{l+1}(s_l + 1)
    widths = np.asarray(edges.get_linewidths())
    colours = np.asarray(edges.get_colors())
    # pair the edges with the Θ entries by rank: width grows with |Θ| (the |Θ| are distinct here)
    by_width, by_size = np.argsort(widths, kind="stable"), np.argsort(np.abs(thetas), kind="stable")
    assert len(np.unique(np.abs(thetas))) == len(thetas) and len(np.unique(widths)) == len(widths)
    signs = np.sign(thetas[by_size])
    red_over_blue = colours[by_width, 0] - colours[by_width, 2]
    assert np.all(np.sign(red_over_blue) == -signs)  # RdBu: negative red, positive blue


def test_bias_units_are_drawn_in_every_layer_but_the_output():
    net = ln.ThetaMLP([2, 3, 4, 1], generator=0)
    picture = ln.plot_network(net, torch.rand(6, 2), torch.tensor([[0.0], [1], [1], [0], [1], [0]]))
    ax = picture.figure.axes[0]
    bias = [t for t in ax.texts if t.get_text() == "+1"]
    assert sorted(round(t.get_position()[0]) for t in bias) == [0, 1, 2]  # layers 1..L, not L+1
    # each bias square is the top unit of its column: above every unit of that layer
    for t in bias:
        x, y = t.get_position()
        column = [u.get_position()[1] for u in ax.texts if u.get_position()[0] == x and u is not t]
        assert all(y > other for other in column if other < y + 1)


def test_png_is_written_and_the_figure_is_returned_whole(tmp_path):
    path = tmp_path / "deep" / "network.png"
    picture = ln.plot_network(xor_net(), XOR_X, XOR_Y, example=2, path=path)
    assert picture.path == path and path.stat().st_size > 20_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 600
    assert len(picture.figure.axes) == 3  # the network and its two colour bars (not released by saving)
    assert "row X[2] of 4 (0-based)" in picture.figure.axes[0].get_title()


@pytest.mark.parametrize(
    "name,magic", [("network.svg", b"<?xml"), ("network.PDF", b"%PDF"), ("network", b"\x89PNG\r\n\x1a\n")]
)
def test_the_suffix_chooses_the_format(tmp_path, name, magic):
    """Session-7 hostile note: path="x.svg" got PNG bytes. The suffix names the format (any matplotlib
    writes); no suffix: PNG; a suffix matplotlib does not write: one line, nothing written."""
    path = tmp_path / name
    ln.plot_network(xor_net(), XOR_X, XOR_Y, path=path)
    assert path.read_bytes()[: len(magic)] == magic


def test_a_suffix_matplotlib_cannot_write_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"matplotlib writes no '\.txt' files; use one of .*\.png"):
        ln.plot_network(xor_net(), XOR_X, XOR_Y, path=tmp_path / "sub" / "network.txt")
    assert list(tmp_path.iterdir()) == []


def test_draws_into_a_given_axes():
    fig = Figure()
    left, right = fig.subplots(1, 2)
    picture = ln.plot_network(xor_net(), XOR_X, XOR_Y, ax=right)
    assert picture.figure is fig and picture.path is None
    assert [c.get_gid() for c in right.collections].count(EDGE_GID) == 1 and not left.collections


# -- refusals --------------------------------------------------------------------------------------
def test_a_layer_above_max_units_is_refused_naming_it():
    net = ln.ThetaMLP([20, 3, 2], output="softmax")
    X, Y = torch.randn(3, 20), torch.tensor([0, 1, 0])
    with pytest.raises(
        ValueError, match=r"layer 1 \(input\) has 20: plot_network\(\.\.\., max_units=20\) draws"
    ):
        ln.plot_network(net, X, Y)
    assert ln.plot_network(net, X, Y, max_units=20).rows == 3
    with pytest.raises(ValueError, match=r"max_units=2 .* layer 2 \(hidden\) has 3"):
        ln.plot_network(xor_net(), XOR_X, XOR_Y, max_units=2)


BAD = [
    ({"X": torch.zeros(4, 3)}, ValueError, "X has 3 features"),
    ({"Y": XOR_Y[:3]}, ValueError, "Y has 3 class indices but X has 4 rows"),
    ({"Y": torch.tensor([0, 1, 5, 0])}, ValueError, "class index out of range"),
    ({"X": XOR_X.clone().index_fill_(0, torch.tensor([2]), float("nan"))}, ValueError, "X contains NaN"),
    ({"X": torch.zeros(0, 2), "Y": XOR_Y[:0]}, ValueError, "X has no rows"),
    ({"example": 4}, ValueError, r"example .* <= 3, got 4"),
    ({"example": -1}, ValueError, "example .* >= 0, got -1"),
    ({"example": 1.5}, TypeError, "example .* got 1.5"),
    ({"example": True}, TypeError, "example .* got True"),
    ({"max_units": 0}, ValueError, "max_units must be an integer >= 1"),
    ({"ax": "left"}, TypeError, "ax must be a matplotlib Axes"),
]


@pytest.mark.parametrize("change,error,message", BAD)
def test_bad_input_is_one_clear_line(change, error, message, tmp_path):
    args = {"X": XOR_X, "Y": XOR_Y, "path": tmp_path / "n.png", **change}
    X, Y = args.pop("X"), args.pop("Y")
    with pytest.raises(error, match=message) as caught:
        ln.plot_network(xor_net(), X, Y, **args)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "n.png").exists()  # nothing written


def test_not_a_plain_theta_mlp_is_refused():
    with pytest.raises(TypeError, match="draws a lecturenn.ThetaMLP, got ThetaMLPClassifier; fit it"):
        ln.plot_network(ln.ThetaMLPClassifier(), XOR_X, XOR_Y)
    with pytest.raises(ValueError, match="batchnorm/dropout"):
        ln.plot_network(xor_net(dropout=0.5), XOR_X, XOR_Y)


# -- the app ---------------------------------------------------------------------------------------
def test_app_draws_small_nets_and_says_in_one_line_why_not_a_big_one(tmp_path):
    """One sweep, two jobs: a 2-3-1 net gets plots/network.png; a 17-unit hidden layer gets one line
    (on the console and in the job's train.log) instead."""
    pytest.importorskip("hydra")
    sweep = tmp_path / "sweep"
    args = ["-m", "model.hidden_sizes=[3],[17]", "data=circle", "data.n=200", "trainer.max_epochs=1",
            f"hydra.sweep.dir={sweep}", "++trainer.enable_progress_bar=false",
            "callbacks.progress_bar=null"]  # fmt: skip
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    png = sweep / "0" / "plots" / "network.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(png).shape[0] > 300
    line = (
        "plots: no network.png: plot_network shows at most max_units=16 units per layer, but layer 2 "
        "(hidden) has 17: plot_network(..., max_units=17) draws a large picture, or draw a smaller network"
    )
    assert [s for s in (run.stdout + run.stderr).splitlines() if "network.png" in s] == [line]
    assert line in (sweep / "1" / "train.log").read_text()
    plots = {p.name for p in (sweep / "1" / "plots").iterdir()}
    assert "boundary.png" in plots and "network.png" not in plots
