"""CIFAR-10 and CIFAR-100: download the official archive, verify it, parse its pickles.

Looks in the data folder for, in order: the extracted folder (`cifar-10-batches-py/`), the
archive (`cifar-10-python.tar.gz`), and only then downloads. Every write goes to a
temporary name first and is renamed when complete, so an interrupted download or
extraction never leaves a half-written file behind that a later run would trust.
"""
import hashlib
import os
import pathlib
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
import warnings
from dataclasses import dataclass, field

import numpy as np

ENV_VAR = "MINRAN_DATA"


@dataclass(frozen=True)
class Source:
    url: str
    archive: str
    md5: str
    folder: str
    train_files: tuple
    test_files: tuple
    label_key: bytes
    meta_file: str
    names_key: bytes


SOURCES = {
    "cifar10": Source(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        archive="cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
        label_key=b"labels", meta_file="batches.meta", names_key=b"label_names"),
    "cifar100": Source(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        archive="cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python", train_files=("train",), test_files=("test",),
        label_key=b"fine_labels", meta_file="meta", names_key=b"fine_label_names"),
}


@dataclass
class Dataset:
    """uint8 images (N, 3, 32, 32) in the files' order, int64 labels, and class names."""
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list = field(default_factory=list)


class DataError(RuntimeError):
    pass


def default_root():
    return pathlib.Path(os.environ.get(ENV_VAR) or pathlib.Path.home() / ".cache" / "minran")


def load_cifar10(root=None, download=True, progress=True):
    return load("cifar10", root, download, progress)


def load_cifar100(root=None, download=True, progress=True):
    return load("cifar100", root, download, progress)


def load(name, root=None, download=True, progress=True):
    source = SOURCES[name]
    root = pathlib.Path(root) if root is not None else default_root()
    folder = root / source.folder
    if not folder.is_dir():
        archive = root / source.archive
        if not archive.exists():
            if not download:
                raise DataError(_missing(source, root, "download=False"))
            _download(source, archive, progress)
        _extract(source, archive, root)
    return _read_folder(source, folder)


def _missing(source, root, why):
    return (f"{source.archive} is not in {root} and could not be downloaded ({why}). "
            f"Place the archive there by hand (from {source.url}, MD5 {source.md5}), or its "
            f"extracted folder as {root / source.folder}/, or point --data-dir / ${ENV_VAR} "
            f"at a folder that holds one of them.")


def md5sum(path, chunk=1 << 20):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(source, archive, progress):
    from tqdm import tqdm
    archive.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=source.archive + ".", suffix=".part", dir=archive.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, disable=not progress,
                      desc=f"downloading {source.archive}") as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
        _verify(source, partial)
        os.replace(partial, archive)  # atomic: the archive name only ever holds a whole file
    except DataError:
        _remove(partial)
        raise
    except (OSError, ValueError) as error:  # URLError, HTTPError and timeouts are OSErrors
        _remove(partial)
        raise DataError(_missing(source, archive.parent, f"{type(error).__name__}: {error}")) from error
    except BaseException:  # Ctrl-C: leave nothing half-written
        _remove(partial)
        raise


def _verify(source, path):
    got = md5sum(path)
    if got != source.md5:
        raise DataError(f"{source.archive}: MD5 {got} does not match the published "
                        f"{source.md5}; the file is damaged or not the official archive. "
                        f"Delete it and run again to download, or place the extracted "
                        f"{source.folder}/ folder in its directory by hand.")


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _extract(source, archive, root):
    _verify(source, archive)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(source.folder + "/")
                       and m.isfile() and ".." not in pathlib.PurePosixPath(m.name).parts]
            for member in members:
                tar.extract(member, staging)
        if not (staging / source.folder).is_dir():
            raise DataError(f"{archive} holds no {source.folder}/ folder")
        os.replace(staging / source.folder, root / source.folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpickle(path):
    if not path.exists():
        raise DataError(f"{path} is missing: the {path.parent.name}/ folder is incomplete. "
                        f"Delete the folder and run again, or put the missing file back.")
    with open(path, "rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core in the old pickles
        return pickle.load(f, encoding="bytes")  # the files are Python 2 pickles


def _read_batches(source, folder, files):
    images, labels = [], []
    for name in files:
        batch = _unpickle(folder / name)
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{folder / name}: data has shape {data.shape}, expected (N, 3072)")
        images.append(data.reshape(-1, 3, 32, 32))  # stored channel-major: RRR..GGG..BBB
        labels.append(np.asarray(batch[source.label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _read_folder(source, folder):
    train_images, train_labels = _read_batches(source, folder, source.train_files)
    test_images, test_labels = _read_batches(source, folder, source.test_files)
    meta = _unpickle(folder / source.meta_file)
    classes = [n.decode() if isinstance(n, bytes) else n for n in meta[source.names_key]]
    return Dataset(train_images, train_labels, test_images, test_labels, classes)
