// The CUDA twin of attention.py: attention residual learning's combine, and the channel
// and spatial normalisations of the mask's activation variants.
#include "common.cuh"

// H = (1 + M) * T (attention residual learning) or M * T (naive attention learning).
template <typename T>
__global__ void attention_combine_forward(const T* __restrict__ mask, const T* __restrict__ trunk,
                                          T* __restrict__ out, long long n, int residual) {
    long long i = global_index();
    if (i < n) out[i] = (residual ? T(1) + mask[i] : mask[i]) * trunk[i];
}

// dH/dM = T and dH/dT = 1 + M (or M).
template <typename T>
__global__ void attention_combine_backward(const T* __restrict__ g, const T* __restrict__ mask,
                                           const T* __restrict__ trunk, T* __restrict__ g_mask,
                                           T* __restrict__ g_trunk, long long n, int residual) {
    long long i = global_index();
    if (i >= n) return;
    g_mask[i] = g[i] * trunk[i];
    g_trunk[i] = g[i] * (residual ? T(1) + mask[i] : mask[i]);
}

// Channel attention: one thread per position (n, h, w) divides its C values by their L2
// norm, clamped below at eps. It keeps the norm for the backward.
template <typename T>
__global__ void channel_normalize_forward(const T* __restrict__ x, T* __restrict__ y,
                                          T* __restrict__ norm, int N, int C, int HW, T eps) {
    long long index = global_index();
    if (index >= (long long)N * HW) return;
    const long long first = index / HW * C * HW + index % HW;   // (n, 0, h, w)
    T squares = T(0);
    for (int c = 0; c < C; ++c) squares += x[first + (long long)c * HW] * x[first + (long long)c * HW];
    T length = sqrt(squares);
    T inv = T(1) / (length < eps ? eps : length);
    for (int c = 0; c < C; ++c) y[first + (long long)c * HW] = x[first + (long long)c * HW] * inv;
    norm[index] = length;
}

// gx = (g - y * sum_c(g * y)) / ||x||, or g / eps where the norm was clamped (y = x / eps).
template <typename T>
__global__ void channel_normalize_backward(const T* __restrict__ g, const T* __restrict__ y,
                                           const T* __restrict__ norm, T* __restrict__ gx,
                                           int N, int C, int HW, T eps) {
    long long index = global_index();
    if (index >= (long long)N * HW) return;
    const long long first = index / HW * C * HW + index % HW;
    T inv = T(1) / (norm[index] < eps ? eps : norm[index]);
    T dot = T(0);
    for (int c = 0; c < C; ++c) dot += g[first + (long long)c * HW] * y[first + (long long)c * HW];
    for (int c = 0; c < C; ++c) {
        long long i = first + (long long)c * HW;
        gx[i] = norm[index] < eps ? g[i] * inv : inv * (g[i] - y[i] * dot);
    }
}

// Spatial attention's normalisation: one block per feature map (n, c) takes the map's mean,
// then its variance about that mean (two passes: no E[x^2] - E[x]^2 cancellation), and
// writes (x - mean) / sqrt(var + eps). It keeps 1 / sqrt(var + eps) for the backward.
template <typename T>
__global__ void spatial_normalize_forward(const T* __restrict__ x, T* __restrict__ y,
                                          T* __restrict__ inv_std, int HW, T eps) {
    const T* map = x + (long long)blockIdx.x * HW;
    T sum = T(0);
    for (long long i = threadIdx.x; i < HW; i += MINRAN_BLOCK) sum += map[i];
    T mean = block_sum(sum) / T(HW);
    T squares = T(0);
    for (long long i = threadIdx.x; i < HW; i += MINRAN_BLOCK)
        squares += (map[i] - mean) * (map[i] - mean);
    T scale = T(1) / sqrt(block_sum(squares) / T(HW) + eps);
    for (long long i = threadIdx.x; i < HW; i += MINRAN_BLOCK)
        y[(long long)blockIdx.x * HW + i] = (map[i] - mean) * scale;
    if (threadIdx.x == 0) inv_std[blockIdx.x] = scale;
}

// gx = inv_std * (g - mean(g) - y * mean(g * y)) over the map: the gradient through a
// normalisation whose mean and std come from its own input (as _normalize_backward).
template <typename T>
__global__ void spatial_normalize_backward(const T* __restrict__ g, const T* __restrict__ y,
                                           const T* __restrict__ inv_std, T* __restrict__ gx,
                                           int HW) {
    const long long first = (long long)blockIdx.x * HW;
    T g_sum = T(0), gy_sum = T(0);
    for (long long i = threadIdx.x; i < HW; i += MINRAN_BLOCK) {
        g_sum += g[first + i];
        gy_sum += g[first + i] * y[first + i];
    }
    T g_mean = block_sum(g_sum) / T(HW), gy_mean = block_sum(gy_sum) / T(HW);
    for (long long i = threadIdx.x; i < HW; i += MINRAN_BLOCK)
        gx[first + i] = inv_std[blockIdx.x] * (g[first + i] - g_mean - y[first + i] * gy_mean);
}
