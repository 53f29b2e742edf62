"""CIFAR-10/100 loading, the paper's augmentation, label noise and batching."""
from .augment import augment, channel_stats, normalize, pixel_mean, random_crop, random_flip
from .cifar import DataError, Dataset, SOURCES, default_root, load, load_cifar10, load_cifar100, md5sum
from .loader import BatchIterator
from .noise import corrupt_labels

__all__ = ["augment", "channel_stats", "normalize", "pixel_mean", "random_crop", "random_flip",
           "DataError", "Dataset", "SOURCES", "default_root", "load", "load_cifar10",
           "load_cifar100", "md5sum", "BatchIterator", "corrupt_labels"]
