// The CUDA twin of loss.py: softmax cross-entropy, forward and backward.
#include "common.cuh"

// One thread per sample: log-softmax of its row (shifted by the row's maximum so exp never
// overflows) and the sample's loss -log p[label]. The batch mean is taken by the caller.
template <typename T>
__global__ void softmax_cross_entropy_forward(const T* __restrict__ logits,
                                              const long long* __restrict__ labels,
                                              T* __restrict__ log_probs, T* __restrict__ losses,
                                              int N, int K) {
    long long n = global_index();
    if (n >= N) return;
    const T* z = logits + n * K;
    T top = z[0];
    for (int k = 1; k < K; ++k) top = z[k] > top ? z[k] : top;
    T total = T(0);
    for (int k = 0; k < K; ++k) total += exp(z[k] - top);
    T log_total = log(total);
    for (int k = 0; k < K; ++k) log_probs[n * K + k] = z[k] - top - log_total;
    long long label = labels[n];   // outside [0, K): a NaN loss, not a read outside the row
    losses[n] = label >= 0 && label < K ? -log_probs[n * K + label] : quiet_nan<T>();
}

// d(mean loss)/d logits = (softmax - one_hot(label)) / N, times the incoming gradient g,
// read from device memory (reading it on the host would stop and wait for the GPU).
template <typename T>
__global__ void softmax_cross_entropy_backward(const T* __restrict__ g,
                                               const T* __restrict__ log_probs,
                                               const long long* __restrict__ labels,
                                               T* __restrict__ g_logits, int N, int K) {
    long long index = global_index();
    if (index >= (long long)N * K) return;
    long long n = index / K;
    T target = labels[n] == index % K ? T(1) : T(0);
    g_logits[index] = (exp(log_probs[index]) - target) * (g[0] / T(N));
}
