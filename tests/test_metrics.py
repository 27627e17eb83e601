"""MTIL metrics on small hand-computed matrices, and the matrix file reader's errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from clviz.core.metrics import (
    MatrixError,
    load_matrix,
    per_task_forgetting,
    summarize,
    task_curves,
)

A = [[80, 30, 20], [60, 90, 25], [50, 70, 85]]


def test_hand_computed_3x3():
    s = summarize(A)
    assert s.transfer == pytest.approx((30 + (20 + 25) / 2) / 2)  # 26.25
    assert s.avg == pytest.approx(510 / 9)
    assert s.last == pytest.approx((50 + 70 + 85) / 3)
    assert s.bwt == pytest.approx(((50 - 80) + (70 - 90)) / 2)
    assert s.forgetting == pytest.approx(((80 - 50) + (90 - 70)) / 2)
    assert per_task_forgetting(A) == [30, 20]


def test_forgetting_counts_only_rows_after_learning():
    # task 1 was easier zero-shot (95) than after learning it (60): that is not forgetting
    a = [[50, 95, 10], [40, 60, 10], [40, 60, 70]]
    assert per_task_forgetting(a) == [10, 0]


def test_no_forgetting_and_perfect_transfer():
    a = np.full((4, 4), 100.0)
    s = summarize(a)
    assert (s.transfer, s.avg, s.last, s.bwt, s.forgetting) == (100, 100, 100, 0, 0)


def test_single_task_has_no_transfer():
    s = summarize([[70]])
    assert math.isnan(s.transfer) and s.avg == s.last == 70


def test_task_curves_are_columns():
    assert task_curves(A)[0].tolist() == [80, 60, 50]


def test_read_csv_and_json(tmp_path):
    (tmp_path / "m.csv").write_text("80,30,20\n60,90,25\n50,70,85\n")
    (tmp_path / "rows.json").write_text(json.dumps(A))
    (tmp_path / "results.json").write_text(json.dumps({"accuracy_matrix": A, "method": "x"}))
    for name in ("m.csv", "rows.json", "results.json"):
        assert load_matrix(tmp_path / name).tolist() == A


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1,2\n3\n", "row 2 has 1 entries but the matrix has 2 rows"),
        ("1,2\n3,oops\n", "row 2, column 2: 'oops' is not a number"),
        ("1,2,3\n4,5,6\n", "row 1 has 3 entries but the matrix has 2 rows"),
        ("", "non-empty"),
    ],
)
def test_malformed_csv_names_the_row(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(MatrixError, match=message):
        load_matrix(path)


def test_malformed_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"matrix": A}))
    with pytest.raises(MatrixError, match="no 'accuracy_matrix' key"):
        load_matrix(path)
    path.write_text("[[1, 2], [3, null]]")
    with pytest.raises(MatrixError, match="row 2, column 2"):
        load_matrix(path)
    with pytest.raises(MatrixError, match="no such file"):
        load_matrix(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("content", "name"),
    [
        ("\ufeff80,30,20\n60,90,25\n50,70,85\n", "bom.csv"),
        ("80;30;20\r\n60;90;25\r\n50;70;85\r\n", "semicolons.csv"),
        ("task a;task b;task c\n80,0;30;20\n60;90,0;25\n50;70;85,0\n", "decimal-commas.csv"),
        ("\ufeffa,b,c\n80,30,20\n60,90,25\n50,70,85\n", "header.csv"),
        ("80,30,20,\n60,90,25,\n50,70,85,\n", "trailing.csv"),
    ],
)
def test_excel_style_csv(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    assert load_matrix(path).tolist() == A


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("150,30\n60,90\n", r"row 1, column 1: 150 is not an accuracy in percent"),
        ("80,30\n-40,90\n", r"row 2, column 1: -40 is not an accuracy"),
        ("70\n", r"is 1 x 1: Transfer, BWT and forgetting need at least two tasks"),
    ],
)
def test_matrix_files_hold_percentages_of_two_tasks_or_more(tmp_path, content, message):
    path = tmp_path / "m.csv"
    path.write_text(content)
    with pytest.raises(MatrixError, match=message):
        load_matrix(path)


def test_a_binary_file_names_itself(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(MatrixError, match=f"{path} is not a text file"):
        load_matrix(path)
