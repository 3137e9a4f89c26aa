"""One's own data: an .npz with a validation split, a CSV, an image folder.

Each source is written here in its real format (``numpy.savez``, the ``csv``
module, PNG/JPEG files through Pillow) and read through ``load_dataset``, as
``gnas evolve --dataset <path>`` reads it. Every refusal is one line naming the
file and what to do.
"""
from __future__ import annotations

import csv
import pathlib

import numpy as np
import pytest

from gnas.datasets import load_dataset
from gnas.datasets.held_out import TEST_FRACTION
from gnas.datasets.preprocessing import preprocessing_record
from gnas.errors import DataError


def one_line_error(name: str) -> str:
    with pytest.raises(DataError) as exc:
        load_dataset(name)
    text = str(exc.value)
    assert text and "\n" not in text
    return text


# ------------------------------------------------------------------ .npz
def _npz(path: pathlib.Path, **arrays: np.ndarray) -> str:
    rng = np.random.default_rng(0)
    base = {"x_train": rng.normal(size=(40, 3)), "y_train": np.arange(40) % 2,
            "x_test": rng.normal(size=(10, 3)), "y_test": np.arange(10) % 2}
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return str(path)


def test_an_npz_validation_split_is_used_as_given(tmp_path: pathlib.Path) -> None:
    x_val = np.random.default_rng(1).normal(size=(7, 3))
    name = _npz(tmp_path / "v.npz", x_val=x_val, y_val=np.arange(7) % 2)
    for limit in (None, 20):
        ds = load_dataset(name, max_train_samples=limit, val_fraction=0.3)
        assert len(ds.y_train) == (limit or 40) and len(ds.y_val) == 7
        # standardised with the training part's statistics, not the validation split's own
        np.testing.assert_allclose(ds.x_val, (x_val.astype(np.float32) - ds.input_mean) / ds.input_std,
                                   rtol=1e-6)
    without = load_dataset(_npz(tmp_path / "w.npz"), val_fraction=0.25)
    assert (len(without.y_train), len(without.y_val)) == (30, 10)


@pytest.mark.parametrize("arrays, words", [
    ({"x_val": np.zeros((5, 3))}, "holds x_val but not y_val"),
    ({"x_val": np.zeros((5, 4)), "y_val": np.zeros(5)}, "x_val samples"),
    ({"x_val": np.zeros((5, 3)), "y_val": np.zeros(4)}, "y_val"),
    ({"x_val": np.zeros((5, 3)), "y_val": np.array([0, 1, -1, 0, 1])}, "y_val"),
])
def test_a_bad_npz_validation_split_is_refused(tmp_path: pathlib.Path, arrays: dict, words: str) -> None:
    text = one_line_error(_npz(tmp_path / "bad.npz", **arrays))
    assert words in text and "bad.npz" in text


