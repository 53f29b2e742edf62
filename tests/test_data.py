"""CIFAR loading (against archives built here in the official format), augmentation, noise."""
import dataclasses
import functools
import http.server
import os
import pickle
import tarfile
import threading

import numpy as np
import pytest

from minran import data as D
from minran.data import cifar


def write_official_cifar10(root, per_batch=20, seed=0, tar=False):
    """Batches as the official archive holds them: Python-2-style pickles with bytes keys,
    `data` uint8 (N, 3072) channel-major, `labels` a list."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images = rng.integers(0, 256, (6 * per_batch, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 6 * per_batch)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    for i, name in enumerate(names):
        s = slice(i * per_batch, (i + 1) * per_batch)
        batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels[s]],
                 b"data": images[s].reshape(per_batch, 3072),
                 b"filenames": [f"img_{j}.png".encode() for j in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"num_cases_per_batch": per_batch, b"num_vis": 3072,
            b"label_names": [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer",
                                                  "dog", "frog", "horse", "ship", "truck")]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    archive = None
    if tar:
        archive = root / "cifar-10-python.tar.gz"
        with tarfile.open(archive, "w:gz") as t:
            t.add(folder, arcname="cifar-10-batches-py")
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    return images, labels, archive


@pytest.fixture
def fake_source(monkeypatch):
    """Point the cifar10 source at an archive of ours (its MD5 and, for downloads, a URL)."""
    def use(md5, url="http://127.0.0.1:9/none"):
        monkeypatch.setitem(cifar.SOURCES, "cifar10",
                            dataclasses.replace(cifar.SOURCES["cifar10"], md5=md5, url=url))
    return use


def test_load_from_folder_in_file_order(tmp_path):
    images, labels, _ = write_official_cifar10(tmp_path)
    d = D.load_cifar10(tmp_path, download=False)
    np.testing.assert_array_equal(d.train_images, images[:100])
    np.testing.assert_array_equal(d.test_images, images[100:])
    np.testing.assert_array_equal(d.train_labels, labels[:100])
    assert d.train_images.dtype == np.uint8 and d.train_labels.dtype == np.int64
    assert d.train_images.shape == (100, 3, 32, 32) and d.classes[0] == "airplane"


def test_rows_are_channel_major(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_official_cifar10(tmp_path, per_batch=1)
    row = np.arange(3072) % 256
    batch = pickle.loads((folder / "data_batch_1").read_bytes())
    batch[b"data"] = row.astype(np.uint8)[None]
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    first = D.load_cifar10(tmp_path, download=False).train_images[0]
    # The first 1024 bytes are the red plane, row by row.
    np.testing.assert_array_equal(first[0, 0, :5], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(first[1, 0, 0], 1024 % 256)
    np.testing.assert_array_equal(first[0, 1, 0], 32)


def test_archive_is_verified_and_extracted(tmp_path, fake_source):
    images, _, archive = write_official_cifar10(tmp_path, tar=True)
    fake_source(D.md5sum(archive))
    d = D.load_cifar10(tmp_path, download=False)
    np.testing.assert_array_equal(d.test_images, images[100:])
    assert (tmp_path / "cifar-10-batches-py" / "test_batch").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".extract")]


def test_md5_mismatch_is_refused_and_nothing_extracted(tmp_path, fake_source):
    write_official_cifar10(tmp_path, tar=True)
    fake_source("0" * 32)
    with pytest.raises(D.DataError, match="MD5 .* does not match the published 0000"):
        D.load_cifar10(tmp_path, download=False)
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_missing_file_names_it(tmp_path):
    write_official_cifar10(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(D.DataError, match="data_batch_3 is missing"):
        D.load_cifar10(tmp_path, download=False)


def test_nothing_there_and_no_download_says_how_to_place_it(tmp_path):
    with pytest.raises(D.DataError, match="Place the archive there by hand"):
        D.load_cifar10(tmp_path, download=False)


def _damage(tmp_path, name, change):
    write_official_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / name
    path.write_bytes(change(path.read_bytes()))
    return path


def _batch_with(**changes):
    def change(data):
        batch = pickle.loads(data, encoding="bytes")
        batch.update({k.encode(): v(batch) for k, v in changes.items()})
        return pickle.dumps(batch, protocol=2)
    return change


@pytest.mark.parametrize("name, change, what", [
    ("data_batch_2", lambda b: b[:len(b) // 2], "does not unpickle"),                 # truncated
    ("test_batch", lambda b: b"\x00" + b[1:], "does not unpickle"),                   # header byte
    ("data_batch_4", lambda b: b + b"\x00", "bytes after the end of its pickle"),
    ("batches.meta", lambda b: b[:-3], "does not unpickle"),
    ("data_batch_1", _batch_with(labels=lambda b: b[b"labels"][:-1] + [10]),
     r"1 labels lie outside the 10 classes 0..9 \(the first, image 19, has label 10\)"),
    ("data_batch_3", _batch_with(data=lambda b: b[b"data"][:-1], labels=lambda b: b[b"labels"][:-1]),
     "holds 19 images, and batches.meta says each batch holds 20"),
    ("data_batch_5", _batch_with(labels=lambda b: b[b"labels"][:-1]), r"\(19,\) int64 labels for 20 images"),
    ("test_batch", _batch_with(data=lambda b: b[b"data"].astype(np.int16)), r"data is int16 \(20, 3072\)"),
])
def test_damaged_batch_files_are_named(tmp_path, name, change, what):
    path = _damage(tmp_path, name, change)
    with pytest.raises(D.DataError, match=what) as error:
        D.load_cifar10(tmp_path, download=False)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "delete the cifar-10-batches-py/ folder" in message


def test_official_checksums_where_the_file_claims_to_be_official(tmp_path, monkeypatch):
    """A file of the official size must have the official MD5; a file of another size (a
    rebuild, like the JPEG one CI uses) is checked by its structure alone."""
    write_official_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    official = dict(cifar.SOURCES["cifar10"].official_files)
    official["data_batch_1"] = (path.stat().st_size, D.md5sum(path))  # pretend ours is official
    monkeypatch.setitem(cifar.SOURCES, "cifar10",
                        dataclasses.replace(cifar.SOURCES["cifar10"], official_files=official))
    D.load_cifar10(tmp_path, download=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # one pixel, same size: the structure is intact
    path.write_bytes(bytes(data))
    with pytest.raises(D.DataError, match=f"{path}: it has the size of the official file but not its MD5"):
        D.load_cifar10(tmp_path, download=False)
    official["data_batch_1"] = (path.stat().st_size + 1, "0" * 32)  # now a rebuild: not official
    assert len(D.load_cifar10(tmp_path, download=False).train_images) == 100


def test_the_official_file_table():
    official = cifar.SOURCES["cifar10"].official_files
    assert sorted(official) == sorted(["batches.meta", "test_batch"] + [f"data_batch_{i}" for i in range(1, 6)])
    assert official["data_batch_1"] == (31035704, "c99cafc152244af753f735de768cd75f")


@pytest.fixture
def local_server(tmp_path):
    """Serve tmp_path/served over HTTP on the loopback interface only."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_verifies_and_extracts(tmp_path, local_server, fake_source):
    served, base = local_server
    images, _, archive = write_official_cifar10(served, tar=True)
    fake_source(D.md5sum(archive), f"{base}/cifar-10-python.tar.gz")
    cache = tmp_path / "cache"
    d = D.load_cifar10(cache, progress=False)
    np.testing.assert_array_equal(d.train_images, images[:100])
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


