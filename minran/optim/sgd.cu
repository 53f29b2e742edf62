// The CUDA twin of sgd.py's update: one fused pass over a parameter array (PyTorch's update):
//     g = grad + weight_decay * p
//     buf = g (first step)  or  momentum * buf + g
//     g = g + momentum * buf (Nesterov)  or  buf
//     p = p - lr * g
// Without momentum `buf` is never touched. The lr is read from device memory, so that a
// step recorded as a CUDA graph follows the schedule when it is replayed.
#include "../functional/common.cuh"

template <typename T>
__global__ void sgd_update(T* __restrict__ p, const T* __restrict__ grad, T* buf,
                           const T* __restrict__ lr, long long n, T momentum, T weight_decay,
                           int nesterov, int first_step) {
    long long i = global_index();
    if (i >= n) return;
    T g = grad[i];
    if (weight_decay != T(0)) g += weight_decay * p[i];
    if (momentum != T(0)) {
        T b = first_step ? g : momentum * buf[i] + g;
        buf[i] = b;
        g = nesterov ? g + momentum * b : b;
    }
    p[i] -= lr[0] * g;
}
