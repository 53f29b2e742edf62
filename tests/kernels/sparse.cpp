// Chosen blocks of a launch far larger than the CPU could run whole, on arrays far larger
// than its memory: the index arithmetic of the kernels at sizes past 2^31 elements
// (test_huge_launches.py). The arrays are mappings nobody pays for until a page is written
// (only the planted values and the outputs of the chosen blocks are), with an inaccessible
// zone on each side wider than any wrapped 32-bit index reaches.
//
// Compiled with emulator.h for CUDA's names but without the emulator's checks (its record of
// every element would take 120 bytes per element: hundreds of GB here) and without fibers:
// the kernels run here have one thread per element and no __syncthreads(), so a thread is a
// plain call. -fsanitize=signed-integer-overflow with traps stops the run at the first `int`
// product or sum that overflows (SIGILL); an index that wraps without a signed overflow (an
// unsigned product) lands in a guard zone (SIGSEGV) or on the wrong element, which the test
// sees in the values.
#include <setjmp.h>
#include <signal.h>

namespace minran_sparse {

static sigjmp_buf jump;
static volatile sig_atomic_t caught;
static void* volatile fault_address;

static void on_signal(int number, siginfo_t* info, void*) {
    caught = number;
    fault_address = info->si_addr;
    siglongjmp(jump, 1);
}

// Runs every thread of each block in `blocks` (grid `grid` blocks of MINRAN_BLOCK threads).
// Returns 0, or the signal that stopped it, with where[] = {block, thread, address}.
template <typename... Params, size_t... I>
int run_impl(void (*kernel)(Params...), unsigned grid, const unsigned* blocks, int count,
             void** args, long long* where, std::index_sequence<I...>) {
    std::tuple<std::decay_t<Params>...> values{*static_cast<std::decay_t<Params>*>(args[I])...};
    struct sigaction handler {}, old_segv {}, old_ill {}, old_bus {};
    handler.sa_sigaction = on_signal;
    handler.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&handler.sa_mask);
    sigaction(SIGSEGV, &handler, &old_segv);
    sigaction(SIGILL, &handler, &old_ill);
    sigaction(SIGBUS, &handler, &old_bus);
    gridDim = dim3(grid);
    blockDim = dim3(MINRAN_BLOCK);
    static volatile int b;
    static volatile unsigned t;
    int result = 0;
    caught = 0;
    if (sigsetjmp(jump, 1) == 0) {
        for (b = 0; b < count; ++b) {
            blockIdx = uint3{blocks[b], 0, 0};
            for (t = 0; t < MINRAN_BLOCK; ++t) {
                threadIdx = uint3{t, 0, 0};
                std::apply(kernel, values);
            }
        }
    } else {
        result = caught;
        where[0] = blocks[b];
        where[1] = t;
        where[2] = (long long)(uintptr_t)fault_address;
    }
    sigaction(SIGSEGV, &old_segv, nullptr);
    sigaction(SIGILL, &old_ill, nullptr);
    sigaction(SIGBUS, &old_bus, nullptr);
    return result;
}

template <typename... Params>
int run(void (*kernel)(Params...), unsigned grid, const unsigned* blocks, int count, void** args,
        long long* where) {
    return run_impl(kernel, grid, blocks, count, args, where, std::index_sequence_for<Params...>{});
}

}  // namespace minran_sparse

#define MINRAN_SPARSE(symbol, ...)                                                           \
    extern "C" __attribute__((visibility("default"))) int symbol(                            \
        unsigned grid, const unsigned* blocks, int count, void** args, long long* where) {   \
        return minran_sparse::run(&__VA_ARGS__, grid, blocks, count, args, where);           \
    }
