"""Issue 13 §3 on the app side, testable on the CPU: the matmul precision policy, the binned AUROC,
the test step's single host copy. ``cuda``-marked tests show what only a GPU can (no host syncs,
Lightning's Tensor Core hint). Streaming's pinned/prefetch path: tests/test_cuda_speed_stream.py."""

from __future__ import annotations

import functools
import logging
import warnings

import lightning as L
import numpy as np
import pytest
import torch
from conftest import module_for
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from torchmetrics.functional.classification import binary_auroc

from lecturenn.data import SklearnDataModule
from lecturenn.training import ThetaMLPModule
from lecturenn.training.metrics import MacroAUROC, classification_metrics
from lecturenn.training.precision import MATMUL_PRECISIONS, matmul_precision_for, set_matmul_precision


@pytest.fixture(autouse=True)
def _quiet_and_restore_precision():
    before = torch.get_float32_matmul_precision()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    torch.set_float32_matmul_precision(before)


# -- matmul precision (TF32) ----------------------------------------------------------------------
def test_auto_means_tf32_on_cuda_only_and_other_values_are_themselves():
    assert matmul_precision_for("auto", cuda=True) == "high"
    assert matmul_precision_for("auto", cuda=False) == "highest"
    for value in ("highest", "high", "medium"):
        assert matmul_precision_for(value, cuda=True) == matmul_precision_for(value, cuda=False) == value
    assert set(MATMUL_PRECISIONS) == {"auto", "highest", "high", "medium"}
    with pytest.raises(ValueError, match="matmul_precision must be one of auto, highest, high, medium"):
        matmul_precision_for("tf32", cuda=True)


def test_set_matmul_precision_applies_the_value_in_effect():
    torch.set_float32_matmul_precision("medium")
    assert set_matmul_precision("auto", cuda=False) == "highest" == torch.get_float32_matmul_precision()
    assert set_matmul_precision("high", cuda=False) == "high" == torch.get_float32_matmul_precision()


# -- binned AUROC ------------------------------------------------------------------------------------
def one_vs_rest(task, preds, target, K):
    if task == "binary":
        return preds[:, None], target[:, None] == 1
    if task == "multilabel":
        return preds, target == 1
    return preds, target[:, None] == torch.arange(K)


def torchmetrics_binned(task, preds, target, K, T):
    """The macro average over scorable classes of torchmetrics' own binned binary AUROC."""
    scores, positive = one_vs_rest(task, preds, target, K)
    values = [
        binary_auroc(scores[:, k], positive[:, k].long(), thresholds=T)
        for k in range(scores.shape[1])
        if 0 < positive[:, k].sum() < len(positive)
    ]
    return torch.stack(values).mean() if values else torch.tensor(float("nan"))


def random_task(task, n=3000, K=5, seed=0, quantize=None):
    g = torch.Generator().manual_seed(seed)
    if task == "binary":
        target = torch.randint(0, 2, (n,), generator=g)
        preds = torch.sigmoid(torch.randn(n, generator=g) + 1.2 * target)
        K = 1
    elif task == "multiclass":
        target = torch.randint(0, K, (n,), generator=g)
        preds = torch.softmax(
            torch.randn(n, K, generator=g) + 1.5 * torch.nn.functional.one_hot(target, K), 1
        )
    else:
        target = torch.randint(0, 2, (n, K), generator=g)
        preds = torch.sigmoid(torch.randn(n, K, generator=g) + target)
    if quantize:  # ties, scores exactly on thresholds, 0 and 1
        preds = torch.round(preds * quantize) / quantize
    return preds, target, K


def metric_value(metric, preds, target, batches=3):
    metric.reset()
    for p, t in zip(preds.tensor_split(batches), target.tensor_split(batches)):
        metric.update(p, t)
    return metric.compute()


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_binned_auroc_converges_to_the_exact_one(task):
    preds, target, K = random_task(task)
    exact = metric_value(MacroAUROC(task, K), preds, target)
    errors = []
    for T in (11, 101, 1000):
        binned = metric_value(MacroAUROC(task, K, thresholds=T), preds, target)
        errors.append(abs(float(binned) - float(exact)))
    assert errors[-1] < 1e-3 and errors[0] > errors[-1]
    assert 0.6 < float(exact) < 1.0  # a problem with something to rank


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("quantize", [None, 20])
@pytest.mark.parametrize("T", [2, 7, 200])
def test_binned_auroc_equals_torchmetrics_binned_auroc(task, quantize, T):
    preds, target, K = random_task(task, n=700, quantize=quantize)
    ours = metric_value(MacroAUROC(task, K, thresholds=T), preds, target)
    torch.testing.assert_close(ours, torchmetrics_binned(task, preds, target, K, T), rtol=0, atol=1e-6)


def test_binned_auroc_skips_unscorable_classes_and_is_nan_without_any():
    preds, target, K = random_task("multiclass", n=400, K=4)
    keep = target != 2  # class 2 has no positive row
    ours = metric_value(MacroAUROC("multiclass", K, thresholds=50), preds[keep], target[keep])
    torch.testing.assert_close(ours, torchmetrics_binned("multiclass", preds[keep], target[keep], K, 50))
    one_class = metric_value(
        MacroAUROC("binary", 1, thresholds=50), torch.rand(9), torch.ones(9, dtype=torch.long)
    )
    assert torch.isnan(one_class)


