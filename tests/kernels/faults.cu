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

// ---- lost updates and other races on global memory -----------------------------------------
// Bug: a read-modify-write of one element by every thread. With two values the sum is the
// same in any order (a + b = b + a), so only the race check can see it.
template <typename T>
__global__ void accumulate_plainly(const T* __restrict__ x, T* __restrict__ total, int n) {
    long long i = global_index();
    if (i < n) total[0] += x[i];
}

// Correct: the same sum with an atomic.
template <typename T>
__global__ void accumulate_atomically(const T* __restrict__ x, T* __restrict__ total, int n) {
    long long i = global_index();
    if (i < n) atomicAdd(&total[0], x[i]);
}

// Bug: each pair of blocks writes its sum to one slot (blockIdx.x / 2).
template <typename T>
__global__ void two_blocks_one_slot(const T* __restrict__ x, T* __restrict__ sums, int n) {
    long long i = global_index();
    T total = block_sum(i < n ? x[i] : T(0));
    if (threadIdx.x == 0) sums[blockIdx.x / 2] = total;
}

// Bug: shifts y left in place; thread i reads y[i + 1], which thread i + 1 overwrites.
template <typename T>
__global__ void shift_in_place(T* __restrict__ y, int n) {
    long long i = global_index();
    if (i + 1 < n) y[i] = y[i + 1];
}

// Correct: the same shift from a separate input.
template <typename T>
__global__ void shift_from_input(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = global_index();
    if (i + 1 < n) y[i] = x[i + 1];
}

// Bug: reads an element that other threads update atomically in the same launch.
template <typename T>
__global__ void read_while_adding(const T* __restrict__ x, T* __restrict__ total,
                                  T* __restrict__ seen, int n) {
    long long i = global_index();
    if (i >= n) return;
    atomicAdd(&total[0], x[i]);
    if (i == n - 1) seen[0] = total[0];
}

// ---- out of bounds -------------------------------------------------------------------------
// Bug: the last thread reads x[n] (and throws the value away).
template <typename T>
__global__ void read_past_end(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = global_index();
    if (i >= n) return;
    T next = x[i + 1];
    y[i] = i + 1 < n ? next - x[i] : T(0);
}

// Correct: reads x[i + 1] only where it exists.
template <typename T>
__global__ void read_within(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = global_index();
    if (i >= n) return;
    y[i] = i + 1 < n ? x[i + 1] - x[i] : T(0);
}

// Bug: the first thread reads x[-1].
template <typename T>
__global__ void read_before_start(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = global_index();
    if (i < n) y[i] = x[i] - x[i - 1];
}

// Bug: writes `offset` elements past the end of y, far beyond any guard bytes.
template <typename T>
__global__ void write_far_past_end(T* __restrict__ y, int n, int offset) {
    long long i = global_index();
    if (i == 0) y[n + offset] = T(1);
}

// Bug: clears one element too many with memset, which the instrumentation does not see:
// the guard page after y does.
template <typename T>
__global__ void memset_past_end(T* __restrict__ y, int n) {
    if (global_index() == 0) memset(y, 0, sizeof(T) * (n + 1));
}

// Correct: clears exactly n elements with memset.
template <typename T>
__global__ void memset_within(T* __restrict__ y, int n) {
    if (global_index() == 0) memset(y, 0, sizeof(T) * n);
}

// Bug: each thread writes its slot and its right neighbour's in shared memory: the last
// thread writes one past the end of the shared array.
template <typename T>
__global__ void shared_write_past_end(const T* __restrict__ x, T* __restrict__ y, int n) {
    __shared__ T copy[MINRAN_BLOCK];
    long long i = global_index();
    copy[threadIdx.x] = i < n ? x[i] : T(0);
    __syncthreads();
    if (threadIdx.x == MINRAN_BLOCK - 1) copy[threadIdx.x + 1] = T(0);
    __syncthreads();
    if (i < n) y[i] = copy[threadIdx.x];
}

// Bug: thread 0 reads the slot before the shared array.
template <typename T>
__global__ void shared_read_before_start(const T* __restrict__ x, T* __restrict__ y, int n) {
    __shared__ T copy[MINRAN_BLOCK];
    long long i = global_index();
    copy[threadIdx.x] = i < n ? x[i] : T(0);
    __syncthreads();
    int left = (int)threadIdx.x - 1;
    if (i < n) y[i] = copy[threadIdx.x] - copy[left];
}

// Correct: the same difference, with the first thread of the block reading no neighbour.
template <typename T>
__global__ void shared_read_within(const T* __restrict__ x, T* __restrict__ y, int n) {
    __shared__ T copy[MINRAN_BLOCK];
    long long i = global_index();
    copy[threadIdx.x] = i < n ? x[i] : T(0);
    __syncthreads();
    if (i < n) y[i] = copy[threadIdx.x] - (threadIdx.x > 0 ? copy[threadIdx.x - 1] : T(0));
}

