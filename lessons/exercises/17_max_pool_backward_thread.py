"""Exercise 17: max pooling's backward as a CUDA thread would do it: one thread per INPUT pixel.

Fill in `max_pool_backward_thread`, then check it against minran's from the repository's root:

    python -m lessons.check 17

The check calls it once for every thread of the launch, tid = 0, 1, ..., blocks * 128 - 1
(more threads than input pixels: the extra ones must do nothing), and compares gx with the
gradient of minran's max_pool2d. Arguments:

    g       the output's gradient, (N, C, Ho, Wo)
    argmax  (N, C, Ho, Wo): the winning kernel offset k = di * kw + dj of every window, as
            the forward kernel writes it (the first maximum in row order)
    gx      (N, C, H, W), to write: this thread's own pixel, once, and nothing else
    kernel, stride, padding   pairs (kh, kw), (sh, sw), (ph, pw)

Thread tid owns input pixel (n, c, h, w) in NumPy's order (w changes fastest). It visits
every window that covers its pixel: window (oh, ow) reads, at offset (di, dj), input row
oh * sh + di - ph and column ow * sw + dj - pw. So for offset di the covering row is
oh = (h + ph - di) / sh, when that is a whole number in [0, Ho) (common.cuh's
output_reading, lesson 18). It adds g[n, c, oh, ow] for each window whose argmax points at
its pixel, then writes the sum. No thread writes another's pixel: no atomics needed.
"""


def max_pool_backward_thread(tid, g, argmax, gx, kernel, stride, padding):
    raise NotImplementedError("max_pool_backward_thread")
