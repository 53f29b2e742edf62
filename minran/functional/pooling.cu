// The CUDA twin of pooling.py: max and average pooling, forward and backward. Kernel
// offsets k = i * kw + j number a window in row order, as pooling.py's loop does.
#include "common.cuh"

// One thread per output pixel: the window's maximum (padding never counts; a NaN in the
// window makes it NaN, and of equal values the later is kept, as np.maximum(best, value)
// keeps them: 0.0 then -0.0 gives -0.0), then which offset k first holds that maximum,
// in row order, as pooling.py's backward finds it: that input gets the gradient. A NaN
// window has no winner (k = -1), since NaN equals nothing.
template <typename T>
__global__ void max_pool2d_forward(const T* __restrict__ x, T* __restrict__ out,
                                   int* __restrict__ argmax, int N, int C, int H, int W,
                                   int kh, int kw, int sh, int sw, int ph, int pw, int Ho,
                                   int Wo) {
    long long index = global_index();
    if (index >= (long long)N * C * Ho * Wo) return;
    int ow = (int)(index % Wo), oh = (int)(index / Wo % Ho);
    const T* plane = x + index / ((long long)Wo * Ho) * H * W;
    T best = negative_infinity<T>();
    for (int i = 0; i < kh; ++i) {
        for (int j = 0; j < kw; ++j) {
            int h = oh * sh + i - ph, w = ow * sw + j - pw;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            T value = plane[(long long)h * W + w];
            if (value >= best || value != value) best = value;   // NaN stays
        }
    }
    int winner = -1;
    for (int k = 0; k < kh * kw && winner < 0; ++k) {
        int h = oh * sh + k / kw - ph, w = ow * sw + k % kw - pw;
        if (h >= 0 && h < H && w >= 0 && w < W && plane[(long long)h * W + w] == best) winner = k;
    }
    out[index] = best;
    argmax[index] = winner;
}

// One thread per input pixel: gathers the gradient of every output whose window chose it.
// The windows are visited in the order of their offset k, as pooling.py adds them.
template <typename T>
__global__ void max_pool2d_backward(const T* __restrict__ g, const int* __restrict__ argmax,
                                    T* __restrict__ gx, int N, int C, int H, int W, int kh,
                                    int kw, int sh, int sw, int ph, int pw, int Ho, int Wo) {
    long long index = global_index();
    if (index >= (long long)N * C * H * W) return;
    int w = (int)(index % W), h = (int)(index / W % H);
    long long plane = index / ((long long)W * H) * Ho * Wo;
    T sum = T(0);
    for (int i = 0; i < kh; ++i) {
        int oh = output_reading(h, i, sh, ph, Ho);
        if (oh < 0) continue;
        for (int j = 0; j < kw; ++j) {
            int ow = output_reading(w, j, sw, pw, Wo);
            if (ow < 0) continue;
            long long o = plane + (long long)oh * Wo + ow;
            if (argmax[o] == i * kw + j) sum += g[o];
        }
    }
    gx[index] = sum;
}

// One thread per output pixel: the window's sum over kh * kw, padding counted as zeros.
template <typename T>
__global__ void avg_pool2d_forward(const T* __restrict__ x, T* __restrict__ out, int N, int C,
                                   int H, int W, int kh, int kw, int sh, int sw, int ph,
                                   int pw, int Ho, int Wo) {
    long long index = global_index();
    if (index >= (long long)N * C * Ho * Wo) return;
    int ow = (int)(index % Wo), oh = (int)(index / Wo % Ho);
    const T* plane = x + index / ((long long)Wo * Ho) * H * W;
    T sum = T(0);
    for (int i = 0; i < kh; ++i) {
        for (int j = 0; j < kw; ++j) {
            int h = oh * sh + i - ph, w = ow * sw + j - pw;
            if (h >= 0 && h < H && w >= 0 && w < W) sum += plane[(long long)h * W + w];
        }
    }
    out[index] = sum / T(kh * kw);
}

// One thread per input pixel: every window that covers it passes back g / (kh * kw).
template <typename T>
__global__ void avg_pool2d_backward(const T* __restrict__ g, T* __restrict__ gx, int N, int C,
                                    int H, int W, int kh, int kw, int sh, int sw, int ph,
                                    int pw, int Ho, int Wo) {
    long long index = global_index();
    if (index >= (long long)N * C * H * W) return;
    int w = (int)(index % W), h = (int)(index / W % H);
    long long plane = index / ((long long)W * H) * Ho * Wo;
    T sum = T(0);
    for (int i = 0; i < kh; ++i) {
        int oh = output_reading(h, i, sh, ph, Ho);
        if (oh < 0) continue;
        for (int j = 0; j < kw; ++j) {
            int ow = output_reading(w, j, sw, pw, Wo);
            if (ow < 0) continue;
            sum += g[plane + (long long)oh * Wo + ow] / T(kh * kw);
        }
    }
    gx[index] = sum;
}
