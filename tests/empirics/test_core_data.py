"""Datasets: embedded sets, CIFAR-10 / MNIST loaders round-trip, restricted unpickler refuses."""

import gzip
import pickle

import numpy as np
import pytest

from empirics.data import (ArrayDataset, digits, lfw_faces, load_cifar10, load_mnist, mnist1d,
                           synthetic_mixture)


def test_embedded_sets_shapes_and_ranges():
    for ds, shape, k in ((digits(), (1, 8, 8), 10), (lfw_faces(), (1, 25, 25), 2)):
        assert ds.input_shape == shape and ds.num_classes == k
        for part in (ds.train, ds.test):
            assert 0.0 <= float(part.x.min()) and float(part.x.max()) <= 1.0
    d1, d2 = digits(seed=3), digits(seed=3)
    assert np.array_equal(d1.test.x.numpy(), d2.test.x.numpy())


def test_mnist1d_restores_global_numpy_rng():
    np.random.seed(1234)
    expect = np.random.get_state()[1].copy()
    ds = mnist1d(num_samples=200, seed=5)
    assert np.array_equal(np.random.get_state()[1], expect)
    assert ds.input_shape == (40,) and float(ds.train.x.min()) >= 0 and float(ds.train.x.max()) <= 1


def test_synthetic_mixture_exposes_truth():
    ds = synthetic_mixture(200, 50, d=4, k=2, seed=1)
    gmm = ds.meta["gmm"]
    assert gmm.dim == 4 and ds.num_classes == 2 and len(ds.test) == 50
    # labels are the components: the class-conditional means match the component means
    x, y = ds.train.x.numpy(), ds.train.y.numpy()
    for c in range(2):
        # 200 samples in 4 dims, unit-scale covariances: sample means within ~5 s.e. (0.4)
        assert np.abs(x[y == c].mean(0) - gmm.means[c]).max() < 0.6


def _write_cifar(root, n=7, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": [b"a"] * n},
                        fh, protocol=2)
        batches[name] = (data, labels)
    return batches


def test_cifar_round_trip(tmp_path):
    b = _write_cifar(tmp_path)
    ds = load_cifar10(tmp_path)
    assert ds.input_shape == (3, 32, 32) and len(ds.train) == 35 and len(ds.test) == 7
    np.testing.assert_array_equal(np.rint(ds.train.x[:7].numpy() * 255).astype(np.uint8),
                                  b["data_batch_1"][0].reshape(7, 3, 32, 32))
    assert ds.test.y.tolist() == b["test_batch"][1]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling would create the marker file
        return (open, (self.marker, "w"))


def test_cifar_refuses_foreign_global_without_executing(tmp_path):
    _write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": _Evil(str(marker)), b"labels": []}, fh, protocol=2)
    with pytest.raises(ValueError, match="refusing to unpickle global (io|builtins).open"):
        load_cifar10(tmp_path)
    assert not marker.exists()


class _Huge:
    """Pickles as a call of an *allowed* numpy constructor with a shape no CIFAR batch has."""

    def __init__(self, how):
        self.how = how

    def __reduce__(self):
        if self.how == "ndarray":
            return np.ndarray, ((10 ** 8, 10 ** 8),)
        from numpy._core.multiarray import _reconstruct
        return _reconstruct, (np.ndarray, (10 ** 8, 10 ** 8), b"b")


@pytest.mark.parametrize("how", ["ndarray", "reconstruct"])
def test_cifar_refuses_huge_shapes_before_allocating(tmp_path, how):
    _write_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "wb") as fh:
        pickle.dump({b"data": _Huge(how), b"labels": []}, fh, protocol=2)
    with pytest.raises(ValueError, match="not that of a CIFAR-10 batch"):
        load_cifar10(tmp_path)


def _idx(arr, code):
    hdr = bytes([0, 0, code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return hdr + arr.tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 6), ("t10k", 4)):
        arrays[split] = (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8))
        for kind, arr, code in (("images-idx3", arrays[split][0], 8), ("labels-idx1", arrays[split][1], 8)):
            name = f"{split}-{kind}-ubyte"
            raw = _idx(arr, code)
            if gz:
                with gzip.open(tmp_path / (name + ".gz"), "wb") as fh:
                    fh.write(raw)
            else:
                (tmp_path / name).write_bytes(raw)
    ds = load_mnist(tmp_path)
    assert ds.input_shape == (1, 28, 28)
    np.testing.assert_array_equal(np.rint(ds.test.x.numpy()[:, 0] * 255).astype(np.uint8), arrays["t10k"][0])
    assert ds.train.y.tolist() == arrays["train"][1].tolist()


def test_loader_bad_input(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        load_cifar10(tmp_path)
    with pytest.raises(ValueError, match="train-images"):
        load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3 + b"xx")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big"))
    with pytest.raises(ValueError, match="data bytes"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ArrayDataset(np.full((2, 3), 2.0), [0, 1], unit_range=True)
    with pytest.raises(ValueError, match="match x"):
        ArrayDataset(np.zeros((2, 3)), [0, 1, 1])


def test_train_cli_on_local_mnist_files(tmp_path):
    """`invlimits train --dataset mnist --data-root DIR` trains the `mnist` preset on IDX files."""
    import json

    from empirics.cli import main

    rng = np.random.default_rng(1)
    for split, n in (("train", 40), ("t10k", 20)):
        (tmp_path / f"{split}-images-idx3-ubyte").write_bytes(
            _idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), 8))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(_idx((np.arange(n) % 10).astype(np.uint8), 8))
    out = tmp_path / "out"
    rc = main(["train", "--dataset", "mnist", "--data-root", str(tmp_path), "--epochs", "1",
               "--defense", "noise:sigma=0.1", "--out", str(out), "--device", "cpu"])
    assert rc in (0, 1)  # random pixels: the "above chance" check may fail, the pipeline must not
    res = json.loads((out / "results.json").read_text())
    assert res["train"]["preset"] == "mnist" and (out / "checkpoint.pt").exists()
    assert len(res["train"]["history"]) == 1


@pytest.mark.parametrize("name", ["digits", "lfw", "mnist1d", "synthetic-mixture"])
def test_registry_input_shape_is_the_loaded_one(name):
    """The README's "input shape" column (the registry's ``input_shape``) is what the loader yields."""
    from empirics.registry import DATASETS, load_dataset
    ds = load_dataset(name, seed=0)
    assert tuple(ds.input_shape) == DATASETS[name].input_shape
    assert tuple(ds.train.x.shape[1:]) == DATASETS[name].input_shape