def test_binned_auroc_in_float64_scores_the_same_as_float32():
    preds, target, K = random_task("multiclass", n=500)
    for T in (3, 100):
        a = metric_value(MacroAUROC("multiclass", K, thresholds=T), preds, target)
        b = metric_value(MacroAUROC("multiclass", K, thresholds=T), preds.double(), target)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [1, 0, -3])
def test_auroc_thresholds_below_two_are_refused_naming_the_key(bad):
    with pytest.raises(ValueError, match="model.auroc_thresholds must be an integer >= 2"):
        ThetaMLPModule(4, 3, "multiclass", auroc_thresholds=bad)
    with pytest.raises(TypeError, match="model.auroc_thresholds"):
        ThetaMLPModule(4, 3, "multiclass", auroc_thresholds="many")


# -- the test step: what a test run gives (metrics, the confusion matrix's inputs) ---------------
def trained(name, thresholds=None, **data_kw):
    dm = SklearnDataModule(name, batch_size=16, seed=0, **data_kw)
    dm.setup()
    info = dm.info
    model = module_for(
        info,
        hidden_sizes=[6],
        lam=0.1,
        init_seed=0,
        optimizer=functools.partial(torch.optim.Adam, lr=0.05),
        auroc_thresholds=thresholds,
    )
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    return dm, model, {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


@pytest.mark.parametrize("name", ["iris", "breast_cancer"])
def test_the_test_run_scores_and_keeps_every_test_row_once_in_order(name):
    """test_predictions (the confusion matrix's input) and the test metrics equal what the network
    gives on the test split, computed here by hand (scikit-learn's metrics)."""
    dm, model, metrics = trained(name, test_fraction=0.3)
    X, y = dm.test
    with torch.no_grad():
        h = model.net(X)
    binary = h.shape[1] == 1
    pred = (h[:, 0] > 0.5).long() if binary else h.argmax(1)
    y_true, y_pred = model.test_predictions
    assert isinstance(y_true, np.ndarray) and y_true.dtype == y_pred.dtype == np.int64
    np.testing.assert_array_equal(y_true, y.reshape(-1).long().numpy())
    np.testing.assert_array_equal(y_pred, pred.numpy())
    assert metrics["test/acc"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-6)
    assert metrics["test/f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-6)
    scores = h[:, 0].numpy() if binary else h.numpy()
    auroc = roc_auc_score(y_true, scores, multi_class="ovr") if not binary else roc_auc_score(y_true, scores)
    assert metrics["test/auroc"] == pytest.approx(auroc, abs=1e-5)
    assert model._test_true == [] and model._test_pred == []  # nothing kept on the device afterwards


def test_a_run_with_binned_auroc_logs_it_close_to_the_exact_one():
    _, _, exact = trained("iris", test_fraction=0.3)
    _, _, binned = trained("iris", thresholds=1000, test_fraction=0.3)
    assert {k: v for k, v in binned.items() if k != "test/auroc"} == {
        k: v for k, v in exact.items() if k != "test/auroc"
    }
    assert binned["test/auroc"] == pytest.approx(exact["test/auroc"], abs=2e-3)


def test_classification_metrics_pass_the_thresholds_to_the_auroc():
    assert classification_metrics("multiclass", 3)["auroc"].binned is False
    auroc = classification_metrics("multiclass", 3, auroc_thresholds=64)["auroc"]
    assert auroc.binned and auroc.counts.shape == (3, 2, 65)


# -- CUDA --------------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_binned_auroc_on_cuda_never_waits_for_the_device_and_equals_the_cpu(task):
    preds, target, K = random_task(task, n=2000)
    cpu = metric_value(MacroAUROC(task, K, thresholds=500), preds, target)
    metric = MacroAUROC(task, K, thresholds=500).to("cuda")
    p, t = preds.cuda(), target.cuda()
    metric.update(p[:10], t[:10])  # the first update may set torchmetrics' state up
    metric.reset()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for a, b in zip(p.tensor_split(4), t.tensor_split(4)):
            metric.update(a, b)
        value = metric.compute()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(value.cpu(), cpu, rtol=0, atol=1e-6)


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def lightning_messages_of_a_gpu_fit() -> str:
    """Everything Lightning's loggers say while fitting a small module on the GPU."""
    dm = SklearnDataModule("iris", batch_size=16, seed=0)
    dm.setup()
    info = dm.info
    model = ThetaMLPModule(
        info.n_features, info.n_outputs, info.task, hidden_sizes=[6], data_info=info.to_dict()
    )
    handler = _Messages()
    loggers = [logging.getLogger(n) for n in ("lightning.fabric", "lightning.pytorch")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        trainer = L.Trainer(
            max_epochs=1, accelerator="gpu", devices=1, logger=False, enable_checkpointing=False
        )
        trainer.fit(model, datamodule=dm)
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
    return "\n".join(handler.lines)


@pytest.mark.cuda
def test_auto_precision_on_cuda_is_tf32_and_silences_lightnings_tensor_core_hint():
    set_matmul_precision("highest")
    hinted = "Tensor Cores" in lightning_messages_of_a_gpu_fit()  # an H100/H200 has them
    assert set_matmul_precision("auto", cuda=True) == "high" == torch.get_float32_matmul_precision()
    assert "Tensor Cores" not in lightning_messages_of_a_gpu_fit()
    assert hinted, "control: with highest, Lightning hints at TF32 on a GPU with Tensor Cores"
