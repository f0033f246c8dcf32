"""Evaluate a checkpoint on the test split: ``python scripts/eval.py ckpt_path=.../last.ckpt``.

Prints the test metrics and writes them to ``eval_metrics.json`` (strict JSON: NaN/inf → null) in
the eval run directory. Nothing read from disk can choose code to run:

* the checkpoint is verified (CRC-32 of every record) and read as data only
  (:func:`lecturenn.training.checkpoint.load_module`: ``weights_only=True``, hyper-parameters must
  be plain arguments of ``ThetaMLPModule``; no Lightning ``load_from_checkpoint``);
* without ``data=``, the data config comes from the training run's ``.hydra/config.yaml``, and
  that file may only name one of lecturenn's own data modules (:data:`DATA_MODULES`) with plain
  values for its arguments — it is validated and the class is called directly, never through
  ``hydra.utils.instantiate``;
* ``plugins`` (modules registering the checkpoint's own activations or heads) are imported only
  when this command names them (``plugins=[my_plugin]``), never from the run's stored config.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hydra
from app import (
    check_group_choices,
    configure_matmul_precision,
    configure_threads,
    fail,
    load_plugins,
    quiet_third_party_noise,
    route_lightning_logs_to_root,
    validate_config,
)
from omegaconf import DictConfig, OmegaConf
from runs import strict_json

# The only classes a run directory's config may name: the _target_s of conf/data/*.yaml and
# conf/data/stream/*.yaml (tests/test_run_files.py checks that the two agree).
DATA_MODULES = (
    "lecturenn.data.PlaygroundDataModule",
    "lecturenn.data.SklearnDataModule",
    "lecturenn.data.TableDataModule",
    "lecturenn.data.NpyStreamDataModule",
    "lecturenn.data.ParquetStreamDataModule",
)
# the data modules' arguments that name files: relative ones are relative to where the run started
_PATH_ARGUMENTS = {
    "lecturenn.data.TableDataModule": ("path",),
    "lecturenn.data.NpyStreamDataModule": ("features", "targets"),
    "lecturenn.data.ParquetStreamDataModule": ("path",),
}
_RESOLVERS = (
    "oc.env",
)  # interpolation functions a run config may use (conf/paths: ${oc.env:PROJECT_ROOT,.})
_NODE_REFERENCE = re.compile(r"\$\{[A-Za-z_][\w-]*(\.[A-Za-z_0-9][\w-]*)*\}")
_PLAIN = (str, int, float, bool, type(None))
_MAX_CONFIG_BYTES = 1 << 20


class RunConfigError(ValueError):
    """A run directory's config that eval refuses to act on."""


def _check_interpolations(raw, value, key: str, seen: set[str]) -> None:
    """Every ``${...}`` reachable from ``value`` is a plain node reference or an allowed resolver."""
    from omegaconf import grammar_parser
    from omegaconf.errors import GrammarParseError

    if isinstance(value, dict):
        for k, v in value.items():
            _check_interpolations(raw, v, f"{key}.{k}", seen)
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_interpolations(raw, v, f"{key}[{i}]", seen)
        return
    if not isinstance(value, str) or "${" not in value:
        return
    try:
        tree = grammar_parser.parse(value)
    except GrammarParseError:
        raise RunConfigError(f"{key}={value!r} is not a valid interpolation") from None
    stack = [tree]
    while stack:
        node = stack.pop()
        kind = type(node).__name__
        if kind == "InterpolationResolverContext":
            name = node.resolverName().getText()
            if name not in _RESOLVERS:
                raise RunConfigError(f"{key}={value!r} calls the resolver {name!r} (only {list(_RESOLVERS)})")
        elif kind == "InterpolationNodeContext":
            text = node.getText()
            if not _NODE_REFERENCE.fullmatch(text):
                raise RunConfigError(f"{key}={value!r}: only absolute references like ${{seed}} are allowed")
            path = text[2:-1]
            if path not in seen:
                seen.add(path)
                target = raw
                for part in path.split("."):
                    if isinstance(target, str):  # an interpolation on the way is resolved too
                        break
                    if isinstance(target, list) and part.isdigit() and int(part) < len(target):
                        target = target[int(part)]
                    else:
                        target = target.get(part) if isinstance(target, dict) else None
                _check_interpolations(raw, target, path, seen)
        stack.extend(node.getChildren() if hasattr(node, "getChildren") else [])


