"""``matmul_precision`` (TF32) through the Hydra app: checked before any work, applied before the
model is built, recorded in metrics.json (issue 13 §3). The CUDA side is in tests/test_cuda_speed.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("hydra")  # the Hydra app: skipped where hydra-core is missing (a bare GPU box)
pytest.importorskip("omegaconf")

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["++trainer.enable_progress_bar=false", "callbacks.progress_bar=null", "test=true"]


def make_cfg(tmp_path, overrides=()):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    return cfg


@pytest.fixture(autouse=True)
def _restore_matmul_precision():
    before = torch.get_float32_matmul_precision()
    yield
    torch.set_float32_matmul_precision(before)


@pytest.mark.slow
def test_a_bad_matmul_precision_is_one_line_naming_the_key_and_the_values(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), f"hydra.run.dir={out}", "matmul_precision=fast"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "config: matmul_precision='fast' is invalid" in errors[0]
    for value in ("auto", "highest", "high", "medium"):
        assert value in errors[0]
    assert not (out / "checkpoints").exists()


@pytest.mark.parametrize(("value", "expected"), [("auto", "highest"), ("medium", "medium")])
def test_the_precision_in_effect_is_applied_and_recorded_in_metrics_json(tmp_path, value, expected):
    from train import train

    torch.set_float32_matmul_precision("high" if expected != "high" else "highest")  # must be changed
    cfg = make_cfg(
        tmp_path,
        [f"matmul_precision={value}", "trainer=cpu", "trainer.max_epochs=1", "data=xor", "data.n=80", *QUIET],
    )
    metrics = train(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["matmul_precision"] == metrics["matmul_precision"] == expected
    assert torch.get_float32_matmul_precision() == expected


@pytest.mark.parametrize(
    ("accelerator", "cuda_visible", "expected"),
    [("auto", False, "highest"), ("cpu", True, "highest"), ("auto", True, "high"), ("gpu", True, "high")],
)
def test_auto_is_tf32_only_when_the_trainer_runs_on_cuda(
    tmp_path, monkeypatch, accelerator, cuda_visible, expected
):
    from app import configure_matmul_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_visible)
    cfg = make_cfg(tmp_path, [f"trainer.accelerator={accelerator}"])
    assert cfg.matmul_precision == "auto"  # the shipped default
    assert configure_matmul_precision(cfg) == expected == torch.get_float32_matmul_precision()
