// The CUDA twin of sgd.py's step: one fused pass over a parameter (PyTorch's update):
//     g = grad + weight_decay * p
//     buf = g (first step)  or  momentum * buf + g
//     g = g + momentum * buf (Nesterov)  or  buf
//     p = p - lr * g
// Without momentum `buf` is never touched.
template <typename T>
__global__ void sgd_update(T* __restrict__ p, const T* __restrict__ grad, T* buf, long long n,
                           T lr, T momentum, T weight_decay, int nesterov, int first_step) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    T g = grad[i];
    if (weight_decay != T(0)) g += weight_decay * p[i];
    if (momentum != T(0)) {
        T b = first_step ? g : momentum * buf[i] + g;
        buf[i] = b;
        g = nesterov ? g + momentum * b : b;
    }
    p[i] -= lr * g;
}
