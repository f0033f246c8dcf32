"""Issue 12 §7: the perceptron, ThetaLinear / init_theta / make_generator and configure_malloc check their
numbers through lecturenn.validation: TypeError for the wrong kind (a bool is no number), ValueError
out of range, the message naming the argument and the rule."""

import math
import sys

import numpy as np
import pytest
import torch

import lecturenn as ln
from lecturenn.perceptron import batch_perceptron, perceptron_rule
from lecturenn.runtime import configure_malloc
from lecturenn.theta import init_theta, make_generator

X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y01 = torch.tensor([0, 0, 0, 1])


@pytest.mark.parametrize("fn", [perceptron_rule, batch_perceptron])
def test_perceptron_refuses_bools_and_strings(fn):
    y = Y01 if fn is perceptron_rule else 2 * Y01 - 1
    for kw in ({"alpha": True}, {"alpha": "0.1"}, {"max_epochs": True}, {"max_epochs": 3.0}):
        with pytest.raises(TypeError, match=f"{next(iter(kw))} must be"):
            fn(X, y, **kw)
    for alpha in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"alpha must be a finite number > 0"):
            fn(X, y, alpha=alpha)
    # numpy numbers are numbers
    assert fn(X, y, alpha=np.float32(0.5), max_epochs=np.int64(50)).converged


def test_batch_perceptron_eps():
    y = 2 * Y01 - 1
    with pytest.raises(TypeError, match=r"eps must be a finite number >= 0, got True"):
        batch_perceptron(X, y, eps=True)
    for eps in (-1e-3, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"eps must be a finite number >= 0"):
            batch_perceptron(X, y, eps=eps)
    assert batch_perceptron(X, y, eps=0).converged


def test_theta_linear_sizes():
    for bad in (True, 2.0, "3"):
        with pytest.raises(TypeError, match=r"in_features must be an integer >= 1"):
            ln.ThetaLinear(bad, 2)
    with pytest.raises(ValueError, match=r"out_features must be an integer >= 1, got 0"):
        ln.ThetaLinear(3, 0)
    layer = ln.ThetaLinear(np.int64(3), np.int32(2))
    assert (type(layer.in_features), type(layer.out_features)) == (int, int)
    assert layer.theta.shape == (2, 4)


def test_init_theta_epsilon():
    theta = torch.empty(2, 4)
    for bad in (True, "0.1"):
        with pytest.raises(TypeError, match=r"epsilon must be a finite number > 0"):
            init_theta(theta, "epsilon", bad)
    for bad in (0.0, -0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"epsilon must be a finite number > 0"):
            init_theta(theta, "epsilon", bad)
    init_theta(theta, "epsilon", np.float64(0.5))
    assert theta.abs().max() <= 0.5
    init_theta(theta, "glorot", True)  # ε is not read by glorot


def test_make_generator_seed():
    with pytest.raises(TypeError, match=r"seed must be an int"):
        make_generator(True)
    with pytest.raises(TypeError, match=r"seed must be an int"):
        make_generator(1.0)
    a = torch.rand(3, generator=make_generator(np.int64(7)))
    assert torch.equal(a, torch.rand(3, generator=make_generator(7)))


def test_configure_malloc_thresholds(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")  # checked before anything is set, on every platform
    with pytest.raises(TypeError, match=r"mmap_threshold must be an integer >= 0 and <= 2147483647"):
        configure_malloc(mmap_threshold=True)
    with pytest.raises(TypeError, match=r"trim_threshold must be"):
        configure_malloc(trim_threshold=1.5e8)
    with pytest.raises(ValueError, match=r"mmap_threshold must be .*, got -1"):
        configure_malloc(mmap_threshold=-1)
    with pytest.raises(ValueError, match=r"trim_threshold must be .*, got 2147483648"):
        configure_malloc(trim_threshold=2**31)
    assert configure_malloc(mmap_threshold=np.int64(1 << 20)) is False
