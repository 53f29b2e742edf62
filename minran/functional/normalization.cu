// The CUDA twin of normalization.py: batch normalisation, with the ReLU that follows it in
// the pre-activation units optionally fused in (relu = 1). Channel c of an (N, C, H, W)
// input is N runs of HW contiguous values; (N, C) input has HW = 1.
#include "common.cuh"

// Value k (of N * HW) of channel c.
__device__ __forceinline__ long long channel_offset(long long k, int c, int C, int HW) {
    return (k / HW * C + c) * HW + k % HW;
}

// One block per channel: the batch mean, then the biased variance about it (two passes:
// no E[x^2] - E[x]^2 cancellation in float32).
template <typename T>
__global__ void batch_norm_statistics(const T* __restrict__ x, T* __restrict__ mean,
                                      T* __restrict__ var, int N, int C, int HW) {
    const int c = blockIdx.x;
    const long long count = (long long)N * HW;
    T sum = T(0);
    for (long long k = threadIdx.x; k < count; k += MINRAN_BLOCK) sum += x[channel_offset(k, c, C, HW)];
    T m = block_sum(sum) / T(count);
    T squares = T(0);
    for (long long k = threadIdx.x; k < count; k += MINRAN_BLOCK) {
        T centred = x[channel_offset(k, c, C, HW)] - m;
        squares += centred * centred;
    }
    T v = block_sum(squares) / T(count);
    if (threadIdx.x == 0) {
        mean[c] = m;
        var[c] = v;
    }
}

// out = (x - mean) * inv_std * weight + bias, then max(out, 0) when relu is fused in.
template <typename T>
__global__ void batch_norm_forward(const T* __restrict__ x, const T* __restrict__ mean,
                                   const T* __restrict__ inv_std, const T* __restrict__ weight,
                                   const T* __restrict__ bias, T* __restrict__ out, long long n,
                                   int C, int HW, int relu) {
    long long i = global_index();
    if (i >= n) return;
    int c = (int)(i / HW % C);
    T y = (x[i] - mean[c]) * inv_std[c] * weight[c] + bias[c];
    out[i] = relu && y < T(0) ? T(0) : y;
}

// The gradient reaching the normalisation: g, or g where the fused ReLU's output was > 0.
template <typename T>
__device__ __forceinline__ T through_relu(const T* g, const T* out, long long i, int relu) {
    return relu && !(out[i] > T(0)) ? T(0) : g[i];
}

// One block per channel: sum(g) and sum(g * xhat), the bias and weight gradients.
template <typename T>
__global__ void batch_norm_backward_sums(const T* __restrict__ g, const T* __restrict__ x,
                                         const T* __restrict__ out, const T* __restrict__ mean,
                                         const T* __restrict__ inv_std, T* __restrict__ g_sum,
                                         T* __restrict__ g_xhat_sum, int N, int C, int HW,
                                         int relu) {
    const int c = blockIdx.x;
    const long long count = (long long)N * HW;
    T sum = T(0), sum_xhat = T(0);
    for (long long k = threadIdx.x; k < count; k += MINRAN_BLOCK) {
        long long i = channel_offset(k, c, C, HW);
        T gi = through_relu(g, out, i, relu);
        sum += gi;
        sum_xhat += gi * ((x[i] - mean[c]) * inv_std[c]);
    }
    T total = block_sum(sum), total_xhat = block_sum(sum_xhat);
    if (threadIdx.x == 0) {
        g_sum[c] = total;
        g_xhat_sum[c] = total_xhat;
    }
}

// gx = weight * inv_std * (g - sum(g) / count - xhat * sum(g * xhat) / count) in training,
// where mean and variance depend on x; in evaluation they are constants: gx = g * w * inv_std.
template <typename T>
__global__ void batch_norm_backward_input(const T* __restrict__ g, const T* __restrict__ x,
                                          const T* __restrict__ out, const T* __restrict__ mean,
                                          const T* __restrict__ inv_std,
                                          const T* __restrict__ weight,
                                          const T* __restrict__ g_sum,
                                          const T* __restrict__ g_xhat_sum,
                                          T* __restrict__ gx, long long n, int C, int HW,
                                          T count, int training, int relu) {
    long long i = global_index();
    if (i >= n) return;
    int c = (int)(i / HW % C);
    T gi = through_relu(g, out, i, relu);
    T scale = inv_std[c] * weight[c];
    if (!training) {
        gx[i] = gi * scale;
        return;
    }
    T xhat = (x[i] - mean[c]) * inv_std[c];
    gx[i] = scale * (gi - g_sum[c] / count - xhat * (g_xhat_sum[c] / count));
}
