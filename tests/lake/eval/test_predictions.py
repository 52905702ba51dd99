"""Reading a predictions file: every bad line named by file and line; IDs checked per split."""

from __future__ import annotations

from pathlib import Path

import pytest

from lake.errors import ConfigError
from lake.eval.predictions import as_predictions, check_ids, read_predictions


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "preds.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_reads_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"ID": 3, "prediction": "yes"}\n\n{"ID": 1, "prediction": "B", "model": "x"}\n',
    )
    assert read_predictions(path) == {3: "yes", 1: "B"}


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"ID": 1, "prediction": "yes"', "not valid JSON"),
        ('[1, "yes"]', "expected a JSON object"),
        ('{"prediction": "yes"}', "missing key 'ID'"),
        ('{"ID": 1}', "missing key 'prediction'"),
        ("{}", "missing key 'ID' and 'prediction'"),
        ('{"ID": "1", "prediction": "yes"}', "ID '1' is not an integer"),
        ('{"ID": 1.0, "prediction": "yes"}', "ID 1.0 is not an integer"),
        ('{"ID": true, "prediction": "yes"}', "ID True is not an integer"),
        ('{"ID": 1, "prediction": 1}', "prediction of ID 1 is int"),
        ('{"ID": 1, "prediction": null}', "prediction of ID 1 is NoneType"),
    ],
)
def test_bad_lines_name_the_file_and_line(tmp_path: Path, line: str, words: str) -> None:
    path = write(tmp_path, '{"ID": 7, "prediction": "no"}\n' + line + "\n")
    with pytest.raises(ConfigError, match=r"preds\.jsonl:2: ") as err:
        read_predictions(path)
    assert words in str(err.value)


def test_a_repeated_id_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, '{"ID": 7, "prediction": "no"}\n{"ID": 7, "prediction": "yes"}\n')
    with pytest.raises(
        ConfigError, match=r"preds.jsonl:2: ID 7 is predicted twice \(first on line 1\)"
    ):
        read_predictions(path)


def test_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_predictions(tmp_path / "nope.jsonl")
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"ID": 1, "prediction": "\xe9"}\n')
    with pytest.raises(ConfigError, match="cannot be read"):
        read_predictions(bad)


def test_python_predictions_are_checked() -> None:
    assert as_predictions({2: "a"}) == {2: "a"}
    assert as_predictions([{"ID": 2, "prediction": "a"}]) == {2: "a"}
    with pytest.raises(ConfigError, match=r"predictions\[1\]: ID 2 is predicted twice"):
        as_predictions([{"ID": 2, "prediction": "a"}, {"ID": 2, "prediction": "b"}])
    with pytest.raises(ConfigError, match=r"predictions\[0\]: ID 'x' is not an integer"):
        as_predictions({"x": "a"})  # type: ignore[dict-item]


def test_ids_against_the_split() -> None:
    assert check_ids({1: "a", 2: "b"}, [1, 2], "bench", {}) == []
    with pytest.raises(ConfigError, match=r"2 ID\(s\) are not rows of split 'bench': 5, 9") as err:
        check_ids({1: "a", 5: "b", 9: "c"}, [1, 2], "bench", {9: "test"})
    assert "ID 9 is a row of split 'test'" in str(err.value)
    with pytest.raises(
        ConfigError, match=r"1 of the 2 rows of split 'bench' have no prediction: 2"
    ):
        check_ids({1: "a"}, [1, 2], "bench", {})
    assert check_ids({1: "a"}, [1, 2, 3], "bench", {}, allow_missing=True) == [2, 3]
    many = check_ids({}, range(10), "bench", {}, allow_missing=True)
    assert many == list(range(10))
    with pytest.raises(ConfigError, match="0, 1, 2, 3, 4 and 5 more"):
        check_ids({}, range(10), "bench", {})