def _check_plain(value, key: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or k.startswith("_"):
                raise RunConfigError(
                    f"{key}.{k} is not allowed (no Hydra instantiation keys in a run config)"
                )
            _check_plain(v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_plain(v, f"{key}[{i}]")
    elif type(value) not in _PLAIN:
        raise RunConfigError(f"{key} is a {type(value).__name__}, not a plain value")


def data_module_from_run(run_config: Path):
    """The DataModule a training run used, from its ``.hydra/config.yaml``, validated as data.

    The ``data`` node must name one of :data:`DATA_MODULES`; after resolving its interpolations
    (plain node references such as ``${seed}``, and ``oc.env``) against the run config, every key
    must be an argument of that class and every value plain (str/int/float/bool/None and
    lists/dicts of them, no ``_target_`` or other ``_..._`` key anywhere). Raises
    :class:`RunConfigError` otherwise; the class is called directly (no ``hydra.utils.instantiate``).
    """
    import yaml

    import lecturenn.data
    from lecturenn.training.checkpoint import init_arguments

    try:
        if run_config.stat().st_size > _MAX_CONFIG_BYTES:
            raise RunConfigError(f"larger than {_MAX_CONFIG_BYTES} bytes")
        text = run_config.read_text(encoding="utf-8")
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise RunConfigError("uses YAML aliases (Hydra never writes them)")
        cfg = OmegaConf.create(text)
    except RunConfigError:
        raise
    except Exception as err:  # unreadable file, YAML syntax errors, tags (!!python/...), ...
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise RunConfigError(f"cannot be read as a config: {reason}") from None
    raw = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else None
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
        raise RunConfigError("has no data node (a mapping)")
    _check_interpolations(raw, raw["data"], "data", set())
    try:
        node = OmegaConf.to_container(cfg.data, resolve=True, throw_on_missing=True)
    except Exception as err:  # missing values (???), references to absent keys, ...
        raise RunConfigError(f"data: {' '.join(str(err).split())[:200]}") from None
    target = node.pop("_target_", None)
    if target not in DATA_MODULES:
        raise RunConfigError(
            f"data._target_={target!r} is not one of lecturenn's data modules ({', '.join(DATA_MODULES)})"
        )
    cls = getattr(lecturenn.data, target.rsplit(".", 1)[1])
    names, required = init_arguments(cls)
    for key, value in node.items():
        if key not in names:
            raise RunConfigError(
                f"data.{key} is not an argument of {target} (its arguments: {', '.join(names)})"
            )
        _check_plain(value, f"data.{key}")
    missing = [name for name in required if name not in node]
    if missing:
        raise RunConfigError(f"data lacks {target}'s required argument(s) {missing}")
    started_in = _run_cwd(run_config.parent / "hydra.yaml")
    for key in _PATH_ARGUMENTS.get(target, ()):
        value = node.get(key)
        if isinstance(value, str) and started_in is not None and not Path(value).expanduser().exists():
            if (started_in / value).exists():  # a path relative to the run's own current directory
                node[key] = str(started_in / value)
    try:
        return cls(**node)
    except Exception as err:  # the class's own validation (ValueError, DataError, TypeError)
        raise RunConfigError(f"data: {' '.join(str(err).split())[:300]}") from None


def _run_cwd(hydra_yaml: Path) -> Path | None:
    """The directory the run was started in (``hydra.runtime.cwd`` of its ``.hydra/hydra.yaml``), or
    None: a relative data path in its config is relative to it, not to where eval.py runs."""
    import yaml

    try:
        if hydra_yaml.stat().st_size > _MAX_CONFIG_BYTES:
            return None
        cwd = yaml.safe_load(hydra_yaml.read_text(encoding="utf-8"))["hydra"]["runtime"]["cwd"]
    except Exception:  # noqa: BLE001 — missing, unreadable or odd: paths stay as written
        return None
    return Path(cwd) if isinstance(cwd, str) and Path(cwd).is_absolute() else None


def training_data_module(ckpt_path: Path):
    """The data module of the run that wrote this checkpoint (``<run>/.hydra/config.yaml``)."""
    run_config = ckpt_path.resolve().parent.parent / ".hydra" / "config.yaml"
    if not run_config.is_file():
        fail(ValueError(f"no data config given and {run_config} not found; pass data=<name> (and data.*)"))
    try:
        return data_module_from_run(run_config)
    except RunConfigError as err:
        fail(ValueError(f"run config {run_config}: {err}; pass data=<name> to choose the data"))


# What the data must share with the checkpoint for its metrics to mean anything: the same inputs in
# the same order, the same targets/classes and task, and the same standardisation (eval.py scores
# the data module's test split as that module standardised it, with statistics of its own training
# split). The training rows themselves (n_train, train_digest) may differ: scoring another file of
# the same kind is what data= is for.
def data_mismatch(data: dict, trained: dict) -> str | None:
    """One line naming the first field in which ``data`` differs from the checkpoint's, or None."""
    from lecturenn.training.resume import FIXED_DATA, _short, data_difference

    key = data_difference(trained, data, [k for k in FIXED_DATA if k not in ("n_train", "train_digest")])
    if key is None:
        return None
    hint = (
        "the data module standardised with statistics of another training split (another file, "
        "data.seed, fractions or data.standardize); evaluate on the run's own data (leave data= "
        "out), or use predict.py, which applies the checkpoint's standardisation to any table"
        if key in ("x_mean", "x_std", "y_mean", "y_std")
        else "its metrics would score another task, inputs or targets than the network's"
    )
    ours, theirs = _short(data.get(key)), _short(trained.get(key))
    return f"the data's {key} ({ours}) differs from the checkpoint's ({theirs}): {hint}"


def evaluate(cfg: DictConfig) -> dict[str, float]:
    load_plugins(cfg)  # from this command line only: never from the run's stored config
    validate_config(cfg)  # every key, before anything heavy is imported

    import lightning as L
    import torch

    from lecturenn.data import DataError
    from lecturenn.training.checkpoint import CheckpointError, load_module

    route_lightning_logs_to_root()
    quiet_third_party_noise()
    configure_threads(cfg)
    matmul_precision = configure_matmul_precision(cfg)
    ckpt_path = Path(cfg.ckpt_path)
    try:
        model = load_module(ckpt_path, map_location="cpu")  # verified, data only, no RNG restore
        if cfg.get("data"):  # chosen on the command line: the user's own config
            datamodule = hydra.utils.instantiate(cfg.data)
        else:
            datamodule = training_data_module(ckpt_path)
        datamodule.setup("test")
    except (CheckpointError, DataError, ValueError) as err:
        fail(err)
    if datamodule.info.n_features != model.net.sizes[0]:
        fail(
            ValueError(
                f"the data has {datamodule.info.n_features} features but the checkpoint's "
                f"network expects {model.net.sizes[0]}"
            )
        )
    mismatch = data_mismatch(datamodule.info.to_dict(), model.hparams.get("data_info") or {})
    if mismatch:
        fail(ValueError(mismatch))
    dtype = getattr(datamodule, "dtype", None)
    if isinstance(dtype, torch.dtype) and dtype != model.net.thetas[0].dtype:
        model = model.to(dtype)  # e.g. a float64 (64-true) checkpoint scored on float32 data
    L.seed_everything(cfg.seed, verbose=False)
    # no checkpointing: nothing to save here (and no ModelCheckpoint, whose creation advertises litmodels)
    trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=[], enable_progress_bar=False, enable_checkpointing=False
    )
    trainer.test(model, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    out = Path(cfg.paths.output_dir) / "eval_metrics.json"
    record = {"checkpoint": str(ckpt_path), **metrics, "matmul_precision": matmul_precision}
    out.write_text(strict_json(record))
    for name, value in sorted(metrics.items()):
        print(f"{name:12s} {value:.4f}")
    print(f"written: {out.resolve()}")
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    check_group_choices(sys.argv[1:])
    sys.exit(main())
