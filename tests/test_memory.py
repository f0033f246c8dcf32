"""lecturenn.memory: Θ that cannot fit is refused before it is allocated, in one line naming the
parameter (the estimators' hidden_layer_sizes; the app's model.hidden_sizes)."""

import numpy as np
import pytest
import torch

import lecturenn as ln
from lecturenn.memory import COPIES, check_theta_fits, theta_count


def test_theta_count_is_the_sum_of_the_layer_shapes():
    sizes = [64, 100, 10]
    net = ln.ThetaMLP(sizes, "sigmoid", "softmax")
    assert theta_count(sizes) == sum(t.numel() for t in net.thetas) == 100 * 65 + 10 * 101


def test_a_network_beyond_the_machines_memory_is_refused_naming_the_parameter():
    huge = [4, 10**10, 3]  # (4 + 1)·10¹⁰ + (10¹⁰ + 1)·3 numbers, 4 copies of float32: 1.28 TB
    with pytest.raises(
        ValueError, match=r"^hidden_layer_sizes=\(10000000000,\) gives Θ 80,000,000,003 numbers: ~1280.0 GB"
    ):
        check_theta_fits(huge, 4, "cpu", "hidden_layer_sizes=(10000000000,)")
    check_theta_fits([784, 4096, 4096, 10], 8, "cpu", "ok")  # 20 M numbers: fits
    assert COPIES == 4


@pytest.mark.parametrize("hidden", [(10**10,), (10**6, 10**6)])
def test_estimators_refuse_it_before_allocating(hidden):
    """Session-6 hostile note: hidden_layer_sizes=(10**10,) ended in torch's allocator error."""
    X, y = np.random.default_rng(0).normal(size=(20, 4)), np.arange(20) % 2
    for est in (ln.ThetaMLPClassifier(hidden, max_iter=1), ln.ThetaMLPRegressor(hidden, max_iter=1)):
        with pytest.raises(
            ValueError, match=r"^hidden_layer_sizes=.* more than this machine's .* GB; choose smaller"
        ):
            est.fit(X, y.astype(float) if isinstance(est, ln.ThetaMLPRegressor) else y)
        assert not hasattr(est, "net_")


def test_cuda_memory_is_the_gpus(monkeypatch):
    class Props:
        total_memory = 10**9

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props())
    with pytest.raises(ValueError, match="more than the GPU's 1.0 GB"):
        check_theta_fits([4, 10**8, 3], 4, "cuda", "x")
