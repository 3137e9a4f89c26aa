"""A folder of images, one sub-folder per class (the layout of Keras' ``image_dataset_from_directory``).

``root/<class>/<image>``: the classes are the sorted sub-folder names and a
fixed, seeded 20 % of every class is held out for test
(:mod:`~gnas.datasets.held_out`). ``root/train/<class>/…`` beside
``root/test/<class>/…`` (and optionally ``root/val/<class>/…``) gives the
splits instead. Images are read with Pillow as 8-bit grayscale when every one
is grayscale, else as RGB; images of another size than the most common one are
resized to it (bilinear), so an exported model takes images of that size.
Hidden files are skipped; any other file that is not an image is refused.
"""
from __future__ import annotations

import collections
import pathlib
from typing import Any

import numpy as np

from gnas.datasets.dataset import _Raw
from gnas.datasets.held_out import split_off_test
from gnas.errors import DataError

#: The split folders of a pre-split layout; ``val`` is optional.
_SPLITS = ("train", "val", "test")
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


def _read_image_folder(root: pathlib.Path) -> tuple[_Raw, tuple[str, str, str, int]]:
    """Read an image folder into raw uint8 arrays and (name, task, kind, classes)."""
    image = _pillow()
    splits = _split_folders(root)
    classes = _classes(splits["train"] if splits else root)
    files = {part: _files(folder, classes) for part, folder in (splits or {"all": root}).items()}
    pictures = {part: [_open(image, f) for f, _ in items] for part, items in files.items()}
    every = [p for ps in pictures.values() for p in ps]
    mode = "L" if all(p.mode in _GRAY_MODES for p in every) else "RGB"
    size = collections.Counter(p.size for p in every).most_common(1)[0][0]
    xs = {part: _pixels(image, ps, mode, size) for part, ps in pictures.items()}
    ys = {part: np.array([label for _, label in items], np.int64) for part, items in files.items()}
    if splits is None:
        keep, held = split_off_test(ys["all"], str(root), stratify=True)
        raw = _Raw(xs["all"][keep], ys["all"][keep], xs["all"][held], ys["all"][held], class_names=classes)
    else:
        raw = _Raw(xs["train"], ys["train"], xs["test"], ys["test"], x_val=xs.get("val"),
                   y_val=ys.get("val"), class_names=classes)
    return raw, (str(root), "classification", "image", len(classes))


def _pillow() -> Any:
    """Pillow's ``Image`` module, or a DataError saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading an image folder needs Pillow; pip install pillow.") from None
    return Image


def _split_folders(root: pathlib.Path) -> dict[str, pathlib.Path] | None:
    """``{"train", "test"[, "val"]}`` folders of a pre-split layout, else ``None``."""
    present = {s: root / s for s in _SPLITS if (root / s).is_dir()}
    if "train" in present and "test" in present:
        return present
    if present.keys() & {"train", "test"}:
        given = next(iter(present.keys() & {"train", "test"}))
        missing = "test" if given == "train" else "train"
        raise DataError(f"{root}: has a {given}/ folder but no {missing}/; give both, or put the "
                        "class folders directly in it.")
    return None


def _classes(folder: pathlib.Path) -> tuple[str, ...]:
    """The sorted class sub-folders; at least two."""
    names = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if len(names) < 2:
        raise DataError(f"{folder}: {len(names)} class folder(s); an image folder needs one "
                        "sub-folder per class, at least two.")
    return names


def _files(folder: pathlib.Path, classes: tuple[str, ...]) -> list[tuple[pathlib.Path, int]]:
    """Every image file of ``folder``'s class sub-folders with its label, in a fixed order."""
    extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and p.name not in classes)
    if extra:
        raise DataError(f"{folder}: class folder {extra[0]!r} is not among the training classes "
                        f"({', '.join(classes)}); every split needs the same classes.")
    items = []
    for label, name in enumerate(classes):
        found = sorted(p for p in (folder / name).iterdir() if p.is_file() and not p.name.startswith("."))
        if not found and folder.name != "val":
            raise DataError(f"{folder / name}: no images; remove the folder or add images of the class.")
        items += [(p, label) for p in found]
    if not items:
        raise DataError(f"{folder}: no images in its class folders.")
    return items


def _open(image: Any, path: pathlib.Path) -> Any:
    """One image, loaded (so the file is closed), or a DataError naming the file."""
    try:
        with image.open(path) as picture:
            picture.load()
            return picture
    except (OSError, ValueError, image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not an image Pillow can read ({type(exc).__name__}); remove it "
                        "or convert it to PNG or JPEG.") from None


def _pixels(image: Any, pictures: list[Any], mode: str, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``(N, H, W)`` for grayscale, ``(N, H, W, 3)`` for RGB, every image at ``size``."""
    rows = []
    for picture in pictures:
        picture = picture.convert(mode)
        if picture.size != size:
            picture = picture.resize(size, resample=image.Resampling.BILINEAR)
        rows.append(np.asarray(picture, np.uint8))
    return np.stack(rows)
