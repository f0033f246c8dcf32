"""The Hydra app end to end: config composition, train → metrics.json, eval, predict, sweeps, resume."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("hydra")  # the Hydra app: skipped where hydra-core is missing (a bare GPU box)
pytest.importorskip("omegaconf")

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
sys.path.insert(0, str(ROOT / "scripts"))

from conftest import run_script  # noqa: E402
from train import build, train  # noqa: E402

QUIET = ["++trainer.enable_progress_bar=false", "callbacks.progress_bar=null"]


def make_cfg(tmp_path, overrides=(), config="train"):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(config, overrides=[*overrides], return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    return cfg


# -- composition --------------------------------------------------------------------------------
GROUPS = {
    "data": sorted(p.stem for p in (CONF / "data").glob("*.yaml") if p.stem != "table"),
    "optimizer": sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml")),
    "scheduler": sorted(p.stem for p in (CONF / "scheduler").glob("*.yaml")),
    "model": sorted(p.stem for p in (CONF / "model").glob("*.yaml")),
    "experiment": sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")),
}


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_instantiates(tmp_path, group, option):
    datamodule, model = build(make_cfg(tmp_path, [f"{group}={option}"]))
    info = datamodule.info
    optim = model.configure_optimizers()
    optimizer = optim["optimizer"] if isinstance(optim, dict) else optim
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert model.net.sizes[0] == info.n_features and model.net.sizes[-1] == info.n_outputs


@pytest.mark.parametrize("trainer", ["default", "cpu", "ddp_sim", "gpu", "ddp"])
def test_trainer_configs(tmp_path, trainer):
    cfg = make_cfg(tmp_path, [f"trainer={trainer}"])
    if trainer in ("gpu", "ddp"):
        assert cfg.trainer.accelerator == "gpu"
        if trainer == "ddp":
            assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices >= 2
        return
    t = hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert t.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("logger", ["csv", "tensorboard", "many", "none"])
def test_logger_and_callback_configs(tmp_path, logger):
    from app import instantiate_list

    cfg = make_cfg(tmp_path, [f"logger={logger}", "callbacks=early_stopping"])
    assert len(instantiate_list(cfg.logger)) == {"csv": 1, "tensorboard": 1, "many": 2, "none": 0}[logger]
    names = {type(c).__name__ for c in instantiate_list(cfg.callbacks)}
    assert {"ModelCheckpoint", "PlotCallback", "EarlyStopping"} <= names


def test_hparams_search_config_composes(tmp_path):
    cfg = make_cfg(tmp_path, ["hparams_search=optuna"])
    assert cfg.hydra.sweeper.direction == "maximize" and "optimizer.lr" in cfg.hydra.sweeper.params
    assert cfg.optimized_metric is None  # null: the task's own best metric (val/acc_best here)


# -- training runs (in process) --------------------------------------------------------------------
def test_train_writes_metrics_checkpoints_and_plots(tmp_path):
    cfg = make_cfg(tmp_path, ["trainer.max_epochs=3", *QUIET])
    metrics = train(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("test/acc", "test/loss", "test/f1", "test/auroc", "val/acc_best"):
        assert key in saved and np.isfinite(saved[key])
    assert saved["epochs"] == 3 and metrics["test/acc"] == saved["test/acc"]
    assert saved["test/acc"] > 0.8  # digits learn fast
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert {"curves.png", "confusion.png", "theta.png"} <= {p.name for p in (tmp_path / "plots").iterdir()}
    assert (tmp_path / "csv" / "metrics.csv").is_file()


def test_playground_run_draws_the_decision_boundary(tmp_path):
    cfg = make_cfg(tmp_path, ["data=circle", "trainer.max_epochs=2", "model.hidden_sizes=[8]", *QUIET])
    train(cfg)
    assert (tmp_path / "plots" / "boundary.png").is_file()


@pytest.mark.parametrize(
    "overrides",
    [
        ["optimizer=gd", "trainer.max_epochs=3"],
        ["optimizer=lbfgs", "trainer.max_epochs=2"],
        ["optimizer=momentum", "scheduler=plateau", "trainer.max_epochs=2"],
        ["optimizer=sgd", "scheduler=cosine", "trainer.max_epochs=2"],
        [
            "model.backprop=autograd",
            "model.activation=relu",
            "model.hidden_sizes=[16,16]",
            "trainer.max_epochs=2",
        ],
        ["model.batchnorm=true", "model.dropout=0.2", "trainer.max_epochs=2"],
        ["experiment=regression", "trainer.max_epochs=2"],
    ],
)
def test_optimizers_schedules_and_models_train(tmp_path, overrides):
    metrics = train(make_cfg(tmp_path, [*overrides, *QUIET]))
    assert np.isfinite(metrics["test/loss"])


def test_full_batch_gradient_descent_is_one_step_per_epoch(tmp_path):
    cfg = make_cfg(tmp_path, ["optimizer=gd", "trainer.max_epochs=4", *QUIET])
    train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4


def test_resume_from_last_checkpoint_continues_the_epoch_count(tmp_path):
    first = tmp_path / "first"
    train(make_cfg(first, ["trainer.max_epochs=2", *QUIET]))
    last = first / "checkpoints" / "last.ckpt"
    second = tmp_path / "second"
    metrics = train(make_cfg(second, ["trainer.max_epochs=4", f"ckpt_path={last}", *QUIET]))
    assert metrics["epochs"] == 4
    epochs = pd.read_csv(second / "csv" / "metrics.csv")["epoch"].dropna()
    assert epochs.min() >= 2  # the resumed run logged only epochs 2 and 3 (0-based) before testing


def test_table_data_with_class_names(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    label = np.where(X[:, 0] + X[:, 1] > 0, "cat", "dog")
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "animal": label}).to_parquet(
        tmp_path / "t.parquet"
    )
    cfg = make_cfg(
        tmp_path,
        [
            "data=table",
            f"data.path={tmp_path / 't.parquet'}",
            "data.target=animal",
            "trainer.max_epochs=20",
            "optimizer.lr=0.05",
            *QUIET,
        ],
    )
    metrics = train(cfg)
    assert metrics["test/acc"] > 0.8
    hp = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hp["task"] == "binary" and hp["data_info"]["classes"] == ["cat", "dog"]


# -- the command line (subprocesses) ------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One real `python scripts/train.py` run on iris, shared by the eval/predict tests."""
    cwd = tmp_path_factory.mktemp("cli")
    run_dir = cwd / "run"
    proc = run_script(
        "train.py",
        "data=iris",
        "trainer.max_epochs=30",
        "optimizer.lr=0.05",
        f"hydra.run.dir={run_dir}",
        *QUIET,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, run_dir, proc


def test_cli_train_prints_summary_and_outputs(trained_run):
    _, run_dir, proc = trained_run
    assert "Θ^(1): (100, 5)" in proc.stdout and "test metrics:" in proc.stdout
    assert f"outputs: {run_dir.resolve()}" in proc.stdout
    assert json.loads((run_dir / "metrics.json").read_text())["test/acc"] > 0.8


def test_cli_eval(trained_run):
    cwd, run_dir, _ = trained_run
    proc = run_script(
        "eval.py",
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        f"hydra.run.dir={cwd / 'eval'}",
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((cwd / "eval" / "eval_metrics.json").read_text())
    assert metrics["test/acc"] > 0.8 and "test/loss" in metrics


def test_cli_predict(trained_run):
    from sklearn.datasets import load_iris

    cwd, run_dir, _ = trained_run
    iris = load_iris(as_frame=True)
    table = iris.frame.drop(columns="target").iloc[::10]
    table.to_csv(cwd / "new.csv", index=False)
    proc = run_script(
        "predict.py",
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        f"input={cwd / 'new.csv'}",
        f"output={cwd / 'pred.csv'}",
        f"hydra.run.dir={cwd / 'predict'}",
        "threads=1",  # as train.py and eval.py take it (newcomer round: "not in struct")
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    pred = pd.read_csv(cwd / "pred.csv")
    assert len(pred) == len(table)
    assert set(pred["prediction"]) <= set(iris.target_names)
    probs = pred[[f"prob_{c}" for c in iris.target_names]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    expected = iris.target_names[iris.target[::10]]
    assert (pred["prediction"].to_numpy() == expected).mean() > 0.8


def test_cli_predict_rejects_missing_columns(trained_run, capsys, monkeypatch):
    """In-process (predict.predict on the composed config: the CLI's code); predict.py's process
    contract is test_predict_inputs.py's test_cli_partly_blank_labels_then_refuses_to_overwrite."""
    from predict import predict

    cwd, run_dir, _ = trained_run
    monkeypatch.chdir(cwd)  # the default output=predictions.csv, as the process had cwd=cwd
    pd.DataFrame({"petal length (cm)": [1.0]}).to_csv(cwd / "bad.csv", index=False)
    args = [f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", f"input={cwd / 'bad.csv'}"]
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as info:
        predict(make_cfg(cwd / "predict_bad", args, config="predict"))
    torch.set_num_threads(threads)  # threads: auto sets it for the process
    assert info.value.code != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: input is missing feature column(s)")
    assert not (cwd / "predictions.csv").exists()


def test_cli_multirun_two_jobs(tmp_path):
    proc = run_script(
        "train.py",
        "-m",
        "optimizer.lr=0.1,0.3",
        "data=iris",
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *QUIET,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert [p.parent.name for p in results] == ["0", "1"]
    assert all("test/acc" in json.loads(p.read_text()) for p in results)


@pytest.mark.parametrize(
    "table,target,message",
    [
        ({"a": [1.0, 2.0] * 20, "label": ["x", "y"] * 20}, "lable", "did you mean 'label'"),
        ({"a": ["p", "q"] * 20, "label": ["x", "y"] * 20}, "label", "not numeric"),
        ({"a": [1.0, float("nan")] * 20, "label": ["x", "y"] * 20}, "label", "NaN"),
    ],
)
def test_cli_bad_data_files_fail_with_one_clear_line(tmp_path, capsys, table, target, message):
    """In-process (train.train on the composed config: the CLI's code; the processes above and in
    test_config_schema.py / test_divergence.py hold the exit-code contract)."""
    pd.DataFrame(table).to_csv(tmp_path / "data.csv", index=False)
    overrides = ["data=table", f"data.path={tmp_path / 'data.csv'}", f"data.target={target}", *QUIET]
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as info:
        train(make_cfg(tmp_path / "run", overrides))
    torch.set_num_threads(threads)  # threads: auto sets it for the process
    assert info.value.code != 0
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in err


def test_ddp_sim_matches_single_process(tmp_path):
    common = ["trainer.max_epochs=15", *QUIET]
    threads = torch.get_num_threads()
    train(make_cfg(tmp_path / "one", common))  # the single-process reference, in-process (the CLI's code)
    torch.set_num_threads(threads)  # threads: auto sets it for the process
    ddp = run_script(
        "train.py", "trainer=ddp_sim", *common, f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    acc_one = json.loads((tmp_path / "one" / "metrics.json").read_text())["test/acc"]
    acc_ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())["test/acc"]
    assert acc_one > 0.93 and abs(acc_ddp - acc_one) < 0.03, (acc_one, acc_ddp)


@pytest.mark.slow
def test_main_job_reaches_97_percent(tmp_path):
    """`python scripts/train.py` with no arguments: digits to >= 97 % test accuracy."""
    proc = run_script("train.py", f"hydra.run.dir={tmp_path / 'main'}", *QUIET, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "main" / "metrics.json").read_text())
    assert metrics["test/acc"] >= 0.97, metrics


def test_a_sweep_direction_that_misfits_an_explicit_metric_is_one_line_before_any_job(tmp_path):
    """A newcomer's find: each of Optuna's 20 trials printed the same direction error, then '20 of 20
    jobs failed'. An explicit optimized_metric (experiment=regression: val/mse_best) is checked once."""
    proc = run_script("train.py", "-m", "hparams_search=optuna", "experiment=regression", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "error: config: hydra.sweeper.direction=maximize but optimized_metric val/mse_best is better when "
        "lower; pass hydra.sweeper.direction=minimize"
    ]
    assert list(tmp_path.iterdir()) == []  # no sweep directory, no job


def test_the_sweep_wide_direction_check_leaves_the_tasks_own_or_a_swept_metric_to_each_job():
    from runs import sweep_direction_complaint

    def cfg(metric, task=(), params=None, direction="maximize"):
        hydra = {"sweeper": {"direction": direction, "params": params}, "overrides": {"task": list(task)}}
        return OmegaConf.create({"optimized_metric": metric, "hydra": hydra})

    assert "better when lower" in sweep_direction_complaint(cfg("val/mse_best"))
    assert "better when higher" in sweep_direction_complaint(cfg("val/acc_best", direction="minimize"))
    assert sweep_direction_complaint(cfg("val/r2_best")) is None
    assert sweep_direction_complaint(cfg(None)) is None  # the task's own metric: each job checks it
    assert sweep_direction_complaint(cfg("val/mse_best", ["optimized_metric=val/mse_best,val/acc"])) is None
    # a fixed metric on the command line is no sweep of it (hostile round 10b: it was taken for one)
    assert "better when lower" in sweep_direction_complaint(cfg("val/loss", ["optimized_metric=val/loss"]))
    assert sweep_direction_complaint(cfg("val/mse_best", params={"optimized_metric": "choice(a, b)"})) is None
    assert sweep_direction_complaint(cfg("val/mse_best", direction=None)) is None  # no Optuna: no direction


def test_optuna_sweep_runs_trials_and_reports_the_best(tmp_path):
    """The usage line of conf/hparams_search/optuna.yaml for regression: every trial returns its
    val/mse_best (it used to get val/acc_best from the search config, None: every trial failed)."""
    proc = run_script(
        "train.py",
        "-m",
        "hparams_search=optuna",
        "experiment=regression",
        "hydra.sweeper.direction=minimize",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "trainer.max_epochs=2",
        f"hydra.sweep.dir={tmp_path / 'optuna'}",
        *QUIET,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = [json.loads(p.read_text()) for p in (tmp_path / "optuna").glob("*/job.json")]
    assert len(jobs) == 2 and all(j["metric"] == "val/mse_best" and j["value"] > 0 for j in jobs)
    best = (tmp_path / "optuna" / "optimization_results.yaml").read_text()
    assert "best_params" in best and "best_value" in best
