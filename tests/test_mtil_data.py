"""Real MTIL loaders on fake folders built in each dataset's torchvision layout."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from clviz.core.config import RunConfig
from clviz.data import classnames as cn
from clviz.data.fake import make_fake_mtil
from clviz.data.lazy import LazyImages
from clviz.data.mtil import (
    DATASETS,
    MTIL_ORDER_I,
    MTIL_ORDER_II,
    DatasetError,
    get_mtil_stream,
    make_mtil_task,
    reference_split,
)
from clviz.data.streams import load_stream

SIZE = 24
RANDOM_SPLIT = ("Caltech101", "EuroSAT", "SUN397")  # no split of their own


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    """All 11 datasets, 2 train and 1 test image per class."""
    return make_fake_mtil(tmp_path_factory.mktemp("mtil"))


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_dataset_loads_from_its_fake_folder(fake_root, name):
    task = make_mtil_task(name, fake_root, image_size=SIZE)
    n = cn.NUM_CLASSES[name]
    assert task.num_classes == n and len(set(task.classnames)) == n
    assert task.templates == cn.TEMPLATES[name] and "{}" in task.templates[0]
    if name in RANDOM_SPLIT:  # one folder of 3 images per class, split 80 / 20 as ZSCL
        n_train, n_test = int(0.8 * 3 * n), 3 * n - int(0.8 * 3 * n)
    else:
        n_train, n_test = 2 * n, n
        assert torch.equal(task.train_labels.unique(), torch.arange(n))
        assert torch.equal(task.test_labels.unique(), torch.arange(n))
    assert len(task.train_labels) == n_train and len(task.test_labels) == n_test
    assert isinstance(task.train_images, LazyImages) and len(task.train_images) == n_train
    batch = task.train_images[torch.tensor([0, len(task.train_labels) - 1])]
    assert batch.shape == (2, 3, SIZE, SIZE) and batch.dtype == torch.uint8
    assert task.test_images[0:3].shape == (3, 3, SIZE, SIZE)
    assert task.test_images[0].shape == (3, SIZE, SIZE)


def test_standard_class_names(fake_root):
    caltech = make_mtil_task("Caltech101", fake_root, SIZE)
    assert caltech.classnames[:4] == ("off-center face", "centered face", "leopard", "motorbike")
    eurosat = make_mtil_task("EuroSAT", fake_root, SIZE)
    assert eurosat.classnames[0] == "annual crop land" and eurosat.classnames[-1] == "lake or sea"
    assert make_mtil_task("Flowers", fake_root, SIZE).classnames[-1] == "blackberry lily"
    pets = make_mtil_task("OxfordPet", fake_root, SIZE).classnames
    assert pets[0] == "Cat breed 00" and pets[1] == "dog breed 01"  # case kept, as CLIP's
    assert "scene 000 indoor" in make_mtil_task("SUN397", fake_root, SIZE).classnames
    assert make_mtil_task("MNIST", fake_root, SIZE).classnames == tuple("0123456789")


def test_images_are_deterministic_and_match_their_label(fake_root):
    task = make_mtil_task("Food", fake_root, SIZE)
    idx = torch.tensor([5, 0, 17])
    a, b = task.train_images[idx], task.train_images[idx]
    assert torch.equal(a, b)
    assert torch.equal(a[1], task.train_images[0])
    # two images of one class share their colour; another class differs
    same = task.train_images[torch.nonzero(task.train_labels == 3).flatten()].float()
    other = task.train_images[torch.nonzero(task.train_labels == 60).flatten()].float()
    assert (same[0] - same[1]).abs().mean() < (same[0] - other[0]).abs().mean()


def test_lazy_store_indexing():
    from clviz.data.lazy import ArrayReader

    arr = np.random.default_rng(0).integers(0, 255, (10, 30, 40, 3), dtype=np.uint8)
    store = LazyImages(ArrayReader(arr), 16)
    assert store.shape == (10, 3, 16, 16) and len(store) == 10
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[2, 7]] = True
    assert torch.equal(store[mask], store[[2, 7]])
    assert torch.equal(store.take([7, 2])[0], store[7])
    assert torch.equal(store[-1], store[9])
    assert LazyImages(ArrayReader(arr), 16, workers=0)[:].equal(store.materialize())
    with pytest.raises(IndexError, match="out of range"):
        store[torch.tensor([10])]


def test_orders_and_few_shot(fake_root, tmp_path):
    order_i = get_mtil_stream("mtil", fake_root, SIZE)
    order_ii = get_mtil_stream("mtil-ii", fake_root, SIZE)
    assert tuple(t.name for t in order_i) == MTIL_ORDER_I
    assert tuple(t.name for t in order_ii) == MTIL_ORDER_II and set(MTIL_ORDER_I) == set(
        MTIL_ORDER_II
    )
    assert order_ii[0] is order_i[9]  # the same cached task, whichever order

    rich = make_fake_mtil(tmp_path, ["EuroSAT", "MNIST"], train_per_class=8, test_per_class=2)
    full = make_mtil_task("MNIST", rich, SIZE)
    few = make_mtil_task("MNIST", rich, SIZE, few_shot=5, seed=0)
    assert torch.equal(torch.bincount(few.train_labels), torch.full((10,), 5))
    assert torch.equal(few.test_labels, full.test_labels)  # the test split stays complete
    again = make_mtil_task("MNIST", rich, SIZE, few_shot=5, seed=0)
    other = make_mtil_task("MNIST", rich, SIZE, few_shot=5, seed=1)
    assert torch.equal(few.train_images[:], again.train_images[:])
    assert not np.array_equal(few.train_images.indices, other.train_images.indices)
    eurosat = make_mtil_task("EuroSAT", rich, SIZE, few_shot=5)
    assert torch.equal(torch.bincount(eurosat.train_labels), torch.full((10,), 5))
    # ZSCL's split: random_split(ratio=0.8) of the 100 images with a generator seeded 42
    assert len(make_mtil_task("EuroSAT", rich, SIZE).test_labels) == 100 - int(0.8 * 100)


def test_reference_split_is_zscls_random_split():
    train, test = torch.utils.data.random_split(
        range(37), [int(0.8 * 37), 37 - int(0.8 * 37)], generator=torch.Generator().manual_seed(42)
    )
    assert reference_split(37, train=True).tolist() == list(train.indices)
    assert reference_split(37, train=False).tolist() == list(test.indices)


def test_engine_stream_resolution(fake_root):
    config = RunConfig("finetune", stream="mtil-fewshot", data_root=str(fake_root), image_size=SIZE)
    tasks = load_stream(config)
    assert len(tasks) == 11 and tasks[0].name == "Aircraft"
    assert tasks[0].train_images.shape[-1] == SIZE


def test_missing_data_root_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv("CLVIZ_DATA", raising=False)
    with pytest.raises(DatasetError, match="--data-root"):
        make_mtil_task("MNIST")
    monkeypatch.setenv("CLVIZ_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="does not exist"):
        make_mtil_task("MNIST")


@pytest.mark.parametrize("name", ["DTD", "StanfordCars", "CIFAR100"])
def test_missing_dataset_names_dataset_path_and_layout(tmp_path, name):
    with pytest.raises(DatasetError) as err:
        make_mtil_task(name, tmp_path, SIZE)
    message = str(err.value)
    spec = DATASETS[name]
    assert repr(name) in message and str(tmp_path / spec.folder) in message
    assert spec.layout in message and spec.torchvision in message


def test_malformed_folder_is_reported(tmp_path):
    make_fake_mtil(tmp_path, ["EuroSAT", "SUN397"])
    shutil.rmtree(tmp_path / "eurosat" / "2750" / "Forest")  # a class folder is missing
    with pytest.raises(DatasetError, match="found 9 classes, expected 10"):
        make_mtil_task("EuroSAT", tmp_path, SIZE)
    (tmp_path / "SUN397" / "ClassName.txt").write_text("/s/scene_000\n")  # truncated class list
    with pytest.raises(DatasetError, match="SUN397"):
        make_mtil_task("SUN397", tmp_path, SIZE)
