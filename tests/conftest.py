import os
import sys
from pathlib import Path

import pytest
import torch

# the entry points' helpers (scripts/app.py, runs.py, train.py) import each other by module name
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N: N workers share the cores. One torch thread each, here and in the entry points
    # the tests start (threads: auto follows OMP_NUM_THREADS): oversubscribed OpenMP threads spin
    # while descheduled and make small steps tens of times slower.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


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
