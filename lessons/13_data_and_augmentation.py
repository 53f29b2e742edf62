"""Lesson 13: the data pipeline: the CIFAR files, augmentation, label noise.

Files: minran/data/cifar.py, minran/data/augment.py, minran/data/noise.py, minran/data/loader.py,
       minran/plots.py (write_png)
Paper: Sec. 4.1 (pad 4, random crop, flip, mean subtraction); Table 5 (label noise).

No download here: this lesson draws a few images itself. load_cifar10() reads the official
pickles (Python 2, bytes keys, rows channel-major). The downloaded archive must have its
published MD5; the extracted files are checked each time they are read, on their structure
(complete pickles, 3,072 pixels and one label of a known class per image), and a file with
an official file's size must also have that file's MD5. A copy rebuilt in the official
layout from other pixels (like the JPEG one CI uses) is accepted on its structure alone.
"""
import os
import pathlib

import numpy as np

from minran.data import BatchIterator, augment, channel_stats, corrupt_labels, normalize
from minran.plots import upscale, write_png

OUT = pathlib.Path(os.environ.get("MINRAN_LESSONS_OUT") or pathlib.Path(__file__).parent / "out")
OUT.mkdir(parents=True, exist_ok=True)

# Eight pictures where a shift and a mirror show: a white F (it reads backwards when
# mirrored) and a red square in the top left corner, on a background of its own colour.
rng = np.random.default_rng(0)
images = np.empty((8, 3, 32, 32), np.uint8)
images[:] = rng.integers(40, 200, (8, 3, 1, 1))
for rows, columns in ((slice(8, 25), slice(11, 14)), (slice(8, 11), slice(11, 22)),
                      (slice(15, 18), slice(11, 19))):
    images[:, :, rows, columns] = 255
images[:, :, 2:6, 2:6] = np.array([230, 20, 20], np.uint8).reshape(3, 1, 1)

mean, std = channel_stats(images)
x = normalize(images, mean)   # (pixel - channel mean) / 255: zero padding is the mean colour
print("after mean subtraction: per-channel mean", x.mean(axis=(0, 2, 3)).round(6))

batch = augment(x, np.random.default_rng(1))
print("augmented batch:", batch.shape, "(pad 4, random 32x32 crop, random flip)")

# What happened to each image: which 32x32 window of its 40x40 padded copy was cut out, and
# whether it was mirrored, found by trying all 81 windows, mirrored or not.
padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
found = []
for original, augmented in zip(padded, batch):
    for top, left, mirrored in np.ndindex(9, 9, 2):
        crop = original[:, top:top + 32, left:left + 32]
        if np.array_equal(crop[..., ::-1] if mirrored else crop, augmented):
            found.append((top, left, bool(mirrored)))
            break
for i, (top, left, mirrored) in enumerate(found):
    print(f"image {i}: the window at row {top}, column {left} of the padded image"
          f"{', mirrored' if mirrored else ''}")


def to_uint8(normalised):
    """Back to pixels: undo the mean subtraction (the padding becomes the mean colour)."""
    return np.clip(normalised * 255 + mean.reshape(1, 3, 1, 1), 0, 255).round().astype(np.uint8)


def grid(rows, scale=3, gap=4):
    """Rows of (N, 3, 32, 32) uint8 images as one (H, W, 3) picture, white between them."""
    lines = []
    for row in rows:
        tiles = [upscale(image.transpose(1, 2, 0), scale) for image in row]
        spaced = [np.full((32 * scale, gap, 3), 255, np.uint8)] * len(tiles)
        lines.append(np.concatenate([t for pair in zip(tiles, spaced) for t in pair][:-1], axis=1))
        lines.append(np.full((gap, lines[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(lines[:-1], axis=0)


picture = grid([images, to_uint8(batch)])
write_png(OUT / "13_augmented_batch.png", picture)
print("the originals (top) and their augmented copies (bottom):", OUT / "13_augmented_batch.png")

labels = np.repeat(np.arange(10), 100)
noisy = corrupt_labels(labels, 0.3, 10, np.random.default_rng(2))
print(f"label noise 0.3: {(noisy != labels).mean():.2f} of labels changed, to other classes uniformly")

it = BatchIterator(x, np.arange(8), batch_size=3, rng=np.random.default_rng(3), augment=True)
print("batches of an epoch:", [y.tolist() for _, y in it], "(shuffled, every image once)")

# Exercises
# 1. Look at _download in cifar.py: why write to a .part file and then os.replace it?
# 2. Augment with pad=8 (augment(x, rng, pad=8)) and look at the picture again: what fills
#    the edges, and why the mean colour rather than black?
# 3. Why must augmentation not change the label? Think of a task whose answer a mirror
#    changes (lesson 15 has one).
