// The CUDA twin of activation.py: ReLU and the sigmoid, one thread per element.
#include "common.cuh"

// max(x, 0) as the NumPy twin's np.maximum(x, 0) gives it, to the bit: -0.0 becomes 0.0, a
// NaN stays NaN.
template <typename T>
__global__ void relu_forward(const T* __restrict__ x, T* __restrict__ y, long long n) {
    long long i = global_index();
    if (i < n) y[i] = x[i] <= T(0) ? T(0) : x[i];
}

// The gradient passes where the input was positive: g times (x > 0), the NumPy twin's
// product, so a negative g is stopped as -0.0 there too.
template <typename T>
__global__ void relu_backward(const T* __restrict__ g, const T* __restrict__ x,
                              T* __restrict__ gx, long long n) {
    long long i = global_index();
    if (i < n) gx[i] = g[i] * T(x[i] > T(0));
}

// 1 / (1 + exp(-x)) written with exp(-|x|), which is at most 1 and never overflows.
template <typename T>
__global__ void sigmoid_forward(const T* __restrict__ x, T* __restrict__ y, long long n) {
    long long i = global_index();
    if (i >= n) return;
    T e = exp(-fabs(x[i]));
    y[i] = x[i] >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

template <typename T>
__global__ void sigmoid_backward(const T* __restrict__ g, const T* __restrict__ y,
                                 T* __restrict__ gx, long long n) {
    long long i = global_index();
    if (i < n) gx[i] = g[i] * y[i] * (T(1) - y[i]);
}