def test_corrupt_download_leaves_nothing(tmp_path, local_server, fake_source):
    served, base = local_server
    write_official_cifar10(served, tar=True)
    fake_source("f" * 32, f"{base}/cifar-10-python.tar.gz")
    cache = tmp_path / "cache"
    with pytest.raises(D.DataError, match="MD5"):
        D.load_cifar10(cache, progress=False)
    assert not cache.exists()   # the folder was made for the download: gone with it


def test_failed_download_leaves_nothing_and_explains(tmp_path, local_server, fake_source):
    _, base = local_server
    fake_source("f" * 32, f"{base}/no-such-file.tar.gz")
    with pytest.raises(D.DataError, match=r"could not be downloaded \(HTTPError.*Place the archive"):
        D.load_cifar10(tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists()


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MINRAN_DATA", str(tmp_path))
    write_official_cifar10(tmp_path)
    assert D.default_root() == tmp_path
    assert len(D.load_cifar10(download=False).train_images) == 100


def test_cifar100_layout(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", 30), ("test", 10)):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"fine_labels": list(rng.integers(0, 100, n)), b"coarse_labels": [0] * n}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "meta").write_bytes(pickle.dumps(
        {b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, protocol=2))
    d = D.load_cifar100(tmp_path, download=False)
    assert d.train_images.shape == (30, 3, 32, 32) and len(d.classes) == 100
    # The labels are the 100 fine classes the class names describe, not the 20 coarse ones.
    test = pickle.loads((folder / "test").read_bytes())
    assert d.test_labels.tolist() == [int(v) for v in test[b"fine_labels"]]
    assert len(set(d.train_labels.tolist())) > 20


# ---- augmentation ----------------------------------------------------------------------
def test_augment_mirrors_about_half_of_the_images():
    """Without a crop (pad 0) each image comes back either as it was or mirrored left to
    right, and over 64 images both happen (the chance that they do not is 2^-63)."""
    batch = np.random.default_rng(0).integers(0, 256, (64, 3, 4, 5)).astype(np.float32)
    out = D.augment(batch, np.random.default_rng(1), pad=0)
    same = (out == batch).all(axis=(1, 2, 3))
    mirrored = (out == batch[..., ::-1]).all(axis=(1, 2, 3))
    assert (same | mirrored).all() and same.any() and mirrored.any()
    assert 16 < mirrored.sum() < 48


def test_random_crop_is_a_window_of_the_padded_image():
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    out = D.random_crop(batch, np.random.default_rng(1), pad=2)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    padded = np.pad(batch, ((0, 0), (0, 0), (2, 2), (2, 2)))
    offsets = set()
    for n in range(16):
        hits = [(i, j) for i in range(5) for j in range(5)
                if np.array_equal(out[n], padded[n, :, i:i + 8, j:j + 8])]
        assert hits, f"crop {n} is not a window of its padded image"
        offsets.add(hits[0])
    assert len(offsets) > 3  # the offsets really are random


def test_random_crop_reaches_every_offset_from_0_to_2_pad():
    """The paper's crop can shift an image by up to `pad` pixels either way: 2 * pad + 1
    offsets per axis, the last one (all padding on the left or top) included."""
    pad, n = 2, 400
    image = np.arange(1, 1 + 3 * 6 * 6, dtype=np.float32).reshape(1, 3, 6, 6)  # no zeros: unique windows
    out = D.random_crop(np.repeat(image, n, axis=0), np.random.default_rng(0), pad=pad)
    padded = np.pad(image[0], ((0, 0), (pad, pad), (pad, pad)))
    where = {padded[:, i:i + 6, j:j + 6].tobytes(): (i, j)
             for i in range(2 * pad + 1) for j in range(2 * pad + 1)}
    offsets = [where[crop.tobytes()] for crop in out]
    assert {i for i, _ in offsets} == {j for _, j in offsets} == set(range(2 * pad + 1))


def test_random_flip_is_a_flip_of_half():
    batch = np.random.default_rng(0).standard_normal((200, 3, 4, 4))
    out = D.random_flip(batch, np.random.default_rng(2))
    flipped = [np.array_equal(o, b[..., ::-1]) for o, b in zip(out, batch)]
    kept = [np.array_equal(o, b) for o, b in zip(out, batch)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 60 < sum(flipped) < 140


def test_augment_is_seeded():
    batch = np.random.default_rng(0).standard_normal((8, 3, 32, 32))
    a = D.augment(batch, np.random.default_rng(5))
    b = D.augment(batch, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_normalize_per_channel_and_per_pixel():
    images = np.random.default_rng(0).integers(0, 256, (50, 3, 32, 32), dtype=np.uint8)
    mean, std = D.channel_stats(images)
    x = D.normalize(images, mean, std)
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1, rtol=1e-4)
    xp = D.normalize(images, D.pixel_mean(images))
    np.testing.assert_allclose(xp.mean(axis=0), 0, atol=1e-5)


# ---- label noise -----------------------------------------------------------------------
def test_label_noise_follows_the_transition_matrix():
    labels = np.repeat(np.arange(10), 2000)
    assert np.array_equal(D.corrupt_labels(labels, 0.0, 10, np.random.default_rng(0)), labels)
    assert (D.corrupt_labels(labels, 1.0, 10, np.random.default_rng(0)) != labels).all()
    noisy = D.corrupt_labels(labels, 0.3, 10, np.random.default_rng(0))
    assert abs((noisy != labels).mean() - 0.3) < 0.02
    # Off the diagonal every other class is equally likely: (1 - r) / 9 each.
    wrong = noisy[(labels == 4) & (noisy != labels)]
    counts = np.bincount(wrong, minlength=10)
    assert counts[4] == 0
    assert np.all(np.abs(counts[np.arange(10) != 4] / len(wrong) - 1 / 9) < 0.04)


# ---- batches ---------------------------------------------------------------------------
@pytest.mark.parametrize("prefetch", [False, True])
def test_batch_iterator_covers_each_image_once(prefetch):
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    it = D.BatchIterator(images, np.arange(10), 4, np.random.default_rng(0), prefetch=prefetch)
    batches = list(it)
    assert len(it) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    seen = np.concatenate([y for _, y in batches])
    assert sorted(seen) == list(range(10)) and list(seen) != list(range(10))
    for x, y in batches:
        np.testing.assert_array_equal(x.data.ravel(), y)


def test_prefetching_gives_the_same_batches():
    images = np.random.default_rng(0).standard_normal((20, 3, 8, 8)).astype(np.float32)
    kw = dict(batch_size=6, augment=True)
    a = [x.data for x, _ in D.BatchIterator(images, np.arange(20), rng=np.random.default_rng(3), prefetch=False, **kw)]
    b = [x.data for x, _ in D.BatchIterator(images, np.arange(20), rng=np.random.default_rng(3), prefetch=True, **kw)]
    assert len(a) == len(b) == 4  # zip alone would hide a lost batch
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


# ---- issue 21: a data folder is what it says, and a failed download leaves none behind ------
def test_a_data_folder_that_did_not_exist_is_not_left_behind(tmp_path, fake_source):
    fake_source("f" * 32)   # nothing listens there: the download fails at once
    root = tmp_path / "new" / "data"
    with pytest.raises(D.DataError, match="could not be downloaded"):
        D.load_cifar10(root, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_data_folder_that_is_a_file_is_named(tmp_path):
    a_file = tmp_path / "cifar"
    a_file.write_text("")
    with pytest.raises(D.DataError, match=f"{a_file}: a file, not a folder"):
        D.load_cifar10(a_file, download=False)
    assert a_file.read_text() == ""
