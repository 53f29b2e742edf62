// The CUDA twin of upsample.py: bilinear resizing, forward and a deterministic backward.
#include "common.cuh"

// Where output row (or column) o reads from: two input taps and the weight of the second,
// computed in double exactly as interpolation_matrix() computes them. `scale` is
// (in - 1) / (out - 1) with align_corners (0 when out == 1), else in / out.
struct Taps {
    int i0, i1;
    double frac;
};

__device__ __forceinline__ Taps taps(int o, int size_in, double scale, int align_corners) {
    double src = align_corners ? o * scale : fmax((o + 0.5) * scale - 0.5, 0.0);
    Taps t;
    t.i0 = min((int)floor(src), size_in - 1);
    t.i1 = min(t.i0 + 1, size_in - 1);
    t.frac = src - t.i0;
    return t;
}

// The weight input index i gets in output o: 1 - frac on the first tap, frac on the
// second (both, at the border where the two taps are one pixel).
template <typename T>
__device__ __forceinline__ T weight(const Taps& t, int i) {
    return T((t.i0 == i ? 1.0 - t.frac : 0.0) + (t.i1 == i ? t.frac : 0.0));
}

// The first output whose taps can include input i. The taps move right as o grows, so
// walk from an estimate to the exact answer; the estimate only saves steps.
__device__ int first_output(int i, int size_in, int size_out, double scale, int align_corners) {
    if (scale <= 0.0) return 0;
    double estimate = align_corners ? (i - 1) / scale : (i - 0.5) / scale - 0.5;
    int o = max(0, min(size_out - 1, (int)floor(estimate)));
    while (o > 0 && taps(o - 1, size_in, scale, align_corners).i0 >= i - 1) --o;
    while (o < size_out && taps(o, size_in, scale, align_corners).i0 < i - 1) ++o;
    return o;
}

// One thread per output pixel: blend the four input pixels around its source point.
template <typename T>
__global__ void upsample_bilinear_forward(const T* __restrict__ x, T* __restrict__ out, int N,
                                          int C, int H, int W, int Ho, int Wo, double scale_y,
                                          double scale_x, int align_corners) {
    long long index = global_index();
    if (index >= (long long)N * C * Ho * Wo) return;
    int ox = (int)(index % Wo), oy = (int)(index / Wo % Ho);
    const T* plane = x + index / ((long long)Wo * Ho) * H * W;
    Taps ty = taps(oy, H, scale_y, align_corners), tx = taps(ox, W, scale_x, align_corners);
    T wy1 = T(ty.frac), wy0 = T(1.0 - ty.frac), wx1 = T(tx.frac), wx0 = T(1.0 - tx.frac);
    const T* row0 = plane + (long long)ty.i0 * W;
    const T* row1 = plane + (long long)ty.i1 * W;
    out[index] = wy0 * (wx0 * row0[tx.i0] + wx1 * row0[tx.i1]) +
                 wy1 * (wx0 * row1[tx.i0] + wx1 * row1[tx.i1]);
}

// One thread per input pixel: gather g from every output pixel that read it, times the
// weight it was read with. No two threads write one place: no atomics, the same sum each run.
template <typename T>
__global__ void upsample_bilinear_backward(const T* __restrict__ g, T* __restrict__ gx, int N,
                                           int C, int H, int W, int Ho, int Wo, double scale_y,
                                           double scale_x, int align_corners) {
    long long index = global_index();
    if (index >= (long long)N * C * H * W) return;
    int ix = (int)(index % W), iy = (int)(index / W % H);
    const T* plane = g + index / ((long long)W * H) * Ho * Wo;
    int oy0 = first_output(iy, H, Ho, scale_y, align_corners);
    int ox0 = first_output(ix, W, Wo, scale_x, align_corners);
    T sum = T(0);
    for (int oy = oy0; oy < Ho; ++oy) {
        Taps ty = taps(oy, H, scale_y, align_corners);
        if (ty.i0 > iy) break;
        T wy = weight<T>(ty, iy);
        if (wy == T(0)) continue;
        for (int ox = ox0; ox < Wo; ++ox) {
            Taps tx = taps(ox, W, scale_x, align_corners);
            if (tx.i0 > ix) break;
            sum += wy * weight<T>(tx, ix) * plane[(long long)oy * Wo + ox];
        }
    }
    gx[index] = sum;
}
