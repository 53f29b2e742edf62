// The CUDA names a kernel uses, given a meaning on the CPU, so that a kernel's own .cu
// source can be compiled by the system C++ compiler and run on NumPy arrays (emulator.py).
//
// Each CUDA thread of a block is a fiber inside one OS thread: the scheduler runs the
// threads of one block one after another, each until it returns or reaches
// __syncthreads(), then releases the barrier and goes round again. A fiber starts on its
// own stack through ucontext (makecontext/setcontext) and later switches use
// _setjmp/_longjmp, which, unlike swapcontext, make no system call. One block at a time, in
// an order chosen per launch (forward, reverse or shuffled), so a missing barrier or a race
// between threads changes the answer, and emulator.py runs every launch in all three.
// A barrier that some threads of the block never reach is reported, not waited for.
#pragma once

#include <math.h>     // exp, sqrt, ... with their float overloads, as CUDA has them
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <cstdio>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// ---- the CUDA names --------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static   // one block runs at a time, so a static is the block's memory

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

// Set by the scheduler before it switches to a thread: one OS thread runs them all.
static uint3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;

namespace minran_emulator { inline void barrier(); }
inline void __syncthreads() { minran_emulator::barrier(); }

inline int max(int a, int b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline float __int_as_float(int bits) { float v; memcpy(&v, &bits, sizeof v); return v; }
inline double __longlong_as_double(long long bits) { double v; memcpy(&v, &bits, sizeof v); return v; }

// ---- the scheduler ---------------------------------------------------------------------
namespace minran_emulator {

enum State { RUNNABLE, AT_BARRIER, FINISHED };

struct Fiber {
    ucontext_t start;   // the fresh stack and entry point, used once
    jmp_buf resume;     // where it stopped at a barrier
    bool started;
    State state;
    uint3 index;
};

struct Block {
    jmp_buf scheduler;
    std::vector<Fiber> fibers;
    Fiber* current = nullptr;
    void (*body)(void*) = nullptr;
    void* closure = nullptr;
};

static Block* running = nullptr;
static const size_t STACK_BYTES = 64 * 1024;

// Shared memory: the kernels' __shared__ statics, found by emulator.py in the built
// library's symbol table and filled with NaN bytes (0xFF) before every block, so a thread
// that reads shared memory nobody wrote sees NaN instead of a previous block's values.
static std::vector<std::pair<char*, size_t>> shared_regions;

inline void fill_shared_memory() {
    for (auto& region : shared_regions) memset(region.first, 0xFF, region.second);
}

inline void barrier() {
    Fiber* self = running->current;
    self->state = AT_BARRIER;
    if (_setjmp(self->resume) == 0) _longjmp(running->scheduler, 1);
    asm volatile("" ::: "memory");   // other threads wrote shared memory meanwhile: reload it
}

inline void fiber_main() {
    running->body(running->closure);
    running->current->state = FINISHED;
    _longjmp(running->scheduler, 1);   // never returns: the scheduler goes on
}

// Stacks for every thread of a block, kept between launches; a guard page under each
// turns a stack overflow into a crash instead of a silent overwrite of its neighbour.
inline char* stacks(size_t threads) {
    static char* memory = nullptr;
    static size_t have = 0;
    if (threads > have) {
        if (memory) munmap(memory, have * (STACK_BYTES + 4096));
        void* m = mmap(nullptr, threads * (STACK_BYTES + 4096), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return nullptr;
        memory = static_cast<char*>(m);
        have = threads;
        for (size_t t = 0; t < threads; ++t) mprotect(memory + t * (STACK_BYTES + 4096), 4096, PROT_NONE);
    }
    return memory;
}

// Runs every thread of the current block; returns an error message or nullptr.
inline const char* run_block(Block& block, const std::vector<unsigned>& order, char* error, size_t size) {
    char* stack = stacks(block.fibers.size());
    if (!stack) return "emulator: could not allocate thread stacks";
    ucontext_t blank;
    getcontext(&blank);
    for (size_t t = 0; t < block.fibers.size(); ++t) {
        Fiber& f = block.fibers[t];
        f.start = blank;
        f.start.uc_stack.ss_sp = stack + t * (STACK_BYTES + 4096) + 4096;
        f.start.uc_stack.ss_size = STACK_BYTES;
        f.start.uc_link = nullptr;
        makecontext(&f.start, fiber_main, 0);
        f.started = false;
        f.state = RUNNABLE;
    }
    for (;;) {
        for (unsigned t : order) {
            Fiber& f = block.fibers[t];
            if (f.state != RUNNABLE) continue;
            threadIdx = f.index;
            block.current = &f;
            if (_setjmp(block.scheduler) == 0) {   // back here when f stops or returns
                if (!f.started) {
                    f.started = true;
                    setcontext(&f.start);
                }
                _longjmp(f.resume, 1);
            }
        }
        size_t waiting = 0, finished = 0;
        for (Fiber& f : block.fibers) (f.state == AT_BARRIER ? waiting : finished) += 1;
        if (waiting == 0) return nullptr;
        if (finished) {
            snprintf(error, size, "__syncthreads() in block (%u,%u,%u) was reached by %zu "
                     "threads while %zu threads of the block returned without reaching it "
                     "(on a GPU: a hang or undefined behaviour)", blockIdx.x, blockIdx.y,
                     blockIdx.z, waiting, finished);
            return error;
        }
        for (Fiber& f : block.fibers) f.state = RUNNABLE;
    }
}

// The launch of one kernel instantiation: grid and block sizes, an order for blocks and
// threads (0 forward, 1 reverse, 2 shuffled with `seed`), and the arguments as CuPy passes
// them, one pointer to each argument's bytes.
template <typename... Params, size_t... I>
int launch_impl(void (*kernel)(Params...), const unsigned* grid, const unsigned* block_size,
                int order_kind, unsigned seed, void** args, char* error, int error_size,
                std::index_sequence<I...>) {
    std::tuple<std::decay_t<Params>...> values{*static_cast<std::decay_t<Params>*>(args[I])...};
    struct Closure { void (*kernel)(Params...); std::tuple<std::decay_t<Params>...>* values; } closure{kernel, &values};
    Block block;
    block.closure = &closure;
    block.body = [](void* c) {
        Closure* k = static_cast<Closure*>(c);
        std::apply(k->kernel, *k->values);
    };
    gridDim = dim3(grid[0], grid[1], grid[2]);
    blockDim = dim3(block_size[0], block_size[1], block_size[2]);
    size_t threads = size_t(blockDim.x) * blockDim.y * blockDim.z;
    size_t blocks = size_t(gridDim.x) * gridDim.y * gridDim.z;
    block.fibers.resize(threads);
    for (size_t t = 0; t < threads; ++t)
        block.fibers[t].index = uint3{unsigned(t % blockDim.x), unsigned(t / blockDim.x % blockDim.y),
                                      unsigned(t / (size_t(blockDim.x) * blockDim.y))};
    unsigned state = seed * 2654435761u + 12345u;
    auto arrange = [&](size_t n) {
        std::vector<unsigned> order(n);
        for (size_t i = 0; i < n; ++i) order[i] = unsigned(order_kind == 1 ? n - 1 - i : i);
        if (order_kind == 2)
            for (size_t i = n; i > 1; --i) {   // Fisher-Yates with a small LCG: reproducible
                state = state * 1664525u + 1013904223u;
                std::swap(order[i - 1], order[(state >> 8) % i]);
            }
        return order;
    };
    std::vector<unsigned> block_order = arrange(blocks);
    running = &block;
    for (unsigned b : block_order) {
        blockIdx = uint3{unsigned(b % gridDim.x), unsigned(b / gridDim.x % gridDim.y),
                         unsigned(b / (size_t(gridDim.x) * gridDim.y))};
        fill_shared_memory();
        if (run_block(block, arrange(threads), error, size_t(error_size))) { running = nullptr; return 1; }
    }
    running = nullptr;
    return 0;
}

template <typename... Params>
int launch(void (*kernel)(Params...), const unsigned* grid, const unsigned* block,
           int order, unsigned seed, void** args, char* error, int error_size) {
    return launch_impl(kernel, grid, block, order, seed, args, error, error_size,
                       std::index_sequence_for<Params...>{});
}

// The C type of each parameter as the compiler sees it, so emulator.py can check that every
// argument has exactly that type (CuPy would pass a Python int as 8 bytes to an `int`).
template <typename P> struct type_name;   // a parameter of another type does not build
#define MINRAN_TYPE_NAME(type) \
    template <> struct type_name<type> { static constexpr const char* value = #type; };
MINRAN_TYPE_NAME(int) MINRAN_TYPE_NAME(long long) MINRAN_TYPE_NAME(unsigned int)
MINRAN_TYPE_NAME(float) MINRAN_TYPE_NAME(double)
MINRAN_TYPE_NAME(float*) MINRAN_TYPE_NAME(const float*)
MINRAN_TYPE_NAME(double*) MINRAN_TYPE_NAME(const double*)
MINRAN_TYPE_NAME(int*) MINRAN_TYPE_NAME(const int*)
MINRAN_TYPE_NAME(long long*) MINRAN_TYPE_NAME(const long long*)
#undef MINRAN_TYPE_NAME

template <typename... Params>
const char* signature(void (*)(Params...)) {
    static std::string joined = [] {
        std::string s;
        for (const char* name : {type_name<Params>::value...}) s += (s.empty() ? "" : ",") + std::string(name);
        return s;
    }();
    return joined.c_str();
}

}  // namespace minran_emulator

#define MINRAN_EXPORT extern "C" __attribute__((visibility("default")))

MINRAN_EXPORT void minran_set_shared_regions(char** starts, size_t* sizes, int n) {
    minran_emulator::shared_regions.clear();
    for (int i = 0; i < n; ++i) minran_emulator::shared_regions.emplace_back(starts[i], sizes[i]);
}
// Its address locates the library's symbols for emulator.py.
extern "C" { __attribute__((visibility("default"))) char minran_anchor = 0; }

// One exported launcher and signature per kernel instantiation (emulator.py writes these).
#define MINRAN_KERNEL(symbol, ...)                                                          \
    MINRAN_EXPORT int symbol(const unsigned* g, const unsigned* b, int o, unsigned s,       \
                             void** a, char* e, int n) {                                    \
        return minran_emulator::launch(&__VA_ARGS__, g, b, o, s, a, e, n);                  \
    }                                                                                       \
    MINRAN_EXPORT const char* symbol##_signature() { return minran_emulator::signature(&__VA_ARGS__); }
