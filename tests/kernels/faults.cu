// Kernels with the bugs the emulator must catch, one per kernel (tests/kernels/test_emulator.py).
// A correct twin of each sits beside it, so a test shows the check is not just always failing.
#include "../../minran/functional/common.cuh"

// Correct: the block's values summed in shared memory, with a barrier after every round.
template <typename T>
__global__ void sum_blocks(const T* __restrict__ x, T* __restrict__ sums, int n) {
    long long i = global_index();
    T total = block_sum(i < n ? x[i] : T(0));
    if (threadIdx.x == 0) sums[blockIdx.x] = total;
}

// Bug: no barrier between the rounds of the tree, so a thread may add a slot before the
// thread owning it has written it.
template <typename T>
__global__ void sum_blocks_without_barrier(const T* __restrict__ x, T* __restrict__ sums, int n) {
    __shared__ T partial[MINRAN_BLOCK];
    long long i = global_index();
    partial[threadIdx.x] = i < n ? x[i] : T(0);
    __syncthreads();
    for (int stride = MINRAN_BLOCK / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    }
    if (threadIdx.x == 0) sums[blockIdx.x] = partial[0];
}

// Bug: reads a shared slot no thread wrote (only the first n of the block are filled).
template <typename T>
__global__ void read_unwritten_shared(const T* __restrict__ x, T* __restrict__ y, int n) {
    __shared__ T copy[MINRAN_BLOCK];
    long long i = global_index();
    if (i < n) copy[threadIdx.x] = x[i];
    __syncthreads();
    if (i < n) y[i] = copy[MINRAN_BLOCK - 1 - threadIdx.x];
}

// Bug: the threads past the end return before the barrier the others wait at.
template <typename T>
__global__ void return_before_barrier(const T* __restrict__ x, T* __restrict__ y, int n) {
    __shared__ T copy[MINRAN_BLOCK];
    long long i = global_index();
    if (i >= n) return;
    copy[threadIdx.x] = x[i];
    __syncthreads();
    y[i] = copy[threadIdx.x];
}

// Bug: `<=` writes one element past the end of y.
template <typename T>
__global__ void write_past_end(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = global_index();
    if (i <= n) y[i] = x[0];
}

// Bug: every thread writes the same place (a race between blocks and threads).
template <typename T>
__global__ void racing_writes(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = global_index();
    if (i < n) y[0] = x[i];
}

// Bug: writes through a pointer it declared const.
template <typename T>
__global__ void write_to_const(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = global_index();
    if (i < n) {
        const_cast<T*>(x)[i] = T(0);
        y[i] = T(1);
    }
}

// Correct: takes a scale of type T and a 64-bit count, for the argument-type checks.
template <typename T>
__global__ void scale(const T* __restrict__ x, T* __restrict__ y, long long n, T factor) {
    long long i = global_index();
    if (i < n) y[i] = factor * x[i];
}