# ------------------------------------------------------------------ CSV
def _csv(path: pathlib.Path, rows: list[list[object]], delimiter: str = ",") -> pathlib.Path:
    with open(path, "w", newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def _iris_like(n: int = 60) -> list[list[object]]:
    rng = np.random.default_rng(0)
    species = ["setosa", "versicolor", "virginica"]
    return [[f"{a:.3f}", f"{b:.3f}", species[i % 3], f"{c:.2f}"]
            for i, (a, b, c) in enumerate(rng.normal(size=(n, 3)) * 10)]


def test_a_csv_with_a_header_and_a_named_text_target(tmp_path: pathlib.Path) -> None:
    rows = _iris_like()
    path = _csv(tmp_path / "iris.csv", [["sepal", "petal", "species", "width"], *rows])
    ds = load_dataset(f"{path}:species", val_fraction=0.25)
    assert (ds.task, ds.kind, ds.n_classes, ds.input_shape) == ("classification", "vector", 3, (3,))
    assert ds.class_names == ("setosa", "versicolor", "virginica")
    assert len(ds.y_test) == round(TEST_FRACTION * 60) and len(ds.y_train) + len(ds.y_val) == 48
    assert np.bincount(ds.y_test).tolist() == [4, 4, 4]  # stratified
    features = np.array([[float(r[0]), float(r[1]), float(r[3])] for r in rows], np.float32)
    test_raw = ds.x_test * ds.input_std + ds.input_mean  # the held-out rows are rows of the file
    assert all(np.abs(features - row).max(axis=1).min() < 1e-3 for row in test_raw)
    assert preprocessing_record(ds)["classes"] == ["setosa", "versicolor", "virginica"]
    again = load_dataset(f"{path}:species", val_fraction=0.25)
    np.testing.assert_array_equal(again.x_test, ds.x_test)  # a fixed split: resumes see the same test rows


def test_a_csv_without_header_semicolons_and_the_last_column_a_regression(tmp_path: pathlib.Path) -> None:
    rows = [[r[0], r[1], r[3]] for r in _iris_like(50)]
    ds = load_dataset(str(_csv(tmp_path / "plain.csv", rows, delimiter=";")))
    assert (ds.task, ds.input_shape, ds.class_names) == ("regression", (2,), None)
    assert len(ds.y_test) == 10
    assert abs(ds.y_train.mean()) < 1e-4 and ds.target_std > 2  # standardised with its own statistics
    by_number = load_dataset(f"{tmp_path / 'plain.csv'}:1")
    assert by_number.task == "regression" and by_number.input_shape == (2,)


def test_integer_csv_targets_become_classes_in_sorted_order(tmp_path: pathlib.Path) -> None:
    rows = [[i * 0.5, (i * 7) % 11, [3, 1, 2][i % 3]] for i in range(45)]
    ds = load_dataset(str(_csv(tmp_path / "wine.csv", [["a", "b", "cultivar"], *rows])))
    assert ds.class_names == ("1", "2", "3") and ds.n_classes == 3
    assert set(np.unique(ds.y_train).tolist()) == {0, 1, 2}


@pytest.mark.parametrize("rows, target, words", [
    ([["a", "b", "y"], [1, "", 0], [2, 3, 1]], "", "feature 'b' is empty in data row 1"),
    ([["a", "b", "y"], [1, "red", 0], [2, 3, 1]], "", "feature 'b' holds 'red'"),
    ([["a", "b", "y"], [1, 2, 0], [2, 3]], "", "row 3 has 2 fields"),
    ([["a", "b", "y"], [1, 2, 0], [2, 3, 1]], ":z", "no target column 'z' (columns: a, b, y)"),
    ([[1, 2, 0], [2, 3, 1]], ":7", "no header row; give a number 1..3"),
    ([["a", "y"], [1, "x"], [2, "x"]], "", "one value only"),
    ([["a", "y"], [1, 0], [2, ""]], "", "target 'y' is empty in data row 2"),
    ([["a", "y"], [1, 0], [2, 1], [3, 0]], "", "too few to hold out a test split"),
    ([["y"], [1], [2]], "", "one column only"),
    ([], "", "the CSV is empty"),
    ([["a", "y"], ["inf", 0], [2, 1]], "", "infinite or NaN"),
])
def test_a_bad_csv_is_refused_in_one_line(tmp_path: pathlib.Path, rows: list, target: str, words: str) -> None:
    path = _csv(tmp_path / "bad.csv", rows)
    text = one_line_error(f"{path}{target}")
    assert words in text and "bad.csv" in text


def test_a_non_utf8_csv_and_a_missing_one(tmp_path: pathlib.Path) -> None:
    (tmp_path / "latin.csv").write_bytes("a,y\n1,caf\xe9\n".encode("latin-1"))
    assert "save the CSV as UTF-8" in one_line_error(str(tmp_path / "latin.csv"))
    assert "no such file" in one_line_error(str(tmp_path / "absent.csv:y"))


# ------------------------------------------------------------- image folder
def _image(path: pathlib.Path, pixels: np.ndarray, fmt: str = "PNG") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)


