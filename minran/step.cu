// The CUDA twin of step.py's bookkeeping after each training step, in one launch.
#include "functional/common.cuh"

// totals, in float64 whatever the network's dtype (one read brings them all back):
//   [0] the sum of each batch's mean loss times its size   [1] correct predictions
//   [2] images counted                                      [3] the number of the next step
//   (counted from 1 over the run)                           [4] the first step whose loss was
//   not a finite number, or -1                              [5] that loss
// One block: each thread finds the predictions (the first largest logit, or the first NaN,
// as NumPy's argmax) of some rows, the block adds up the correct ones, and thread 0 updates
// the totals.
template <typename T>
__global__ void step_totals(const T* __restrict__ loss, const T* __restrict__ logits,
                            const long long* __restrict__ labels, double* __restrict__ totals,
                            int N, int K) {
    long long correct = 0;
    for (long long n = threadIdx.x; n < N; n += MINRAN_BLOCK) {
        const T* z = logits + (long long)n * K;
        int best = 0;
        T top = z[0];
        for (int k = 1; k < K; ++k) {
            if (z[k] > top || (z[k] != z[k] && top == top)) {
                top = z[k];
                best = k;
            }
        }
        correct += best == labels[n] ? 1 : 0;
    }
    const long long total = block_sum(correct);
    if (threadIdx.x == 0) {
        const T l = loss[0];
        totals[0] += (double)(l * T(N));
        totals[1] += (double)total;
        totals[2] += N;
        if (!isfinite(l) && totals[4] < 0) {
            totals[4] = totals[3];
            totals[5] = (double)l;
        }
        totals[3] += 1;
    }
}
