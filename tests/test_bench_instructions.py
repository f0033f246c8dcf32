"""benchmarks/bench_instructions.py: the phases run, the callgrind dumps are read in phase order, bad
arguments are refused (the valgrind run itself takes minutes: BENCHMARKS.md has its numbers)."""

from pathlib import Path

import pytest
from conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_instructions.py"


@pytest.fixture(scope="module")
def bi():
    return load_script(SCRIPT, "lecturenn_bench_instructions")


def test_the_phases_run_every_row_in_order(bi, tmp_path):
    order = tmp_path / "order.txt"
    assert (
        bi.main(["--phases", "--sizes", "6", "4", "3", "--batch", "5", "--steps", "2", "--order", str(order)])
        == 0
    )
    assert order.read_text().splitlines() == [f"6-4-3/5\t{row}" for row in bi.ROWS]


def test_dumps_are_read_in_phase_order_and_tabled(bi, tmp_path):
    """Dump 2k holds phase k (callgrind dumps before each of the two markers framing a phase); dump
    numbers sort as numbers (10 after 9)."""
    names = [f"6-4-3/5\t{row}" for row in bi.ROWS]
    for i in range(1, 2 * len(names) + 1):
        total = 1000 * (i // 2) if i % 2 == 0 else 7  # phase k: 1000·k instructions; between phases: 7
        (tmp_path / f"cg.out.{i}").write_text(f"events: Ir\nsummary: {total}\ntotals: {total}\n")
    totals = bi.phase_totals(list(tmp_path.glob("cg.out.*")))
    assert totals == [1000 * k for k in range(1, len(names) + 1)]
    text = bi.table(names, totals, steps=10)
    assert "torch nn.Linear" in text and "100" in text and "1.000" in text  # 1000 / 10 steps, the baseline
    assert "manual ÷ autograd: 0.750 without the checks, 0.833 with them" in text  # 3000/4000, 5000/6000


@pytest.mark.parametrize(
    "argv", [["--sizes", "4", "3"], ["--batch", "4"], ["--sizes", "4", "--batch", "2"], ["--steps", "0"]]
)
def test_bad_arguments_exit_2(bi, argv):
    with pytest.raises(SystemExit) as exc:
        bi.parse_args(argv)
    assert exc.value.code == 2
