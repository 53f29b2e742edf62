// The CUDA twin of conv.py: im2col and its adjoint col2im. The matrix products between
// them stay on cuBLAS (cupy.matmul), as NumPy's stay on BLAS.
#include "common.cuh"

// cols (N, C, kh, kw, Ho, Wo) from x (N, C, H, W): one thread per column entry, reading the
// input pixel its kernel offset (i, j) and output position (oh, ow) point at, or 0 in the
// padding.
template <typename T>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ cols, int N, int C, int H,
                       int W, int kh, int kw, int sh, int sw, int ph, int pw, int Ho, int Wo) {
    long long index = global_index();
    if (index >= (long long)N * C * kh * kw * Ho * Wo) return;
    int ow = (int)(index % Wo);
    int oh = (int)(index / Wo % Ho);
    int j = (int)(index / ((long long)Wo * Ho) % kw);
    int i = (int)(index / ((long long)Wo * Ho * kw) % kh);
    long long plane = index / ((long long)Wo * Ho * kw * kh);   // n * C + c
    int h = oh * sh + i - ph, w = ow * sw + j - pw;
    cols[index] = (h >= 0 && h < H && w >= 0 && w < W) ? x[(plane * H + h) * W + w] : T(0);
}

// x (N, C, H, W) from cols: one thread per input pixel gathers every column entry that
// was read from it, kernel offsets in row order as conv.py's loop adds them. A gather, not
// a scatter: no two threads write one place, so no atomics and the same sum every run.
template <typename T>
__global__ void col2im(const T* __restrict__ cols, T* __restrict__ x, int N, int C, int H,
                       int W, int kh, int kw, int sh, int sw, int ph, int pw, int Ho, int Wo) {
    long long index = global_index();
    if (index >= (long long)N * C * H * W) return;
    int w = (int)(index % W);
    int h = (int)(index / W % H);
    long long plane = index / ((long long)W * H);
    T sum = T(0);
    for (int i = 0; i < kh; ++i) {
        int oh = output_reading(h, i, sh, ph, Ho);
        if (oh < 0) continue;
        for (int j = 0; j < kw; ++j) {
            int ow = output_reading(w, j, sw, pw, Wo);
            if (ow < 0) continue;
            sum += cols[(((plane * kh + i) * kw + j) * Ho + oh) * Wo + ow];
        }
    }
    x[index] = sum;
}
