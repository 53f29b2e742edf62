"""CIFAR-10 and CIFAR-100: download the official archive, verify it, parse its pickles.

Looks in the data folder for, in order: the extracted folder (`cifar-10-batches-py/`), the
archive (`cifar-10-python.tar.gz`), and only then downloads. Every write goes to a
temporary name first and is renamed when complete, so an interrupted download or
extraction never leaves a half-written file behind that a later run would trust; a data
folder created for a download that then fails is removed again.

What is verified, and why not more:
- the archive: its published MD5, before anything is extracted from it;
- each extracted file, every time it is read: that it unpickles completely (a truncated
  file or a changed byte in its pickle structure fails here), holds uint8 rows of 3072
  pixels with one label per row, every label a class of the dataset, as many rows as
  `batches.meta` says a batch holds, and no bytes after the pickle's end;
- each extracted file's official MD5, when the file has the official file's size
  (CIFAR-10, whose sizes are published with the archive's listing). A file of that size
  claims to be the official one, so a mismatch is damage (a flipped pixel, say) and an
  error. A file of another size is not the official file: CI rebuilds CIFAR-10 from JPEG
  copies (../shared/tools/make_cifar10.py) in the official layout but with other pixels and
  file names, and such a rebuild, well formed, is accepted on its structure alone. A pixel
  changed inside such a rebuilt file cannot be told from a real pixel, and is not detected.
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

from ..run_folder import missing_folders, remove_empty

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
    # name -> (size in bytes, MD5) of the files in the official archive, where known
    official_files: dict = field(default_factory=dict)


SOURCES = {
    "cifar10": Source(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        archive="cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_files=("test_batch",),
        label_key=b"labels", meta_file="batches.meta", names_key=b"label_names",
        official_files={
            "data_batch_1": (31035704, "c99cafc152244af753f735de768cd75f"),
            "data_batch_2": (31035320, "d4bba439e000b95fd0a9bffe97cbabec"),
            "data_batch_3": (31035999, "54ebc095f3ab1f0389bbae665268c751"),
            "data_batch_4": (31035696, "634d18415352ddfa80567beed471001a"),
            "data_batch_5": (31035623, "482c414d41f54cd18b22e5b47cb7c3cb"),
            "test_batch": (31035526, "40351d587109b95175f43aff81a1287e"),
            "batches.meta": (158, "5ff9c542aee3614f3951f8cda6e48888")}),
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
    """Data that is missing or damaged; the message names the file and the fix."""


def default_root():
    return pathlib.Path(os.environ.get(ENV_VAR) or pathlib.Path.home() / ".cache" / "minran")


def load_cifar10(root=None, download=True, progress=True):
    return load("cifar10", root, download, progress)


def load_cifar100(root=None, download=True, progress=True):
    return load("cifar100", root, download, progress)


def load(name, root=None, download=True, progress=True):
    source = SOURCES[name]
    root = pathlib.Path(root) if root is not None else default_root()
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: a file, not a folder; give --data-dir (or ${ENV_VAR}) the "
                        f"folder that holds (or is to receive) {source.archive} or its "
                        f"{source.folder}/ folder")
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
    """Download into the data folder, creating it; a folder created here is removed again
    when the download fails."""
    created = missing_folders(archive.parent)
    try:
        try:
            archive.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(_missing(source, archive.parent, f"the folder cannot be created: "
                                     f"{type(error).__name__}: {error.strerror}")) from None
        _fetch(source, archive, progress)
    except BaseException:
        remove_empty(created)
        raise


def _fetch(source, archive, progress):
    from tqdm import tqdm
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


def _damaged(path, what):
    return DataError(f"{path}: {what}. The file is damaged (a truncated copy or changed bytes): "
                     f"delete the {path.parent.name}/ folder and run again to extract it afresh "
                     f"from the archive (or to download it), or put an intact copy of the file back.")


def _check_official(source, path):
    """A file with the official file's size must have its MD5 (see the module's docstring)."""
    size, md5 = source.official_files.get(path.name, (None, None))
    if size is not None and path.stat().st_size == size and md5sum(path) != md5:
        raise _damaged(path, f"it has the size of the official file but not its MD5 ({md5})")


def _unpickle(source, path):
    if not path.exists():
        raise DataError(f"{path} is missing: the {path.parent.name}/ folder is incomplete. "
                        f"Delete the folder and run again, or put the missing file back.")
    _check_official(source, path)
    with open(path, "rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core in the old pickles
        try:
            content = pickle.load(f, encoding="bytes")  # the files are Python 2 pickles
        except Exception as error:  # UnpicklingError, EOFError, ValueError, ... all mean damage
            raise _damaged(path, f"it does not unpickle ({type(error).__name__}: {error})") from None
        if f.read(1):
            raise _damaged(path, "it has bytes after the end of its pickle")
    if not isinstance(content, dict):
        raise _damaged(path, f"it holds a {type(content).__name__}, not a CIFAR batch dictionary")
    return content


def _read_batch(source, path, num_classes, rows_per_batch):
    batch = _unpickle(source, path)
    missing = [k.decode() for k in (b"data", source.label_key) if k not in batch]
    if missing:
        raise _damaged(path, f"it has no {' or '.join(missing)} entry")
    data = np.asarray(batch[b"data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise _damaged(path, f"its data is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    labels = np.asarray(batch[source.label_key])
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise _damaged(path, f"it has {labels.shape} {labels.dtype} labels for {len(data)} images")
    if rows_per_batch is not None and len(data) != rows_per_batch:
        raise _damaged(path, f"it holds {len(data)} images, and batches.meta says each batch "
                             f"holds {rows_per_batch}")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise _damaged(path, f"{int(bad.sum())} labels lie outside the {num_classes} classes "
                             f"0..{num_classes - 1} (the first, image {i}, has label {labels[i]})")
    # Stored channel-major: RRR..GGG..BBB, each plane row by row.
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_batches(source, folder, files, num_classes, rows_per_batch):
    images, labels = zip(*(_read_batch(source, folder / name, num_classes, rows_per_batch)
                           for name in files))
    return np.concatenate(images), np.concatenate(labels)


def _read_folder(source, folder):
    meta_path = folder / source.meta_file
    meta = _unpickle(source, meta_path)
    if source.names_key not in meta:
        raise _damaged(meta_path, f"it has no {source.names_key.decode()} entry")
    classes = [n.decode() if isinstance(n, bytes) else n for n in meta[source.names_key]]
    rows = meta.get(b"num_cases_per_batch")  # CIFAR-10's meta says how many; CIFAR-100's not
    train_images, train_labels = _read_batches(source, folder, source.train_files, len(classes), rows)
    test_images, test_labels = _read_batches(source, folder, source.test_files, len(classes), rows)
    return Dataset(train_images, train_labels, test_images, test_labels, classes)
