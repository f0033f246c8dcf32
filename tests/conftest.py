import os
import re
import sys
from pathlib import Path

import pytest
import torch

# the entry points' helpers (scripts/app.py, runs.py, train.py) import each other by module name, and so
# do the benchmarks (benchmarks/gpu_check.py imports bench.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N: N workers share the cores. One torch thread each, here and in the entry points
    # the tests start (threads: auto follows OMP_NUM_THREADS): oversubscribed OpenMP threads spin
    # while descheduled and make small steps tens of times slower.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


# The Hydra app's packages (hydra-core, omegaconf, antlr4) are missing on a bare GPU box (scripts/gpu_check.sh
# runs `pytest -m cuda` there). The modules that import them at top level skip themselves
# (pytest.importorskip); one that reaches them only through scripts/ (e.g. `from runs import ...`) fails
# at import instead: report that as a skip too, so that `pytest -m cuda` collects the rest.
_APP_ONLY = re.compile(r"ModuleNotFoundError: No module named '(hydra|omegaconf|antlr4)[.']")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.failed and isinstance(collector, pytest.Module):
        missing = _APP_ONLY.search(str(report.longrepr))
        if missing:
            report.outcome = "skipped"
            reason = f"Skipped: needs {missing.group(1)} (the Hydra app)"
            report.longrepr = (str(collector.path), None, reason)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
