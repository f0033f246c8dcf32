"""Validation/test metrics (lecturenn.training.metrics): macro F1 and AUROC over the classes a split
can score, checked against scikit-learn; multi-output regression logs scalars; the names a short fit
logs are exactly ThetaMLPModule.metric_names()."""

import math

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import Logger
from sklearn.metrics import f1_score, mean_absolute_error, mean_squared_error, r2_score, roc_auc_score

from lecturenn.data import ArrayDataModule
from lecturenn.training import ThetaMLPModule
from lecturenn.training.metrics import classification_metrics, output_names, regression_metrics

pytestmark = pytest.mark.usefixtures("quiet_lightning")


# -- scikit-learn's answer ----------------------------------------------------------------------
def one_vs_rest(task, scores, target, K):
    """(n, C) scores and 0/1 targets, one column per one-vs-rest problem."""
    if task == "binary":
        return scores[:, None], target[:, None]
    if task == "multilabel":
        return scores, target
    return scores, (target[:, None] == np.arange(K)).astype(int)


def sklearn_metrics(task, scores, target, K):
    """(macro F1, macro AUROC) as scikit-learn computes them over the present classes (NaN: none)."""
    if task == "multilabel":
        predicted = (scores > 0.5).astype(int)
        union = np.flatnonzero(predicted.any(0) | target.any(0))
        f1 = f1_score(target, predicted, average="macro", labels=union) if len(union) else math.nan
    else:
        predicted = (scores > 0.5).astype(int) if task == "binary" else scores.argmax(1)
        union = np.union1d(target, predicted)
        f1 = f1_score(target, predicted, average="macro", labels=union)
    S, T = one_vs_rest(task, scores, target, K)
    scorable = [k for k in range(T.shape[1]) if 0 < T[:, k].sum() < len(T)]
    if not scorable:
        return f1, math.nan
    if task == "binary":
        auroc = roc_auc_score(target, scores)
    elif task == "multiclass" and len(scorable) == K:
        labels = list(range(K))
        auroc = roc_auc_score(target, scores, multi_class="ovr", average="macro", labels=labels)
    else:  # the same one-vs-rest problems, restricted to the classes that have positives and negatives
        auroc = roc_auc_score(T[:, scorable], S[:, scorable], average="macro")
    return f1, auroc


def ours(task, scores, target, K, batches=3):
    metrics = classification_metrics(task, K).clone(prefix="val/")
    for s, t in zip(np.array_split(scores, batches), np.array_split(target, batches)):
        metrics.update(torch.as_tensor(s, dtype=torch.float32), torch.as_tensor(t))
    values = metrics.compute()
    assert all(v.ndim == 0 for v in values.values())
    assert sorted(values) == sorted(metrics.names())
    return float(values["val/f1"]), float(values["val/auroc"]), float(values["val/acc"])


def random_case(task, K, n, rng, drop=(), ties=False):
    """Scores and targets; classes (labels) in ``drop`` never occur as targets."""
    if task == "binary":
        target = rng.integers(0, 2, n)
        target[np.isin(target, drop)] = 1 - np.asarray(drop[:1] or [0])[0] if drop else target[0]
        scores = np.clip(0.3 * target + rng.uniform(0, 0.7, n), 0, 1)
    elif task == "multiclass":
        keep = [k for k in range(K) if k not in drop]
        target = rng.choice(keep, n)
        logits = rng.normal(size=(n, K)) + 1.5 * (target[:, None] == np.arange(K))
        logits = np.round(logits) if ties else logits  # identical rows: tied scores (that still sum to 1)
        scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    else:
        target = (rng.uniform(size=(n, K)) < 0.4).astype(int)
        target[:, list(drop)] = 0
        scores = np.clip(0.35 * target + rng.uniform(0, 0.65, (n, K)), 0, 1)
    if ties and task != "multiclass":
        scores = np.round(scores, 1)
    return scores.astype(np.float32), target


CASES = [
    ("binary", 1, ()),
    ("binary", 1, (0,)),  # one class only: AUROC undefined
    ("multiclass", 3, ()),
    ("multiclass", 3, (2,)),  # the rare class missing from the split
    ("multiclass", 5, (1, 3)),
    ("multiclass", 4, (0, 1, 2)),  # one class only
    ("multilabel", 4, ()),
    ("multilabel", 4, (1,)),  # a label with no positive row
    ("multilabel", 3, (0, 1, 2)),  # no positive at all
]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("task,K,drop", CASES)
def test_f1_and_auroc_agree_with_scikit_learn(task, K, drop, ties):
    rng = np.random.default_rng(K + 10 * len(drop) + ties)
    for n in (7, 60, 501):
        scores, target = random_case(task, K, n, rng, drop, ties)
        f1, auroc, _ = ours(task, scores, target, K)
        f1_ref, auroc_ref = sklearn_metrics(task, scores, target, K)
        np.testing.assert_allclose([f1, auroc], [f1_ref, auroc_ref], atol=2e-6, equal_nan=True)


def test_a_split_without_the_rare_class_is_scored_on_the_classes_it_has():
    """The issue's example: torchmetrics said acc 1.0, F1 1.0 and AUROC 0.667 for perfect predictions."""
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]], dtype=np.float32)
    target = np.array([0, 1, 0, 1])
    f1, auroc, acc = ours("multiclass", scores, target, 3, batches=2)
    assert (acc, f1, auroc) == (1.0, 1.0, 1.0)


