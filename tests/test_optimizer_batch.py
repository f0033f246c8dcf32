"""Issue 12 §7: an optimizer config sets only its own keys; the full batch that `optimizer=gd` (the
lecture's batch gradient descent) and `optimizer=lbfgs` need comes from conf/optimizer_batch/, which
train.yaml picks by the optimizer's name (`optional optimizer_batch: ${optimizer}`)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("hydra")  # the Hydra app: skipped where hydra-core is missing (a bare GPU box)
pytest.importorskip("omegaconf")

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"


def batch_size(*overrides: str):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=/tmp/lecturenn-optimizer-batch", *overrides])
    return cfg.data.batch_size


def test_optimizer_configs_set_only_optimizer_keys():
    for path in sorted((CONF / "optimizer").glob("*.yaml")):
        text = path.read_text()
        assert "@package" not in text, path.name  # packaged under optimizer: it cannot reach data.*
        keys = set(OmegaConf.load(path)) - {"defaults"}
        assert "_target_" in keys or path.name == "momentum.yaml", path.name
        assert not keys & {"data", "model", "trainer", "optimizer"}, path.name


def test_each_specialisation_belongs_to_an_optimizer_and_sets_only_the_batch():
    optimizers = {p.stem for p in (CONF / "optimizer").glob("*.yaml")}
    files = sorted((CONF / "optimizer_batch").glob("*.yaml"))
    assert {p.stem for p in files} == {"gd", "lbfgs"}
    for path in files:
        assert path.stem in optimizers
        assert OmegaConf.to_container(OmegaConf.load(path)) == {"data": {"batch_size": -1}}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ((), 64),  # adam: the data config's own batch size
        (("optimizer=sgd",), 64),
        (("optimizer=momentum",), 64),
        (("optimizer=gd",), -1),  # batch gradient descent: one step per epoch on all rows
        (("optimizer=lbfgs",), -1),
        (("optimizer=gd", "data=spiral"), -1),  # whatever the data
        (("data=spiral",), 32),
        (("experiment=ex4_digits",), -1),  # an experiment's `override /optimizer: lbfgs` too
        (("experiment=spiral",), 32),
    ],
)
def test_gd_and_lbfgs_compose_to_the_full_batch(overrides, expected):
    assert batch_size(*overrides) == expected


@pytest.mark.parametrize("optimizer", ["gd", "lbfgs"])
def test_an_explicit_batch_size_wins(optimizer):
    # the user's own data.batch_size is applied last (gd then runs mini-batch SGD with lr 1)
    assert batch_size(f"optimizer={optimizer}", "data.batch_size=32") == 32
    assert batch_size("data.batch_size=32", f"optimizer={optimizer}") == 32
