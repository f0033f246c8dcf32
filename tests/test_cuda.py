"""The same code paths on CUDA (skipped without a GPU)."""

import pytest
import torch
from conftest import module_for

import lecturenn as ln

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("output", sorted(ln.HEADS))
def test_manual_equals_autograd_on_cuda(output):
    manual = ln.ThetaMLP(
        [6, 8, 5, 3], "tanh", output, "manual", generator=0, device="cuda", dtype=torch.float64
    )
    auto = ln.ThetaMLP([6, 8, 5, 3], "tanh", output, "autograd", device="cuda", dtype=torch.float64)
    auto.load_state_dict(manual.state_dict())
    X = torch.randn(11, 6, device="cuda", dtype=torch.float64)
    if output == "softmax":
        Y = torch.randint(0, 3, (11,), device="cuda")
    elif output == "sigmoid":
        Y = torch.randint(0, 2, (11, 3), device="cuda").double()
    else:
        Y = torch.randn(11, 3, device="cuda", dtype=torch.float64)
    for net in (manual, auto):
        net.cost(X, Y, lam=0.5).backward()
    for pm, pa in zip(manual.thetas, auto.thetas):
        assert pm.grad.device.type == "cuda"
        torch.testing.assert_close(pm.grad, pa.grad, rtol=1e-10, atol=1e-12)


def test_same_seed_same_theta_on_cpu_and_cuda():
    cpu = ln.ThetaMLP([5, 4, 2], generator=7)
    gpu = ln.ThetaMLP([5, 4, 2], generator=7, device="cuda")
    for a, b in zip(cpu.thetas, gpu.thetas):
        torch.testing.assert_close(a, b.cpu())


def test_gradient_check_on_cuda():
    net = ln.ThetaMLP([3, 5, 3], "sigmoid", "sigmoid", generator=0, device="cuda")
    X = torch.randn(5, 3, device="cuda")
    Y = torch.randint(0, 2, (5, 3), device="cuda").float()
    assert ln.gradient_check(net, X, Y, lam=1.0).relative_difference < 1e-9


def test_bad_label_on_cuda_is_a_clear_error_not_a_device_assert():
    net = ln.ThetaMLP([3, 4, 3], output="softmax", device="cuda")
    with pytest.raises(ValueError, match="class index out of range"):
        net.cost(torch.randn(2, 3, device="cuda"), torch.tensor([0, 3], device="cuda"))
    net.cost(torch.randn(2, 3, device="cuda"), torch.tensor([0, 2], device="cuda"))  # still usable


def test_cpu_input_to_cuda_net_is_rejected():
    net = ln.ThetaMLP([3, 4, 1], device="cuda")
    with pytest.raises(ValueError, match="is on cpu but Θ is on cuda"):
        net(torch.randn(2, 3))


@pytest.mark.parametrize("precision, direct", [("32-true", True), ("bf16-mixed", True), ("16-mixed", False)])
def test_app_module_trains_in_batch_groups_on_cuda(precision, direct):
    """The app's training loop on the GPU: batch groups of device-resident batches, direct steps
    except under a gradient scaler (16-mixed), the exact step count, and a useful model."""
    import functools

    import lightning as L

    from lecturenn.data import SklearnDataModule

    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    dm = SklearnDataModule("digits", batch_size=64, seed=0)
    dm.setup()
    info = dm.info
    model = module_for(
        info,
        hidden_sizes=[64],
        init_seed=0,
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        steps_per_execution=8,
    )
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="gpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, datamodule=dm)
    steps = -(-len(dm.train[0]) // 64)
    assert trainer.global_step == 8 * steps
    assert (model.fast_path_in_use == "direct") is direct
    assert model.net.thetas[0].is_cuda
    (result,) = trainer.test(model, datamodule=dm, verbose=False)
    assert result["test/acc"] > 0.9, result


def test_the_data_transform_on_cuda_gives_the_cpu_numbers():
    # here, not in tests/test_data_transform.py, which needs hydra (absent on the GPU machine)
    from lecturenn.data import PlaygroundDataModule

    dm = PlaygroundDataModule("plane", n=100, features=["x1", "x2", "x1^2", "sin(x1)", "x1*x2"])
    dm.setup()
    model = module_for(dm.info, hidden_sizes=[5], init_seed=0).cuda()
    raw = torch.as_tensor(dm.raw["val"][0], device="cuda")
    for X in (dm.transform(raw), model.standardize(raw), model.standardize(dm.raw["val"][0])):
        assert X.is_cuda and torch.equal(X.cpu(), dm.val[0])
    Y = model.to_target_units(dm.val[1].cuda())
    assert Y.is_cuda and torch.equal(Y.cpu(), dm.inverse_transform_y(dm.val[1]))