def test_multilabel_f1_leaves_out_a_label_neither_present_nor_predicted():
    target = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 1]])
    scores = np.array([[0.9, 0.1, 0.2], [0.2, 0.3, 0.8], [0.7, 0.1, 0.9]], dtype=np.float32)
    f1, auroc, _ = ours("multilabel", scores, target, 3, batches=1)
    assert (f1, auroc) == (1.0, 1.0)  # torchmetrics: F1 2/3 and AUROC 2/3 (label 1 scored 0)


def test_undefined_is_nan_under_the_same_name():
    f1, auroc, acc = ours("binary", np.array([0.9, 0.2], dtype=np.float32), np.array([1, 1]), 1, batches=1)
    assert (acc, f1) == (0.5, pytest.approx(1 / 3)) and math.isnan(
        auroc
    )  # F1 over classes {0 predicted, 1}: (0 + 2/3) / 2
    scores, target = np.full((3, 2), 0.1, dtype=np.float32), np.zeros((3, 2), dtype=int)
    f1, auroc, acc = ours("multilabel", scores, target, 2, batches=1)
    assert acc == 1.0 and math.isnan(f1) and math.isnan(auroc)


# -- regression -----------------------------------------------------------------------------------
@pytest.mark.parametrize("K", [1, 2, 3])
def test_regression_metrics_are_scalars_averaged_over_outputs(K):
    rng = np.random.default_rng(K)
    y = rng.normal(size=(50, K)) * [1.0, 10.0, 100.0][:K]
    h = y + rng.normal(size=(50, K))
    names = ["price", "size", "age"][:K]
    metrics = regression_metrics(K, names).clone(prefix="val/")
    for a, b in zip(np.array_split(h, 4), np.array_split(y, 4)):
        shape = (-1,) if K == 1 else (-1, K)
        metrics.update(torch.tensor(a).float().reshape(shape), torch.tensor(b).float().reshape(shape))
    values = {k: float(v) for k, v in metrics.compute().items()}
    assert list(values) == metrics.names()
    expected = {
        "val/mse": mean_squared_error(y, h),
        "val/mae": mean_absolute_error(y, h),
        "val/r2": r2_score(y, h),  # uniform_average
    }
    if K > 1:
        for metric, fn in (("mse", mean_squared_error), ("mae", mean_absolute_error), ("r2", r2_score)):
            raw = fn(y, h, multioutput="raw_values")
            expected |= {f"val/{metric}_{name}": raw[k] for k, name in enumerate(names)}
    assert values.keys() == expected.keys()
    for key, value in expected.items():
        assert values[key] == pytest.approx(value, rel=1e-5), key


def test_per_output_names():
    assert output_names(2, ["price", "size"]) == ["price", "size"]
    assert output_names(2, ["unit price", "size (m²)"]) == ["unit_price", "size_m"]
    assert output_names(2, ["a b", "a/b"]) == ["0", "1"]  # would collide
    assert output_names(2, ["y"]) == ["0", "1"]
    assert output_names(2, None) == ["0", "1"]
    assert output_names(2, ["ok", "%%"]) == ["0", "1"]  # nothing left of a name


# -- what a fit logs --------------------------------------------------------------------------------
class Arrays(ArrayDataModule):
    def __init__(self, task, K, **kw):
        super().__init__(batch_size=16, val_fraction=0.25, test_fraction=0.25, seed=0, **kw)
        self.task, self.K = task, K

    def load_arrays(self):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(80, 3))
        s = X @ rng.normal(size=(3, max(self.K, 2)))
        if self.task == "binary":
            y, targets, classes = (s[:, 0] > 0).astype(np.int64), ["y"], ["no", "yes"]
        elif self.task == "multiclass":
            y, targets, classes = s.argmax(1), ["y"], [f"c{k}" for k in range(self.K)]
        elif self.task == "multilabel":
            y, targets, classes = (s > 0).astype(np.float64), [f"l{k}" for k in range(self.K)], None
        else:
            y, targets, classes = s[:, : self.K], [f"t{k}" for k in range(self.K)], None
        return X, y, ["a", "b", "c"], targets, self.task, classes


class Names(Logger):
    """Every metric name any hook logged."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    name, version = "names", 0

    def log_metrics(self, metrics, step=None):
        self.seen |= {k for k in metrics if k != "epoch"}

    def log_hyperparams(self, params, *args, **kwargs):
        pass


@pytest.mark.parametrize(
    "task,K", [("binary", 1), ("multiclass", 3), ("multilabel", 3), ("regression", 1), ("regression", 2)]
)
def test_a_short_fit_logs_exactly_metric_names(task, K):
    dm = Arrays(task, K)
    dm.setup()
    info = dm.info
    model = ThetaMLPModule(
        info.n_features, info.n_outputs, info.task, hidden_sizes=[4], data_info=info.to_dict(), init_seed=0
    )
    names = Names()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=names,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm)
    assert sorted(names.seen) == sorted(model.metric_names())
    assert len(set(model.metric_names())) == len(model.metric_names())
    if task == "regression" and K == 2:
        assert {"val/mae", "val/mae_t0", "val/mae_t1", "test/r2_t1"} <= names.seen
