"""Lesson 11: the data pipeline: the official CIFAR files, augmentation, label noise.

Files: minran/data/cifar.py, minran/data/augment.py, minran/data/noise.py, minran/data/loader.py
Paper: Sec. 4.1 (pad 4, random crop, flip, mean subtraction); Table 5 (label noise).

No download here: this lesson makes a few images itself. load_cifar10() reads the official
pickles (Python 2, bytes keys, rows channel-major) after verifying the archive's MD5.
"""
import numpy as np

from minran.data import BatchIterator, augment, channel_stats, corrupt_labels, normalize

rng = np.random.default_rng(0)
images = rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
mean, std = channel_stats(images)
x = normalize(images, mean)
print("after mean subtraction: per-channel mean", x.mean(axis=(0, 2, 3)).round(6))

batch = augment(x, np.random.default_rng(1))
print("augmented batch:", batch.shape, "(pad 4, random 32x32 crop, random flip)")

labels = np.repeat(np.arange(10), 100)
noisy = corrupt_labels(labels, 0.3, 10, np.random.default_rng(2))
print(f"label noise 0.3: {(noisy != labels).mean():.2f} of labels changed, to other classes uniformly")

it = BatchIterator(x, np.arange(8), batch_size=3, rng=np.random.default_rng(3), augment=True)
print("batches of an epoch:", [y.tolist() for _, y in it], "(shuffled, every image once)")

# Exercises
# 1. Look at _download in cifar.py: why write to a .part file and then os.replace it?
# 2. Plot (or print) one image before and after random_crop with pad=8.
