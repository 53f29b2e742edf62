// The CUDA twin of normalization.py: batch normalisation, with the ReLU that follows it in
// the pre-activation units optionally fused in (relu = 1). Channel c of an (N, C, H, W)
// input is N runs of HW contiguous values; (N, C) input has HW = 1.
//
// In training each direction is one launch with one block per channel: the block sums its
// channel, then normalises it (or, going back, takes the two gradient sums, then writes the
// input gradient). Two launches each way would let more blocks share a channel; one keeps a
// training step of Attention-92 within its launch budget (docs/KERNELS.md), and a channel's
// second pass reads what the first just brought into the cache.
#include "common.cuh"

// Value k (of N * HW) of channel c.
__device__ __forceinline__ long long channel_offset(long long k, int c, int C, int HW) {
    return (k / HW * C + c) * HW + k % HW;
}

// Training: the batch mean, then the biased variance about it (two passes: no
// E[x^2] - E[x]^2 cancellation in float32), 1 / sqrt(var + eps), and, when `update` is 1,
// the running statistics moved toward the batch's as PyTorch moves them:
//     running_mean = keep * running_mean + momentum * mean
//     running_var  = keep * running_var + momentum * var * unbias     (unbias = n / (n - 1))
// with keep = 1 - momentum from the caller. Then the channel is normalised as the NumPy twin
// does it, out = x * a + b with a = inv_std * weight and b = bias - mean * a, and the ReLU.
template <typename T>
__global__ void batch_norm_forward_training(const T* __restrict__ x, const T* __restrict__ weight,
                                            const T* __restrict__ bias, T* __restrict__ out,
                                            T* __restrict__ mean, T* __restrict__ var,
                                            T* __restrict__ inv_std, T* running_mean,
                                            T* running_var, int N, int C, int HW, T eps,
                                            T momentum, T keep, T unbias, int update, int relu) {
    const int c = blockIdx.x;
    const long long count = (long long)N * HW;
    T sum = T(0);
    for (long long k = threadIdx.x; k < count; k += MINRAN_BLOCK) sum += x[channel_offset(k, c, C, HW)];
    const T m = block_sum(sum) / T(count);
    T squares = T(0);
    for (long long k = threadIdx.x; k < count; k += MINRAN_BLOCK) {
        T centred = x[channel_offset(k, c, C, HW)] - m;
        squares += centred * centred;
    }
    const T v = block_sum(squares) / T(count);
    const T is = T(1) / sqrt(v + eps);
    if (threadIdx.x == 0) {
        mean[c] = m;
        var[c] = v;
        inv_std[c] = is;
        if (update) {
            running_mean[c] = running_mean[c] * keep + momentum * m;
            running_var[c] = running_var[c] * keep + momentum * v * unbias;
        }
    }
    const T a = is * weight[c], b = bias[c] - m * a;
    for (long long k = threadIdx.x; k < count; k += MINRAN_BLOCK) {
        long long i = channel_offset(k, c, C, HW);
        T y = x[i] * a + b;
        out[i] = relu && y <= T(0) ? T(0) : y;   // -0.0 becomes 0.0, as np.maximum(y, 0)
    }
}

// Evaluation: out = (x - mean) * inv_std * weight + bias with the running statistics, then
// max(out, 0) when relu is fused in; one thread per element.
template <typename T>
__global__ void batch_norm_forward(const T* __restrict__ x, const T* __restrict__ mean,
                                   const T* __restrict__ inv_std, const T* __restrict__ weight,
                                   const T* __restrict__ bias, T* __restrict__ out, long long n,
                                   int C, int HW, int relu) {
    long long i = global_index();
    if (i >= n) return;
    int c = (int)(i / HW % C);
    T y = (x[i] - mean[c]) * inv_std[c] * weight[c] + bias[c];
    out[i] = relu && y <= T(0) ? T(0) : y;
}

// The gradient reaching the normalisation: g, or g where the fused ReLU's output was > 0,
// written as the NumPy twin's product g * (out > 0) (so a negative g gives -0.0, a NaN NaN).
template <typename T>
__device__ __forceinline__ T through_relu(const T* g, const T* out, long long i, int relu) {
    return relu ? g[i] * (out[i] > T(0) ? T(1) : T(0)) : g[i];
}

// One block per channel. First sum(gr) and sum(gr * xhat), the bias and weight gradients
// (gr: the gradient through the ReLU); then the input gradient
//     gx = weight * inv_std * (gr - sum(gr) / n - xhat * sum(gr * xhat) / n)
// in training, where mean and variance depend on x, or gx = gr * weight * inv_std in
// evaluation, where they are constants. With add = 1 the block adds `addend` (another
// gradient of the same x, such as a residual unit's shortcut's) into gx as it writes it,
// which saves the separate addition pass.
template <typename T>
__global__ void batch_norm_backward(const T* __restrict__ g, const T* __restrict__ x,
                                    const T* __restrict__ out, const T* __restrict__ mean,
                                    const T* __restrict__ inv_std, const T* __restrict__ weight,
                                    const T* __restrict__ addend, T* __restrict__ g_sum,
                                    T* __restrict__ g_xhat_sum, T* __restrict__ gx, int N, int C,
                                    int HW, int training, int relu, int add) {
    const int c = blockIdx.x;
    const long long count = (long long)N * HW;
    const T m = mean[c], is = inv_std[c];
    T sum = T(0), sum_xhat = T(0);
    for (long long k = threadIdx.x; k < count; k += MINRAN_BLOCK) {
        long long i = channel_offset(k, c, C, HW);
        T gi = through_relu(g, out, i, relu);
        sum += gi;
        sum_xhat += gi * ((x[i] - m) * is);
    }
    const T total = block_sum(sum), total_xhat = block_sum(sum_xhat);
    if (threadIdx.x == 0) {
        g_sum[c] = total;
        g_xhat_sum[c] = total_xhat;
    }
    const T scale = is * weight[c], n = T(count);
    for (long long k = threadIdx.x; k < count; k += MINRAN_BLOCK) {
        long long i = channel_offset(k, c, C, HW);
        T gi = through_relu(g, out, i, relu);
        T result = training ? scale * (gi - total / n - (x[i] - m) * is * (total_xhat / n))
                            : gi * scale;
        gx[i] = add ? addend[i] + result : result;
    }
}
