"""The paper's augmentation, on whole batches at once: pad 4, random 32x32 crop, random flip.

Images are normalised first (mean subtracted, optionally divided by the std), so the zero
padding the paper describes is padding with the mean colour.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def channel_stats(images):
    """Per-channel mean and std of uint8 images (N, 3, H, W), on the 0-255 scale."""
    x = images.astype(np.float64)
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


def pixel_mean(images):
    """The paper's per-pixel mean image (3, H, W)."""
    return images.astype(np.float64).mean(axis=0)


def normalize(images, mean, std=None, dtype=np.float32):
    """uint8 (N, 3, H, W) -> float: subtract the mean (per channel (3,) or per pixel (3, H, W))
    and divide by the per-channel std when given, else by 255 (keeps values near unit scale)."""
    mean = np.asarray(mean, dtype=np.float64)
    mean = mean.reshape(1, 3, 1, 1) if mean.ndim == 1 else mean[None]
    scale = 255.0 if std is None else np.asarray(std, dtype=np.float64).reshape(1, 3, 1, 1)
    return ((images - mean) / scale).astype(dtype)


def random_crop(batch, rng, pad=4):
    """Zero-pad each image by `pad` and cut a random window of the original size from it."""
    N, C, H, W = batch.shape
    padded = np.pad(batch, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(padded, (H, W), axis=(2, 3))  # (N, C, 2p+1, 2p+1, H, W), a view
    top = rng.integers(0, 2 * pad + 1, N)
    left = rng.integers(0, 2 * pad + 1, N)
    return windows[np.arange(N), :, top, left]                   # (N, C, H, W), one copy


def random_flip(batch, rng):
    """Mirror a random half of the images left to right."""
    flip = rng.random(len(batch)) < 0.5
    return np.where(flip[:, None, None, None], batch[..., ::-1], batch)


def augment(batch, rng, pad=4):
    return random_flip(random_crop(batch, rng, pad), rng)