// ---- outputs that start as garbage ---------------------------------------------------------
// Bug: `i < n - 1` leaves the last element of y unwritten.
template <typename T>
__global__ void skip_last(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = global_index();
    if (i < n - 1) y[i] = 2 * x[i];
}

// Correct: writes every element.
template <typename T>
__global__ void double_all(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = global_index();
    if (i < n) y[i] = 2 * x[i];
}

// Bug: the last index is never written, in an int array (poisoned with 0xA5 bytes).
template <typename T>
__global__ void index_all_but_last(const T* __restrict__ x, int* __restrict__ where, int n) {
    long long i = global_index();
    if (i < n - 1) where[i] = x[i] > T(0) ? (int)i : -1;
}

// Correct: an in-place update, as sgd_update's p: it reads y before writing it, so the
// emulator does not poison y.
template <typename T>
__global__ void double_in_place(T* __restrict__ y, int n) {
    long long i = global_index();
    if (i < n) y[i] = 2 * y[i];
}

// Bug: adds into an output it declares /* out */ (pure): its values before the launch are
// garbage on a GPU (an empty() array).
template <typename T>
__global__ void add_into_declared_output(const T* __restrict__ x, T* __restrict__ y /* out */, int n) {
    long long i = global_index();
    if (i < n) y[i] += x[i];
}

// Correct: writes the declared output without reading it.
template <typename T>
__global__ void write_declared_output(const T* __restrict__ x, T* __restrict__ y /* out */, int n) {
    long long i = global_index();
    if (i < n) y[i] = x[i];
}

// Correct, and marked so: writes the even elements only, keeping the caller's odd ones.
template <typename T>
__global__ void write_evens_kept(const T* __restrict__ x, T* __restrict__ y /* in-out */, int n) {
    long long i = global_index();
    if (i < n && i % 2 == 0) y[i] = x[i];
}

// The same kernel without the mark: its odd elements are taken for garbage.
template <typename T>
__global__ void write_evens(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = global_index();
    if (i < n && i % 2 == 0) y[i] = x[i];
}

// ---- block sizes ---------------------------------------------------------------------------
// Bug: assumes blocks of MINRAN_BLOCK threads. Launched with other blocks, two threads of
// different blocks write one element (bigger blocks) or elements are never written (smaller).
template <typename T>
__global__ void assume_block_size(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = (long long)blockIdx.x * MINRAN_BLOCK + threadIdx.x;
    if (i < n) y[i] = 2 * x[i];
}

// Correct: reads the block size from blockDim.
template <typename T>
__global__ void any_block_size(const T* __restrict__ x, T* __restrict__ y, int n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = 2 * x[i];
}

// Correct: the transpose of a rows x cols matrix with 2-D blocks (and a 3-D grid whose z
// picks the matrix of a batch), any block shape.
template <typename T>
__global__ void transpose(const T* __restrict__ x, T* __restrict__ y, int rows, int cols) {
    int c = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    int r = (int)(blockIdx.y * blockDim.y + threadIdx.y);
    long long matrix = (long long)blockIdx.z * rows * cols;
    if (r < rows && c < cols) y[matrix + (long long)c * rows + r] = x[matrix + (long long)r * cols + c];
}

// Bug: takes the row from blockDim.x as if blocks were square.
template <typename T>
__global__ void transpose_square_blocks(const T* __restrict__ x, T* __restrict__ y, int rows, int cols) {
    int c = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    int r = (int)(blockIdx.y * blockDim.x + threadIdx.y);
    long long matrix = (long long)blockIdx.z * rows * cols;
    if (r < rows && c < cols) y[matrix + (long long)c * rows + r] = x[matrix + (long long)r * cols + c];
}

// Correct: one value per thread of a 3-D block, numbered as CUDA numbers them.
template <typename T>
__global__ void thread_numbers(T* __restrict__ y) {
    long long t = threadIdx.x + (long long)blockDim.x * (threadIdx.y + (long long)blockDim.y * threadIdx.z);
    long long b = blockIdx.x + (long long)gridDim.x * (blockIdx.y + (long long)gridDim.y * blockIdx.z);
    y[b * blockDim.x * blockDim.y * blockDim.z + t] = T(t * 1000 + b);
}

// Correct: `extra` is written only when asked (as running statistics are only updated in
// training); a launch that does not touch it must leave the caller's values in it.
template <typename T>
__global__ void write_extra_when_asked(const T* __restrict__ x, T* __restrict__ y,
                                       T* __restrict__ extra, int n, int asked) {
    long long i = global_index();
    if (i >= n) return;
    y[i] = x[i];
    if (asked) extra[i] = -x[i];
}
