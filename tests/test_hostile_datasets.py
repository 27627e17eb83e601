"""Hostile dataset folders: links, duplicates, 16-bit and odd image modes, decompression bombs,
damaged images inside DataLoader workers, and the content fingerprint of a dataset folder.

Every error is one line naming the path; nothing hangs (the loop-link case runs in a fresh
process under a timeout, so a regression fails instead of filling memory).
"""

from __future__ import annotations

import multiprocessing
import os
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clviz.core.feed import feed
from clviz.data.fake import make_fake_mtil
from clviz.data.lazy import (
    PIXELS_VAR,
    FileReader,
    LazyImages,
    clip_preprocess,
    to_rgb,
)
from clviz.data.mtil import (
    DatasetError,
    dataset_fingerprint,
    load_split,
    make_mtil_task,
    stream_fingerprint,
)
from clviz.data.scan import scan_dataset
from clviz.errors import ImageReadError

SIZE = 16


def one_line(err: pytest.ExceptionInfo | Exception) -> str:
    """The error's message, checked to be a single line without any traceback."""
    text = str(err.value if isinstance(err, pytest.ExceptionInfo) else err)
    assert "\n" not in text and "Traceback" not in text, text
    return text


@pytest.fixture
def eurosat(tmp_path) -> Path:
    """A fake EuroSAT (3 images per class) under a fresh data root."""
    return make_fake_mtil(tmp_path / "data", ["EuroSAT"], 2, 1)


@pytest.fixture
def dtd(tmp_path) -> Path:
    """A fake DTD (2 train, 1 val, 1 test image per class) under a fresh data root."""
    return make_fake_mtil(tmp_path / "data", ["DTD"], 2, 1)


# --------------------------------------------------------------------------- 1. links
def test_a_loop_link_in_a_class_folder_is_refused_before_listing(eurosat):
    link = eurosat / "eurosat" / "2750" / "Forest" / "loop"
    link.symlink_to("..")
    with pytest.raises(DatasetError) as err:
        make_mtil_task("EuroSAT", eurosat, SIZE)
    text = one_line(err)
    assert str(link) in text and "'..'" in text and str(eurosat / "eurosat" / "2750") in text
    assert "link to the folder" in text and "replace the link by a real copy" in text


