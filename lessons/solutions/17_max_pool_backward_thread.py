"""An answer to exercise 17: unflatten the thread's number, then visit the covering windows,
offset by offset, as pooling.cu's max_pool2d_backward does."""


def output_reading(h, i, stride, pad, out_size):
    """The output row whose window reads input row h at kernel row i, or -1 if none does."""
    strided = h + pad - i          # = oh * stride
    if strided < 0 or strided % stride or strided // stride >= out_size:
        return -1
    return strided // stride


def max_pool_backward_thread(tid, g, argmax, gx, kernel, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    N, C, H, W = gx.shape
    Ho, Wo = g.shape[2:]
    if tid >= N * C * H * W:       # the last block is only partly used
        return
    w, h = tid % W, tid // W % H
    c, n = tid // (W * H) % C, tid // (W * H * C)
    total = 0.0
    for di in range(kh):
        oh = output_reading(h, di, sh, ph, Ho)
        if oh < 0:
            continue
        for dj in range(kw):
            ow = output_reading(w, dj, sw, pw, Wo)
            if ow >= 0 and argmax[n, c, oh, ow] == di * kw + dj:
                total += g[n, c, oh, ow]
    gx[n, c, h, w] = total
