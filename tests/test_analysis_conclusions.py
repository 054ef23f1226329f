"""The comparison of two runs' conclusions (benchmarks/analysis/compare_conclusions.py) on
hand-made test tables: each comparison lands in the verdict its two rows call for."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from _scripts import benchmark_script


def _script():
    return benchmark_script("compare_conclusions")




def _tests(folder: Path, rows: list[tuple[str, float, bool]]) -> None:
    """tests.csv with one primary ring test per (model_b, difference, holds)."""
    folder.mkdir()
    pd.DataFrame([{"dataset": "ring", "metric": "kl_modes", "family": "primary",
                   "model_a": "gan", "model_b": b, "mean_a": 0.2, "mean_b": 0.2 - d,
                   "n_a": 10, "n_b": 10, "difference": d, "p_holm": 0.01 if h else 0.5,
                   "holds": h} for b, d, h in rows]).to_csv(folder / "tests.csv", index=False)


def test_each_comparison_gets_the_verdict_of_its_two_rows(tmp_path):
    earlier, later = tmp_path / "earlier", tmp_path / "later"
    _tests(earlier, [("both", 0.1, True), ("flipped", 0.1, True), ("lost", 0.1, True),
                     ("gained", 0.1, False), ("never", 0.1, False), ("dropped", 0.1, True)])
    _tests(later, [("both", 0.2, True), ("flipped", -0.1, True), ("lost", 0.1, False),
                   ("gained", 0.1, True), ("never", 0.0, False), ("added", 0.1, True)])
    out = _script().compare(earlier, later, "tests.csv").set_index("model_b")["verdict"]
    assert out.to_dict() == {
        "both": "holds in both", "flipped": "holds in both, opposite directions",
        "lost": "holds in the earlier run only", "gained": "holds in the later run only",
        "never": "holds in neither", "dropped": "earlier run only", "added": "later run only"}


def test_main_writes_the_table_beside_the_later_run(tmp_path, capsys):
    earlier, later = tmp_path / "earlier", tmp_path / "later"
    _tests(earlier, [("flow", 0.1, True)])
    _tests(later, [("flow", 0.1, True)])
    assert _script().main([str(earlier), str(later)]) == 0
    written = pd.read_csv(later / "conclusions_against_earlier.csv")
    assert written["verdict"].tolist() == ["holds in both"]
    assert "holds in both" in capsys.readouterr().out