def test_two_loop_links_fail_at_once_instead_of_hanging(eurosat):
    forest = eurosat / "eurosat" / "2750" / "Forest"
    (forest / "loop1").symlink_to("..")
    (forest / "loop2").symlink_to("..")
    script = (
        "import sys\nfrom clviz.data.mtil import DatasetError, make_mtil_task\n"
        f"try:\n    make_mtil_task('EuroSAT', {str(eurosat)!r}, {SIZE})\n"
        "except DatasetError as err:\n    print(err)\n    sys.exit(2)\n"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "loop1" in done.stdout or "loop2" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert time.monotonic() - start < 60  # the import is most of it; the scan takes ms
    start = time.monotonic()
    with pytest.raises(DatasetError):
        scan_dataset(eurosat / "eurosat", "EuroSAT")
    assert time.monotonic() - start < 2


def test_file_links_are_refused_as_duplicates_or_outside(dtd, tmp_path):
    images = dtd / "dtd" / "dtd" / "images" / "texture00"
    original = sorted(images.iterdir())[0]
    duplicate = images / "copy.jpg"
    duplicate.symlink_to(original)
    with pytest.raises(DatasetError) as err:
        make_mtil_task("DTD", dtd, SIZE)
    text = one_line(err)
    assert str(duplicate) in text and str(original) in text and "a duplicate" in text
    duplicate.unlink()
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(original.read_bytes())
    (images / "out.jpg").symlink_to(outside)
    with pytest.raises(DatasetError, match="outside the dataset folder") as err:
        make_mtil_task("DTD", dtd, SIZE)
    assert str(images / "out.jpg") in one_line(err) and str(outside) in one_line(err)
    (images / "out.jpg").unlink()
    (images / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    with pytest.raises(DatasetError, match="broken or looping link") as err:
        make_mtil_task("DTD", dtd, SIZE)
    assert str(images / "gone.jpg") in one_line(err)


def test_the_dataset_top_folder_may_be_a_link(tmp_path):
    big = make_fake_mtil(tmp_path / "big", ["DTD"], 2, 1)
    root = tmp_path / "data"
    root.mkdir()
    (root / "dtd").symlink_to(big / "dtd")  # data_root/dtd -> /mnt/big/dtd
    task = make_mtil_task("DTD", root, SIZE)
    assert task.train_images[0].shape == (3, SIZE, SIZE)
    assert dataset_fingerprint(root, "DTD") == dataset_fingerprint(big, "DTD")


def test_a_fifo_in_a_dataset_folder_is_refused(eurosat):
    fifo = eurosat / "eurosat" / "2750" / "Forest" / "Forest_99.jpg"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match="not a regular file") as err:
        make_mtil_task("EuroSAT", eurosat, SIZE)
    assert str(fifo) in one_line(err)


def test_an_image_listed_twice_or_in_both_splits_is_refused(dtd):
    labels = dtd / "dtd" / "dtd" / "labels"
    train = (labels / "train1.txt").read_text()
    first = train.splitlines()[0]
    (labels / "train1.txt").write_text(train + first + "\n")
    with pytest.raises(DatasetError, match="listed twice in the train split") as err:
        make_mtil_task("DTD", dtd, SIZE)
    assert first.split("/")[1] in one_line(err)
    test_line = (labels / "test1.txt").read_text().splitlines()[0]
    (labels / "train1.txt").write_text(train + test_line + "\n")
    with pytest.raises(DatasetError, match="in both the train and the test split") as err:
        make_mtil_task("DTD", dtd, SIZE)
    assert test_line.split("/")[1] in one_line(err)
    test = (labels / "test1.txt").read_text()
    (labels / "test1.txt").write_text(test + test_line + "\n")
    with pytest.raises(DatasetError, match="listed twice in the test split"):  # one split alone
        load_split("DTD", dtd, train=False)


# --------------------------------------------------------------------------- 2. image modes
def _frombytes(mode: str, values: list[int], dtype: str) -> Image.Image:
    return Image.frombytes(mode, (len(values), 1), np.array(values, dtype=dtype).tobytes())


def _palette_with_transparency() -> Image.Image:
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([0, 1])
    image.info["transparency"] = b"\x00\xff" + b"\xff" * 254  # bytes: PIL warns on RGB
    return image


MODES = {
    "I;16": (_frombytes("I;16", [0, 257, 1000, 65535], "<u2"), [0, 1, 4, 255]),
    "I;16B": (_frombytes("I;16B", [0, 257, 1000, 65535], ">u2"), [0, 1, 4, 255]),
    "I;16L": (_frombytes("I;16L", [0, 257, 1000, 65535], "<u2"), [0, 1, 4, 255]),
    "I 16-bit": (Image.fromarray(np.array([[0, 32896, 65535, -5]], np.int32)), [0, 128, 255, 0]),
    "I wide": (Image.fromarray(np.array([[0, 2000, 100000, 510000]], np.int32)), [0, 1, 50, 255]),
    "F 0..1": (Image.fromarray(np.array([[0.0, 0.2, 1.0, -0.1]], np.float32)), [0, 51, 255, 0]),
    "F wide": (Image.fromarray(np.array([[-3, 12.4, 300, 100]], np.float32)), [0, 12, 255, 100]),
    "1": (Image.frombytes("1", (2, 1), bytes([0b01000000])), [0, 255]),
    "L": (Image.fromarray(np.array([[7, 200]], np.uint8)), [7, 200]),
    "LA": (Image.fromarray(np.array([[[10, 0], [90, 255]]], np.uint8), "LA"), [10, 90]),
    "P transparency": (_palette_with_transparency(), [[10, 20, 30], [200, 100, 50]]),
    "RGBA": (Image.fromarray(np.array([[[1, 2, 3, 0]]], np.uint8), "RGBA"), [[1, 2, 3]]),
    "CMYK": (
        Image.frombytes(
            "CMYK", (4, 1), bytes([0, 0, 0, 0, 255, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 255])
        ),
        [[255, 255, 255], [0, 255, 255], [255, 155, 255], [0, 0, 0]],
    ),
    "YCbCr": (Image.frombytes("YCbCr", (2, 1), bytes([200, 128, 128, 0, 128, 128])), [200, 0]),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_image_mode_converts_with_the_right_scale(mode):
    image, expected = MODES[mode]
    expected = np.array(expected, np.uint8)
    if expected.ndim == 1:  # a grey: three equal channels
        expected = np.repeat(expected[:, None], 3, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Palette images with Transparency" warning
        rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(rgb)[0], expected)


def test_a_16bit_png_is_read_scaled_not_white(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((6, 9), 32896, np.uint16)).save(path)  # 32896 / 257 = 128
    image = FileReader([path])(0)
    assert image.mode in ("I;16", "I")
    assert np.asarray(image.convert("RGB")).max() == 255  # what PIL alone gives: white
    assert (clip_preprocess(image, 6) == 128).all()
    assert (LazyImages(FileReader([path]), 4)[0] == 128).all()


class _NamedReader:
    """A reader that names its images and returns one in a mode PIL cannot bring to RGB."""

    paths = ("/data/odd/la.tif",)

    def __call__(self, i: int) -> Image.Image:
        return Image.new("La", (2, 2))

    def __len__(self) -> int:
        return 1


def test_a_mode_pil_cannot_convert_is_one_line_naming_the_file():
    with pytest.raises(ImageReadError) as err:
        LazyImages(_NamedReader(), 4)[0]
    assert "/data/odd/la.tif" in one_line(err) and "'La'" in one_line(err)


# --------------------------------------------------------------------------- 3. bombs
def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A 1x1 PNG whose header claims ``width x height`` (a tiny decompression-bomb stand-in)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def pil_limit(monkeypatch):
    """Restore PIL's limit and $CLVIZ_MAX_IMAGE_PIXELS after the test."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    monkeypatch.delenv(PIXELS_VAR, raising=False)
    return monkeypatch


def test_a_decompression_bomb_is_one_line_naming_file_pixels_and_the_variable(tmp_path, pil_limit):
    bomb = _png_claiming(tmp_path / "bomb.png", 20000, 20000)
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError) as err:
        FileReader([bomb])(0)
    text = one_line(err)
    assert str(bomb) in text and "400000000 pixels" in text and str(limit) in text
    assert f"{PIXELS_VAR}=400000000" in text


@pytest.mark.parametrize("limit", ["100", "200", "279"])  # above 2x, between 1x and 2x, just
def test_the_pixel_limit_variable_is_exact_and_quiet(tmp_path, pil_limit, limit):
    path = tmp_path / "small.png"
    Image.new("RGB", (20, 14)).save(path)  # 280 pixels
    pil_limit.setenv(PIXELS_VAR, limit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageReadError) as err:
            FileReader([path])(0)
    assert "280 pixels" in one_line(err) and f"limit of {limit}" in one_line(err)
    assert not caught and int(limit) == Image.MAX_IMAGE_PIXELS
    pil_limit.setenv(PIXELS_VAR, "280")
    assert FileReader([path])(0).size == (20, 14)


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5", ""])
def test_a_bad_pixel_limit_is_a_clear_error(tmp_path, eurosat, pil_limit, value):
    path = tmp_path / "small.png"
    Image.new("RGB", (2, 2)).save(path)
    pil_limit.setenv(PIXELS_VAR, value)
    with pytest.raises(ValueError, match=f"{PIXELS_VAR} must be a positive whole number"):
        FileReader([path])(0)
    with pytest.raises(ValueError, match=PIXELS_VAR):  # in the main process, before workers
        make_mtil_task("EuroSAT", eurosat, SIZE)


# --------------------------------------------------------------------------- 4. workers
class _LazyTask:
    """The two methods of a TaskFormat that feed() uses, over one lazy store."""

    def __init__(self, images: LazyImages):
        self._images = images

    def images(self, split: str) -> LazyImages:
        return self._images

    def batch(self, split: str, index):
        return self._images[index]


def test_a_damaged_image_in_a_worker_is_one_line_naming_the_file(eurosat, monkeypatch):
    paths = sorted((eurosat / "eurosat" / "2750").rglob("*.jpg"))[:4]
    paths[3].write_bytes(b"not a jpeg")
    task = _LazyTask(LazyImages(FileReader(paths), SIZE, workers=0))
    monkeypatch.setenv("CLVIZ_WORKERS", "0")
    with pytest.raises(ImageReadError) as err:
        list(feed(task, "train", [slice(0, 2), slice(2, 4)]))
    in_process = one_line(err)
    monkeypatch.setenv("CLVIZ_WORKERS", "1")
    children = set(multiprocessing.active_children())
    with pytest.raises(ImageReadError) as err:
        list(feed(task, "train", [slice(0, 2), slice(2, 4)]))
    text = one_line(err)
    assert str(paths[3]) in text and "Original Traceback" not in text and "Caught" not in text
    assert text == in_process
    assert err.value.__cause__ is None and err.value.__context__ is None
    assert set(multiprocessing.active_children()) <= children  # the worker stopped already


# --------------------------------------------------------------------------- 5. fingerprint
def test_the_fingerprint_changes_only_when_the_files_do(eurosat):
    before = dataset_fingerprint(eurosat, "EuroSAT")
    victim = sorted((eurosat / "eurosat" / "2750").rglob("*.jpg"))[0]
    stat, data = victim.stat(), victim.read_bytes()
    for path in (eurosat / "eurosat").rglob("*.jpg"):
        path.read_bytes()  # reading changes nothing
    assert dataset_fingerprint(eurosat, "EuroSAT") == before
    victim.write_bytes(data + b"\0")  # replaced: another size
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dataset_fingerprint(eurosat, "EuroSAT") != before
    victim.write_bytes(data)  # same size, another mtime
    assert dataset_fingerprint(eurosat, "EuroSAT") != before
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # back as it was
    assert dataset_fingerprint(eurosat, "EuroSAT") == before
    (victim.parent / "loop").symlink_to("..")  # the fingerprint's walk is the loader's scan
    with pytest.raises(DatasetError, match="loop"):
        dataset_fingerprint(eurosat, "EuroSAT")


def test_stream_fingerprint_and_a_missing_dataset(tmp_path):
    root = make_fake_mtil(tmp_path, ["EuroSAT", "DTD"], 2, 1)
    prints = stream_fingerprint("mtil:EuroSAT,DTD", root)
    assert list(prints) == ["EuroSAT", "DTD"]
    assert prints["DTD"] == dataset_fingerprint(root, "DTD") != prints["EuroSAT"]
    assert all(len(p) == 64 for p in prints.values())
    with pytest.raises(DatasetError) as loader:
        make_mtil_task("MNIST", root, SIZE)
    with pytest.raises(DatasetError) as err:
        stream_fingerprint("mtil:EuroSAT,MNIST", root)
    assert str(err.value) == str(loader.value) and str(root / "MNIST") in str(err.value)


def test_the_fingerprint_of_2000_files_is_quick(tmp_path):
    root = make_fake_mtil(tmp_path, ["EuroSAT"], 150, 50)  # 10 classes x 200 images
    start = time.perf_counter()
    dataset_fingerprint(root, "EuroSAT")
    assert time.perf_counter() - start < 2.0
