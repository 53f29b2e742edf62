// Warp functions and atomics on the emulator (tests/kernels/test_warps.py): correct kernels
// that use them, and the bugs the emulator must catch, each beside a correct twin. The
// kernels take any block size; a block's threads are numbered x fastest, then y, then z,
// and each 32 of them in that order are one warp.
#include "../../minran/functional/common.cuh"

__device__ __forceinline__ unsigned thread_in_block() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

__device__ __forceinline__ long long thread_in_grid() {
    return (long long)blockIdx.x * blockDim.x * blockDim.y * blockDim.z + thread_in_block();
}

// Correct: each warp sums its 32 values with shuffles (lane 0 ends with the total), and
// lane 0 writes it to sums[warp of the grid].
template <typename T>
__global__ void warp_sums(const T* __restrict__ x, T* __restrict__ sums, int n) {
    long long i = thread_in_grid();
    T v = i < n ? x[i] : T(0);
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (thread_in_block() % 32 == 0) sums[i / 32] = v;
}

// Bug: the first offset is 32, which reads the lane itself (a shuffle past the warp's
// end returns the caller's own value): every sum comes out doubled.
template <typename T>
__global__ void warp_sums_from_32(const T* __restrict__ x, T* __restrict__ sums, int n) {
    long long i = thread_in_grid();
    T v = i < n ? x[i] : T(0);
    for (int offset = 32; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (thread_in_block() % 32 == 0) sums[i / 32] = v;
}

// Bug: stops before offset 1, so lane 0 misses every odd lane.
template <typename T>
__global__ void warp_sums_stop_early(const T* __restrict__ x, T* __restrict__ sums, int n) {
    long long i = thread_in_grid();
    T v = i < n ? x[i] : T(0);
    for (int offset = 16; offset > 1; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (thread_in_block() % 32 == 0) sums[i / 32] = v;
}

// Correct: a butterfly (xor) sum, which leaves the total in every lane.
template <typename T>
__global__ void warp_all_sums(const T* __restrict__ x, T* __restrict__ sums, int n) {
    long long i = thread_in_grid();
    T v = i < n ? x[i] : T(0);
    for (int mask = 16; mask > 0; mask /= 2) v += __shfl_xor_sync(0xffffffffu, v, mask);
    if (i < n) sums[i] = v;
}

// Bug: the mask leaves out lane 31, which calls the shuffle all the same.
template <typename T>
__global__ void mask_without_caller(const T* __restrict__ x, T* __restrict__ sums, int n) {
    long long i = thread_in_grid();
    T v = i < n ? x[i] : T(0);
    for (int mask = 16; mask > 0; mask /= 2) v += __shfl_xor_sync(0x7fffffffu, v, mask);
    if (i < n) sums[i] = v;
}

// Bug: the threads past the end return, then the others shuffle with a full mask that
// names them.
template <typename T>
__global__ void shuffle_after_return(const T* __restrict__ x, T* __restrict__ sums, int n) {
    long long i = thread_in_grid();
    if (i >= n) return;
    T v = x[i];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (thread_in_block() % 32 == 0) sums[i / 32] = v;
}

// Correct: the threads past the end stay (with 0), the mask is the lanes the warp has, and
// a lane adds only values from lanes that exist (a shuffle from a lane outside the mask
// gives an undefined value: the emulator gives NaN).
template <typename T>
__global__ void shuffle_in_partial_warp(const T* __restrict__ x, T* __restrict__ sums, int n) {
    long long i = thread_in_grid();
    unsigned threads = blockDim.x * blockDim.y * blockDim.z, first = thread_in_block() / 32 * 32;
    unsigned lanes = threads - first < 32 ? threads - first : 32, lane = thread_in_block() % 32;
    unsigned mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
    T v = i < n ? x[i] : T(0);
    for (unsigned offset = 16; offset > 0; offset /= 2) {
        T other = __shfl_down_sync(mask, v, offset);
        if (lane + offset < lanes) v += other;
    }
    if (lane == 0) sums[i / 32] = v;
}

// Bug: the same without the check, in a warp of 24 lanes: lane 8 adds what lane 24 (which
// does not exist) "sent", an undefined value.
template <typename T>
__global__ void shuffle_from_missing_lanes(const T* __restrict__ x, T* __restrict__ sums, int n) {
    long long i = thread_in_grid();
    T v = i < n ? x[i] : T(0);
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0x00ffffffu, v, offset);
    if (thread_in_block() % 32 == 0) sums[i / 32] = v;
}

// Bug: even lanes shuffle down, odd lanes up: every lane a mask names must make one call.
template <typename T>
__global__ void lanes_disagree(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = thread_in_grid();
    T v = i < n ? x[i] : T(0);
    v = i % 2 ? __shfl_up_sync(0xffffffffu, v, 1) : __shfl_down_sync(0xffffffffu, v, 1);
    if (i < n) y[i] = v;
}

// Bug: lanes 0-15 read lanes 16-31, which their mask does not name: undefined values.
template <typename T>
__global__ void read_lane_outside_mask(const T* __restrict__ x, T* __restrict__ y,
                                       int* __restrict__ indexes, int n) {
    long long i = thread_in_grid();
    unsigned lane = thread_in_block() % 32;
    T v = i < n ? x[i] : T(0);
    int index = (int)i;
    if (lane < 16) {
        v = __shfl_sync(0x0000ffffu, v, (int)lane + 16);
        index = __shfl_sync(0x0000ffffu, index, (int)lane + 16);
    }
    if (i < n) {
        y[i] = v;
        indexes[i] = index;
    }
}

// Bug: lane 0 waits at __syncthreads() while the others shuffle with a mask naming it.
template <typename T>
__global__ void shuffle_against_barrier(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = thread_in_grid();
    T v = i < n ? x[i] : T(0);
    if (thread_in_block() == 0) __syncthreads();
    else v = __shfl_xor_sync(0xffffffffu, v, 1);
    if (thread_in_block() != 0) __syncthreads();
    if (i < n) y[i] = v;
}

// Correct: the shuffles with a width, the votes, and the shuffle of each element type the
// launcher passes (T and int). Per thread, eight results: broadcast from lane 0 of each
// group of `width`, shuffle up by 1 within the group, ballot, any, all of x > 0, the
// value of lane (lane + 3) % 32 as T and as an int, and the butterfly of width 8.
template <typename T>
__global__ void warp_functions(const T* __restrict__ x, T* __restrict__ out, int width) {
    long long i = thread_in_grid();
    unsigned lane = thread_in_block() % 32;
    T v = x[i];
    int positive = v > T(0);
    T* row = out + i * 8;
    row[0] = __shfl_sync(0xffffffffu, v, 0, width);
    row[1] = __shfl_up_sync(0xffffffffu, v, 1, width);
    row[2] = T(__ballot_sync(0xffffffffu, positive));
    row[3] = T(__any_sync(0xffffffffu, positive));
    row[4] = T(__all_sync(0xffffffffu, positive));
    row[5] = __shfl_sync(0xffffffffu, v, (int)(lane + 3) % 32);
    row[6] = T(__shfl_sync(0xffffffffu, (int)i, (int)(lane + 3) % 32));
    row[7] = __shfl_xor_sync(0xffffffffu, v, 1, 8) + __shfl_xor_sync(0xffffffffu, v, 4, 8);
}

// ---- warp-synchronous shared memory --------------------------------------------------------
// Correct: one warp per block sums 64 values in shared memory, lane by lane, with a
// __syncwarp() between the rounds (the lanes of one warp are ordered only by it).
template <typename T>
__global__ void warp_shared_sum(const T* __restrict__ x, T* __restrict__ sums) {
    __shared__ T partial[64];
    unsigned lane = threadIdx.x;
    partial[lane] = x[blockIdx.x * 64 + lane];
    partial[lane + 32] = x[blockIdx.x * 64 + lane + 32];
    __syncwarp();
    for (unsigned stride = 32; stride > 0; stride /= 2) {
        if (lane < stride) partial[lane] += partial[lane + stride];
        __syncwarp();
    }
    if (lane == 0) sums[blockIdx.x] = partial[0];
}

// Bug: the same without the __syncwarp() between rounds.
template <typename T>
__global__ void warp_shared_sum_unsynced(const T* __restrict__ x, T* __restrict__ sums) {
    __shared__ T partial[64];
    unsigned lane = threadIdx.x;
    partial[lane] = x[blockIdx.x * 64 + lane];
    partial[lane + 32] = x[blockIdx.x * 64 + lane + 32];
    __syncwarp();
    for (unsigned stride = 32; stride > 0; stride /= 2) {
        if (lane < stride) partial[lane] += partial[lane + stride];
    }
    if (lane == 0) sums[blockIdx.x] = partial[0];
}

// Bug: lanes 0-15 and 16-31 each sync among themselves (two half-warp masks), then lane 0
// reads what lane 16 wrote: no sync of theirs lies between.
template <typename T>
__global__ void half_warps_then_across(const T* __restrict__ x, T* __restrict__ y) {
    __shared__ T slot[32];
    unsigned lane = threadIdx.x;
    slot[lane] = x[lane];
    __syncwarp(lane < 16 ? 0x0000ffffu : 0xffff0000u);
    y[lane] = slot[lane ^ 16];
}

// Correct: the same with one full-warp sync.
template <typename T>
__global__ void full_warp_then_across(const T* __restrict__ x, T* __restrict__ y) {
    __shared__ T slot[32];
    unsigned lane = threadIdx.x;
    slot[lane] = x[lane];
    __syncwarp();
    y[lane] = slot[lane ^ 16];
}

// ---- atomics -------------------------------------------------------------------------------
// Correct: CUDA's atomics on each type the kernels pass, each on its own element: sum[0] +=
// x (atomicAdd on T); ints: the max and min of x, the count, a flag set from -1 to 7 by
// atomicCAS and how many threads saw -1 (one); counts: how many x > 0, the bits i % 32
// (atomicOr); wide: the max of x * 10^12 (atomicMax on long long), a count (atomicAdd on
// unsigned long long).
template <typename T>
__global__ void atomics(const T* __restrict__ x, T* __restrict__ sum, int* __restrict__ ints,
                        unsigned int* __restrict__ counts, long long* __restrict__ wide, int n) {
    long long i = thread_in_grid();
    if (i >= n) return;
    atomicAdd(&sum[0], x[i]);
    atomicMax(&ints[0], (int)x[i]);
    atomicMin(&ints[1], (int)x[i]);
    atomicAdd(&ints[2], 1);
    if (atomicCAS(&ints[3], -1, 7) == -1) atomicAdd(&ints[4], 1);   // one thread wins
    atomicAdd(&counts[0], x[i] > T(0) ? 1u : 0u);
    atomicOr(&counts[1], 1u << (i % 32));
    atomicMax(&wide[0], (long long)x[i] * 1000000000000ll);
    atomicAdd((unsigned long long*)&wide[1], 1ull);
}

// Bug: a histogram by plain increments; two threads with the same bin lose an update.
template <typename T>
__global__ void histogram_plain(const T* __restrict__ x, int* __restrict__ bins, int n) {
    long long i = thread_in_grid();
    if (i < n) bins[(int)x[i]] += 1;
}

// Correct: the same with atomicAdd.
template <typename T>
__global__ void histogram_atomic(const T* __restrict__ x, int* __restrict__ bins, int n) {
    long long i = thread_in_grid();
    if (i < n) atomicAdd(&bins[(int)x[i]], 1);
}

// Not deterministic: the first thread to get there claims the slot, and which one that is
// depends on the order threads run in.
template <typename T>
__global__ void claim_first(const T* __restrict__ x, int* __restrict__ winner, int n) {
    long long i = thread_in_grid();
    if (i < n && x[i] > T(-100)) atomicCAS(&winner[0], -1, (int)i);
}