def _folder(root: pathlib.Path, per_class: int = 10, size: tuple[int, int] = (6, 5)) -> np.ndarray:
    """Grayscale class folders ``cat``/``dog``; returns every image, class by class, file order."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2 * per_class, size[1], size[0]), dtype=np.uint8)
    for i, pixels in enumerate(images):
        _image(root / ("cat", "dog")[i // per_class] / f"{i % per_class:02d}.png", pixels)
    return images


def test_an_image_folder_one_sub_folder_per_class(tmp_path: pathlib.Path) -> None:
    images = _folder(tmp_path / "pets")
    (tmp_path / "pets" / "cat" / ".DS_Store").write_bytes(b"\0")
    ds = load_dataset(str(tmp_path / "pets"), val_fraction=0.25)
    assert (ds.task, ds.kind, ds.n_classes, ds.input_shape) == ("classification", "image", 2, (5, 6, 1))
    assert ds.class_names == ("cat", "dog") and ds.raw_shape == (5, 6) and ds.input_scale == 1 / 255
    assert np.bincount(ds.y_test).tolist() == [2, 2] and len(ds.y_train) + len(ds.y_val) == 16
    raw_test = np.round(ds.x_test[..., 0] * 255).astype(np.uint8)
    assert all(any(np.array_equal(t, im) for im in images) for t in raw_test)


def test_an_image_folder_with_train_val_test_colour_and_mixed_sizes(tmp_path: pathlib.Path) -> None:
    rng = np.random.default_rng(2)
    root = tmp_path / "shapes"
    for part, n in (("train", 6), ("val", 2), ("test", 3)):
        for label in ("circle", "square"):
            for i in range(n):
                size = (9, 7) if i else (4, 4)  # one image per class and split of another size
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                _image(root / part / label / f"{i}.jpg", pixels, "JPEG")
    ds = load_dataset(str(root))
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (12, 4, 6)
    assert ds.input_shape == (7, 9, 3) and ds.raw_shape == (7, 9, 3)
    assert ds.class_names == ("circle", "square") and np.bincount(ds.y_test).tolist() == [3, 3]


@pytest.mark.parametrize("make, words", [
    (lambda r: _image(r / "only" / "a.png", np.zeros((3, 3), np.uint8)), "1 class folder(s)"),
    (lambda r: (_folder(r), (r / "dog" / "notes.txt").write_text("hello")), "notes.txt: not an image"),
    (lambda r: (_folder(r), (r / "bird").mkdir()), "no images"),
    (lambda r: _folder(r / "train"), "has a train/ folder but no test/"),
    (lambda r: (_folder(r / "train"), _folder(r / "test"), _image(r / "test" / "fox" / "a.png",
                                                                   np.zeros((5, 6), np.uint8))),
     "class folder 'fox' is not among the training classes"),
])
def test_a_bad_image_folder_is_refused_in_one_line(tmp_path: pathlib.Path, make, words: str) -> None:
    root = tmp_path / "imgs"
    root.mkdir()
    make(root)
    assert words in one_line_error(str(root))


# ------------------------------------------------------------ data.task
def test_data_task_overrides_the_inference_of_integral_targets(tmp_path: pathlib.Path) -> None:
    rows = [["rooms", "age"], *([i % 7, 20 + i % 50] for i in range(300))]
    path = str(_csv(tmp_path / "ages.csv", rows))
    assert load_dataset(path).task == "classification"  # 50 distinct integers look like classes
    ds = load_dataset(path, task="regression")
    assert (ds.task, ds.n_classes, ds.class_names) == ("regression", 1, None) and ds.target_std > 5
    npz = _npz(tmp_path / "ages.npz", y_train=np.arange(40) % 30, y_test=np.arange(10))
    assert load_dataset(npz, task="regression").task == "regression"
    decimals = _csv(tmp_path / "dose.csv", [["x", "dose"], *([i, [0.5, 1.5][i % 2]] for i in range(40))])
    ds = load_dataset(str(decimals), task="classification")
    assert ds.class_names == ("0.5", "1.5") and ds.n_classes == 2


@pytest.mark.parametrize("make, task, words", [
    (lambda p: _csv(p / "t.csv", [["x", "y"], *([i, "cat"] for i in range(20))]), "regression",
     "a regression needs numbers"),
    (lambda p: (_folder(p / "pets"), p / "pets")[1], "regression", "an image folder is a classification"),
    (lambda p: "digits", "regression", "does not apply to digits"),
    (lambda p: _npz(p / "f.npz", y_train=np.linspace(0, 1, 40)), "classification", "non-integer class labels"),
])
def test_a_task_that_does_not_fit_the_data_is_refused(tmp_path: pathlib.Path, make, task: str,
                                                      words: str) -> None:
    with pytest.raises(DataError) as exc:
        load_dataset(str(make(tmp_path)), task=task)
    assert words in str(exc.value) and "\n" not in str(exc.value)
