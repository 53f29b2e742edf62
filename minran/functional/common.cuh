// What several kernels share. Included by the .cu files beside the ops; compiled by NVRTC
// on a GPU machine and by the system C++ compiler in the emulator (minran/cuda/).
#pragma once

// This thread's position among all the launch's threads (one thread per output element).
__device__ __forceinline__ long long global_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

// The gathers (col2im, the pooling backwards) ask, for an input row h and kernel row i:
// which output row's window read h at offset i? The one with oh * stride + i - pad == h,
// if that oh is a whole number inside the output; -1 when there is none. Columns alike.
__device__ __forceinline__ int output_reading(int h, int i, int stride, int pad, int out_size) {
    int strided = h + pad - i;   // = oh * stride
    if (strided < 0 || strided % stride != 0 || strided / stride >= out_size) return -1;
    return strided / stride;
}

// The sum of one value from every thread of the block, returned to all of them: each
// thread parks its value in shared memory, then half the threads add the other half's,
// and so on (log2 MINRAN_BLOCK rounds), with a barrier after each round so that nobody
// reads a slot before it is written. The fixed pairing makes the sum deterministic.
template <typename T>
__device__ T block_sum(T value) {
    __shared__ T partial[MINRAN_BLOCK];
    partial[threadIdx.x] = value;
    __syncthreads();
    for (int stride = MINRAN_BLOCK / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    T total = partial[0];
    __syncthreads();   // everyone has read partial[0] before the next call overwrites it
    return total;
}

// -infinity without host-only names (INFINITY does not exist in NVRTC).
template <typename T> __device__ T negative_infinity();
template <> __device__ __forceinline__ float negative_infinity<float>() {
    return __int_as_float((int)0xff800000u);
}
template <> __device__ __forceinline__ double negative_infinity<double>() {
    return __longlong_as_double((long long)0xfff0000000000000ull);
}

// A quiet NaN, for results that have no value (a label outside the classes).
template <typename T> __device__ T quiet_nan();
template <> __device__ __forceinline__ float quiet_nan<float>() {
    return __int_as_float((int)0x7fc00000u);
}
template <> __device__ __forceinline__ double quiet_nan<double>() {
    return __longlong_as_double((long long)0x7ff8000000000000ull);
}
