"""The shared argument checks (lecturenn.validation) and the one λ rule (lecturenn.regularization)."""

import math

import numpy as np
import pytest
import torch

from lecturenn.regularization import batch_lam, check_lam
from lecturenn.validation import check_integer, check_number, is_integer, is_number


@pytest.mark.parametrize(
    "value", [0, 0.0, 2.5, np.float32(1.5), np.int64(3), torch.tensor(0.25), np.array([4.0])]
)
def test_check_lam_accepts_finite_non_negative_numbers(value):
    assert check_lam(value) == float(np.asarray(value if not torch.is_tensor(value) else value.item()).item())


@pytest.mark.parametrize(
    "value, error",
    [
        (True, TypeError),
        ("0.1", TypeError),
        (None, TypeError),
        ([0.1], TypeError),
        (torch.ones(2), TypeError),
        (-1e-9, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (-math.inf, ValueError),
    ],
)
def test_check_lam_refuses_with_the_name_and_value(value, error):
    with pytest.raises(error, match=r"lam \(λ\) must be a finite number >= 0, got"):
        check_lam(value)


def test_batch_lam_charges_the_batch_its_share_and_the_whole_set_lambda_itself():
    assert batch_lam(0.3, 10, 40) == pytest.approx(0.075)
    assert batch_lam(0.3, 40, 40) == 0.3
    assert batch_lam(0.3, 2.5, 10.0) == pytest.approx(0.075)  # weights: W_B / W
    with pytest.raises(ValueError, match="total_weight"):
        batch_lam(0.3, 1, 0)


def test_integer_and_number_checks_name_the_rule():
    assert check_integer(np.int32(4), "k", low=1) == 4
    with pytest.raises(TypeError, match=r"k must be an integer >= 1, got True"):
        check_integer(True, "k", low=1)
    with pytest.raises(TypeError, match=r"k must be an integer >= 1, got 2.0"):
        check_integer(2.0, "k", low=1)
    with pytest.raises(ValueError, match=r"dropout must be a finite number >= 0 and < 1, got 1"):
        check_number(1, "dropout", low=0, high=1, high_open=True)
    assert check_number(0, "dropout", low=0, high=1, high_open=True) == 0.0
    with pytest.raises(ValueError, match=r"> 0"):
        check_number(0, "lr", low=0, low_open=True)
    assert is_integer(3) and not is_integer(True) and not is_integer(3.0)
    assert is_number(3.0) and not is_number(False) and not is_number(math.nan)
