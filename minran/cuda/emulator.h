// The CUDA names a kernel uses, given a meaning on the CPU, so that a kernel's own .cu
// source can be compiled by the system C++ compiler and run on NumPy arrays (emulator.py).
//
// Threads. Each CUDA thread of a block is a fiber inside one OS thread: the scheduler runs
// the threads of one block one after another, each until it returns or reaches a barrier,
// then releases the barrier and goes round again. A fiber starts by pointing the stack
// register at its own stack and calling its body (setcontext where that is not x86-64);
// later switches use _setjmp/_longjmp, which make no system call. One block at a time, in
// an order chosen per launch (forward, reverse or shuffled); emulator.py runs every launch
// in all three.
//
// Warps. Threads 0-31 of a block (numbered x fastest, then y, then z) are warp 0, and so
// on. A __shfl_*_sync, vote or __syncwarp is a barrier among the lanes its mask names: each
// lane parks its value and stops; once every named lane is there, the scheduler hands each
// its result. A mask that leaves out the calling lane, names a lane that has returned or
// does not exist, or lanes that disagree on the call are errors, not undefined results; a
// shuffle from a lane outside the mask gets NaN (0xA5 bytes for an integer), CUDA's
// undefined value, as an output nobody wrote.
//
// Memory. emulator.py compiles the kernels with g++'s -fsanitize=thread instrumentation but
// without its run-time library: the compiler then calls __tsan_read4(address),
// __tsan_write8(address), ... before every load and store a kernel makes (through its
// parameters, through any pointer it derives from them, in any helper it calls), and this
// header defines those functions. Each access is looked up among the launch's arrays (each
// one a copy that emulator.py placed between inaccessible guard pages) and the shared
// arrays, and checked before it happens:
//   - in bounds: an access outside an array (into its guard zone) or next to a shared
//     array (every shared array starts on a 64 KiB boundary and CUDA allows at most 48 KiB,
//     so at least 16 KiB after each belongs to no shared array) stops the launch, naming
//     the thread, the argument and the element;
//   - no data race: every element keeps a short record of who touched it. Two different
//     threads touching one element, at least one of them writing, is a race unless a
//     __syncthreads() of their block (or, within one warp, a __syncwarp or shuffle that
//     both took part in) lies between them; threads of different blocks are never ordered.
//     Atomics are exempt among themselves, not against plain reads and writes.
//   - no write to a const array, and no read of an element before any thread wrote it in
//     an array emulator.py marks as a pure output.
// Accesses the instrumentation does not see (a loop the compiler turned into memset) still
// hit the guard pages: a SIGSEGV handler turns that fault into the same kind of report.
#pragma once

#include <math.h>     // exp, sqrt, ... with their float overloads, as CUDA has them
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <cstdio>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

// The emulator's own code is not instrumented: its loads and stores are not the kernel's.
// MINRAN_RUNTIME functions are also never inlined into a kernel (which is instrumented).
#define MINRAN_UNSEEN __attribute__((no_sanitize_thread))
#define MINRAN_RUNTIME __attribute__((no_sanitize_thread, noinline))

// ---- the CUDA names --------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// One block runs at a time, so a static is the block's memory. The alignment keeps every
// shared array at least 16 KiB away from any other (see the bounds checks above).
#define __shared__ static __attribute__((aligned(65536)))

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

// Set by the scheduler before it switches to a thread: one OS thread runs them all. Aligned
// like shared arrays, so that none of them can sit next to one.
static __attribute__((aligned(65536))) uint3 threadIdx;
static __attribute__((aligned(65536))) uint3 blockIdx;
static __attribute__((aligned(65536))) dim3 blockDim;
static __attribute__((aligned(65536))) dim3 gridDim;
static constexpr int warpSize = 32;

inline int max(int a, int b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline float __int_as_float(int bits) { float v; memcpy(&v, &bits, sizeof v); return v; }
inline double __longlong_as_double(long long bits) { double v; memcpy(&v, &bits, sizeof v); return v; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float rsqrt(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned int)x) : 32; }

namespace minran_emulator {

enum State { RUNNABLE, AT_BARRIER, AT_WARP, FINISHED };
enum Kind { READ = 0, WRITE = 1, ATOMIC = 2 };
enum WarpOp { SHFL, SHFL_UP, SHFL_DOWN, SHFL_XOR, BALLOT, ANY, ALL, SYNCWARP };
static const char* const WARP_OP_NAMES[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync",
                                            "__shfl_xor_sync", "__ballot_sync", "__any_sync",
                                            "__all_sync", "__syncwarp"};
static const char* const VERBS[] = {"read", "wrote", "atomically updated"};

struct Fiber {
#if !defined(__x86_64__)
    ucontext_t start;   // where it starts, where that needs setcontext
#endif
    jmp_buf resume;     // where it stopped at a barrier
    bool started;
    State state;
    uint3 index;
    unsigned linear;    // x + y * blockDim.x + z * blockDim.x * blockDim.y; lane = linear % 32
    // the warp operation it waits in: its kind, mask, value and lane argument; its result
    int op, arg, width;
    unsigned mask;
    uint64_t value, result, poison;
};

// What the race check needs of a warp: a clock that ticks at every completed warp operation,
// when the last one that every lane of the warp took part in completed, and (only once a
// partial mask was used) when each pair of lanes last met.
struct Warp {
    unsigned clock, full_sync;
    bool has_pairs;
    unsigned pairs[32][32];
};

struct Launch {
    sigjmp_buf abort;      // where any error found during the launch jumps to
    jmp_buf scheduler;
    Fiber* fibers = nullptr;
    unsigned threads = 0;
    Fiber* current = nullptr;
    void (*body)(void*) = nullptr;
    void* closure = nullptr;
    unsigned block_linear = 0, block_run = 0;
    int epoch = 0;         // how many __syncthreads() this block has passed
    char* error = nullptr;
    size_t error_size = 0;
};

static Launch* running = nullptr;
static bool tracking = false;          // true while a kernel's thread runs
static unsigned block_runs = 0;        // numbers every block run, so records know theirs
static const size_t STACK_BYTES = 64 * 1024;
static const size_t SHARED_GAP = 16 * 1024;
static Warp warps[32];                 // 1024 threads at most

// ---- reports ---------------------------------------------------------------------------
[[noreturn]] MINRAN_RUNTIME __attribute__((format(printf, 1, 2)))
void fail(const char* format, ...) {
    tracking = false;
    va_list args;
    va_start(args, format);
    vsnprintf(running->error, running->error_size, format, args);
    va_end(args);
    siglongjmp(running->abort, 1);
}

// "thread (x,y,z) of block (x,y,z)" for a thread and block given by their linear numbers.
struct Who { char text[96]; };
MINRAN_UNSEEN inline Who who(unsigned thread, unsigned block) {
    Who w;
    unsigned bx = block % gridDim.x, by = block / gridDim.x % gridDim.y;
    unsigned bz = block / (gridDim.x * gridDim.y);
    snprintf(w.text, sizeof w.text, "thread (%u,%u,%u) of block (%u,%u,%u)", thread % blockDim.x,
             thread / blockDim.x % blockDim.y, thread / (blockDim.x * blockDim.y), bx, by, bz);
    return w;
}
MINRAN_UNSEEN inline Who me() { return who(running->current->linear, running->block_linear); }

// ---- the race check --------------------------------------------------------------------
// A thread's access, as a record keeps it: which thread of the block, after how many
// __syncthreads(), and at what time of its warp's clock.
struct Slot { int thread; int epoch; unsigned warp_time; };

// Per element (per 4-byte word of shared memory): for each kind of access, up to two threads of
// the block now running that made one, and (global memory only) the first two blocks.
struct Record {
    unsigned block_run;     // the block the slots describe; other values mean none
    Slot recent[3][2];
    int blocks[3][2];       // block's linear number + 1; 0: none
    int block_threads[3][2];
};

MINRAN_UNSEEN inline bool conflict(int a, int b) {
    return !(a == READ && b == READ) && !(a == ATOMIC && b == ATOMIC);
}

// Was `s`, made by another thread of this block, ordered before the current thread's access?
MINRAN_UNSEEN inline bool ordered_before(const Slot& s, unsigned thread, int epoch) {
    if (s.epoch != epoch) return true;                        // a __syncthreads() between
    if ((unsigned)s.thread / 32 != thread / 32) return false;  // other warps meet only there
    const Warp& w = warps[thread / 32];
    return w.full_sync > s.warp_time ||
           (w.has_pairs && w.pairs[s.thread % 32][thread % 32] > s.warp_time);
}

// What was touched, said only when it is reported.
struct Place {
    bool shared;        // a shared array, else an argument
    int index;          // which argument or shared array
    long long element;
};

[[noreturn]] MINRAN_RUNTIME void race(const Place& place, int earlier, unsigned thread,
                                      unsigned block, int kind) {
    Launch& L = *running;
    char where[96];
    snprintf(where, sizeof where, "element %lld of %s %d", place.element,
             place.shared ? "shared array" : "argument", place.index);
    bool same_block = block == L.block_linear;
    bool same_warp = same_block && thread / 32 == L.current->linear / 32;
    fail("data race on %s: %s %s it and %s %s it %s, so the result depends on the order "
         "the threads run in (%s)", where, who(thread, block).text, VERBS[earlier], me().text,
         VERBS[kind],
         !same_block ? "from another block (blocks are never ordered within a launch)"
         : same_warp ? "with no __syncthreads() or __syncwarp() of both between"
                     : "with no __syncthreads() between",
         earlier == ATOMIC || kind == ATOMIC
             ? "an element updated with atomics may be read or written plainly only after a "
               "barrier, or in a later launch"
             : "give each element one writer, put a barrier between, or use an atomic");
}

MINRAN_UNSEEN inline void touch(Record& r, int kind, bool global, const Place& where) {
    Launch& L = *running;
    const unsigned t = L.current->linear;
    const int e = L.epoch;
    if (r.block_run != L.block_run) {
        r.block_run = L.block_run;
        for (auto& slots : r.recent) slots[0].thread = slots[1].thread = -1;
    }
    for (int k = 0; k < 3; ++k) {
        if (!conflict(kind, k)) continue;
        for (const Slot& s : r.recent[k])
            if (s.thread >= 0 && (unsigned)s.thread != t && !ordered_before(s, t, e))
                race(where, k, (unsigned)s.thread, L.block_linear, kind);
        if (global)
            for (int j = 0; j < 2; ++j)
                if (r.blocks[k][j] && (unsigned)(r.blocks[k][j] - 1) != L.block_linear)
                    race(where, k, (unsigned)r.block_threads[k][j],
                         (unsigned)(r.blocks[k][j] - 1), kind);
    }
    // Keep this access. A slot of the same thread, an empty one or one before the last
    // barrier makes room; else one of the same warp that this access now follows; else, if
    // both slots hold one warp, the older, so that two warps are kept. Else it is dropped:
    // the two kept already catch any thread that this one would.
    Slot mine{(int)t, e, warps[t / 32].clock};
    Slot* slots = r.recent[kind];
    Slot* room = nullptr;
    for (int j = 0; j < 2 && !room; ++j)
        if (slots[j].thread == (int)t) room = &slots[j];
    for (int j = 0; j < 2 && !room; ++j)
        if (slots[j].thread < 0 || slots[j].epoch != e) room = &slots[j];
    for (int j = 0; j < 2 && !room; ++j)
        if ((unsigned)slots[j].thread / 32 == t / 32 && ordered_before(slots[j], t, e)) room = &slots[j];
    if (!room && (unsigned)slots[0].thread / 32 == (unsigned)slots[1].thread / 32 &&
        (unsigned)slots[0].thread / 32 != t / 32)
        room = slots[0].warp_time <= slots[1].warp_time ? &slots[0] : &slots[1];
    if (room) *room = mine;
    if (global) {
        int b = (int)L.block_linear + 1;
        int* blocks = r.blocks[kind];
        int j = blocks[0] == b ? 0 : blocks[1] == b ? 1 : !blocks[0] ? 0 : !blocks[1] ? 1 : -1;
        if (j >= 0 && blocks[j] != b) {
            blocks[j] = b;
            r.block_threads[kind][j] = (int)t;
        }
    }
}

// ---- the launch's arrays and shared memory ---------------------------------------------
enum ArrayFlags { CONST = 1, PURE_OUTPUT = 2 };

struct Array {
    uintptr_t zone_lo, zone_hi;   // the whole mapping, guard zones included
    uintptr_t lo, hi;             // the array's bytes inside it
    unsigned itemsize;
    int argument, flags;
    long long n;
    Record* shadow;
    size_t shadow_bytes;
    int read_before_write, wrote;
};

static const int MAX_ARRAYS = 64;
static Array arrays[MAX_ARRAYS];
static int array_count = 0;

struct Region {
    uintptr_t lo, hi;
    Record* shadow;   // one per 4-byte word
};
static Region regions[64];
static int region_count = 0;
static uintptr_t shared_lo = 0, shared_span = 0;   // every region with its gaps

MINRAN_UNSEEN inline long long element_of(uintptr_t a, uintptr_t lo, unsigned size) {
    return a >= lo ? (long long)((a - lo) / size) : -(long long)((lo - a + size - 1) / size);
}

MINRAN_UNSEEN inline void global_access(Array& r, uintptr_t a, size_t size, int kind) {
    long long index = element_of(a, r.lo, r.itemsize);
    if (a < r.lo || a + size > r.hi)
        fail("%s %s element %lld of argument %d, which has %lld elements: out of bounds",
             me().text, VERBS[kind], index, r.argument, r.n);
    if (kind != READ && (r.flags & CONST))
        fail("%s %s element %lld of argument %d, declared const", me().text, VERBS[kind],
             index, r.argument);
    if (kind != READ) r.wrote = 1;
    long long last = element_of(a + size - 1, r.lo, r.itemsize);
    for (long long i = index; i <= last; ++i) {
        Record& rec = r.shadow[i];
        if (kind != WRITE && !rec.blocks[WRITE][0] && !rec.blocks[ATOMIC][0]) {
            r.read_before_write = 1;
            if (r.flags & PURE_OUTPUT)
                fail("%s %s element %lld of argument %d before any thread wrote it, but the "
                     "argument is marked /* out */: a pure output, whose values before the "
                     "launch are garbage (mark it /* in-out */ if the kernel updates it)",
                     me().text, VERBS[kind], i, r.argument);
        }
        touch(rec, kind, true, Place{false, r.argument, i});
    }
}

MINRAN_UNSEEN inline void shared_access(uintptr_t a, size_t size, int kind) {
    for (int i = 0; i < region_count; ++i) {
        Region& r = regions[i];
        if (a >= r.lo && a + size <= r.hi) {
            Place where{true, i, (long long)((a - r.lo) / size)};
            for (uintptr_t word = (a - r.lo) / 4; word <= (a + size - 1 - r.lo) / 4; ++word)
                touch(r.shadow[word], kind, false, where);
            return;
        }
    }
    for (int i = 0; i < region_count; ++i) {
        Region& r = regions[i];
        if (a + size > r.lo - SHARED_GAP && a < r.hi + SHARED_GAP)
            fail("%s %s element %lld of shared array %d, which has %lld elements of %zu bytes: "
                 "out of bounds", me().text, VERBS[kind], element_of(a, r.lo, (unsigned)size), i,
                 (long long)((r.hi - r.lo) / size), size);
    }
    // Far from every shared array: threadIdx and the like, which the kernel may read.
}

// Every instrumented load and store of the kernel comes here.
MINRAN_UNSEEN inline void access(const void* address, size_t size, int kind) {
    if (!tracking) return;
    uintptr_t a = (uintptr_t)address;
    for (int i = 0; i < array_count; ++i)
        if (a - arrays[i].zone_lo < arrays[i].zone_hi - arrays[i].zone_lo) {
            global_access(arrays[i], a, size, kind);
            return;
        }
    if (a - shared_lo < shared_span) shared_access(a, size, kind);
}

MINRAN_RUNTIME void atomic_access(const void* address, size_t size) { access(address, size, ATOMIC); }

// Shared memory: the kernels' __shared__ statics, found by emulator.py in the built
// library's symbol table and filled with NaN bytes (0xFF) before every block, so a thread
// that reads shared memory nobody wrote sees NaN instead of a previous block's values.
MINRAN_UNSEEN inline void fill_shared_memory() {
    for (int i = 0; i < region_count; ++i) memset((void*)regions[i].lo, 0xFF, regions[i].hi - regions[i].lo);
}

// ---- the scheduler ---------------------------------------------------------------------
MINRAN_RUNTIME void barrier() {
    Fiber* self = running->current;
    self->state = AT_BARRIER;
    tracking = false;
    if (_setjmp(self->resume) == 0) _longjmp(running->scheduler, 1);
    // (not inlined: the kernel's compiler reloads shared memory that other threads wrote)
}

MINRAN_RUNTIME void fiber_main() {
    running->body(running->closure);
    tracking = false;
    running->current->state = FINISHED;
    _longjmp(running->scheduler, 1);   // never returns: the scheduler goes on
}

MINRAN_RUNTIME uint64_t warp_op(int op, unsigned mask, uint64_t value, int arg, int width,
                                uint64_t poison = 0) {
    Fiber* self = running->current;
    unsigned lane = self->linear % 32;
    if (!(mask >> lane & 1))
        fail("%s (lane %u of warp %u) called %s with mask 0x%08x, which does not name it "
             "(every lane that makes the call must be in its mask)", me().text, lane,
             self->linear / 32, WARP_OP_NAMES[op], mask);
    if (width < 1 || width > 32 || (width & (width - 1)))
        fail("%s called %s with width %d: it must be a power of 2 from 1 to 32", me().text,
             WARP_OP_NAMES[op], width);
    self->op = op;
    self->mask = mask;
    self->value = value;
    self->arg = arg;
    self->width = width;
    self->poison = poison;
    self->state = AT_WARP;
    tracking = false;
    if (_setjmp(self->resume) == 0) _longjmp(running->scheduler, 1);
    return running->current->result;
}

// The lane a shuffle reads, by PTX's rules for shfl.sync with CUDA's width: a lane outside
// the caller's segment of `width` lanes (or past it, for xor) gives the caller its own value.
MINRAN_UNSEEN inline unsigned source_lane(int op, unsigned lane, int arg, int width) {
    unsigned segment = (unsigned)(32 - width);            // the lane bits that pick a segment
    unsigned b = (unsigned)arg & 31u;
    unsigned first = lane & segment, last = first | (31u & ~segment);
    int j;
    switch (op) {
        case SHFL: j = (int)(first | (b & ~segment)); return (unsigned)j <= last ? (unsigned)j : lane;
        case SHFL_UP: j = (int)lane - (int)b; return j >= (int)first ? (unsigned)j : lane;
        case SHFL_DOWN: j = (int)(lane + b); return (unsigned)j <= last ? (unsigned)j : lane;
        default: j = (int)(lane ^ b); return (unsigned)j <= last ? (unsigned)j : lane;
    }
}

// After a pass: complete every warp operation whose lanes are all there. True if any did.
MINRAN_UNSEEN inline bool complete_warp_operations(Launch& L) {
    bool progress = false;
    for (unsigned w = 0; w * 32 < L.threads; ++w) {
        Fiber* lanes = L.fibers + w * 32;
        unsigned count = L.threads - w * 32 < 32 ? L.threads - w * 32 : 32;
        unsigned existing = count == 32 ? 0xffffffffu : (1u << count) - 1;
        unsigned pending = 0;
        for (unsigned j = 0; j < count; ++j)
            if (lanes[j].state == AT_WARP) pending |= 1u << j;
        while (pending) {
            const Fiber& f = lanes[__builtin_ctz(pending)];
            const unsigned mask = f.mask;
            const char* name = WARP_OP_NAMES[f.op];
            if (mask & ~existing)
                fail("%s called %s with mask 0x%08x, but its warp has only %u threads (lanes "
                     "0-%u): the block has %u", who(f.linear, L.block_linear).text, name, mask,
                     count, count - 1, L.threads);
            for (unsigned j = 0; j < count; ++j) {
                if (!(mask >> j & 1)) continue;
                const Fiber& g = lanes[j];
                if (g.state == FINISHED)
                    fail("%s called %s with mask 0x%08x, which names lane %u, but that lane "
                         "has returned (on a GPU: undefined behaviour)",
                         who(f.linear, L.block_linear).text, name, mask, j);
                if (g.state == AT_BARRIER)
                    fail("%s waits in %s with mask 0x%08x while lane %u, which the mask names, "
                         "waits at __syncthreads() (on a GPU: a hang)",
                         who(f.linear, L.block_linear).text, name, mask, j);
                if (g.op != f.op || g.mask != mask)
                    fail("the lanes of a warp disagree: %s called %s with mask 0x%08x and lane "
                         "%u called %s with mask 0x%08x (every lane a mask names must make the "
                         "same call with the same mask)", who(f.linear, L.block_linear).text,
                         name, mask, j, WARP_OP_NAMES[g.op], g.mask);
            }
            uint64_t votes = 0;
            for (unsigned j = 0; j < count; ++j)
                if ((mask >> j & 1) && lanes[j].value) votes |= 1ull << j;
            for (unsigned j = 0; j < count; ++j) {
                if (!(mask >> j & 1)) continue;
                Fiber& g = lanes[j];
                if (f.op <= SHFL_XOR) {
                    // A lane outside the mask gives an undefined value: garbage, as an
                    // output nobody wrote (NaN, or 0xA5 bytes for integers).
                    unsigned source = source_lane(g.op, j, g.arg, g.width);
                    g.result = mask >> source & 1 ? lanes[source].value : g.poison;
                } else if (f.op == BALLOT) {
                    g.result = votes;
                } else if (f.op == ANY) {
                    g.result = votes != 0;
                } else if (f.op == ALL) {
                    g.result = votes == (uint64_t)mask;
                }
            }
            for (unsigned j = 0; j < count; ++j)
                if (mask >> j & 1) lanes[j].state = RUNNABLE;
            Warp& timing = warps[w];
            timing.clock += 1;
            if (mask == existing) {
                timing.full_sync = timing.clock;
            } else {
                timing.has_pairs = true;
                for (unsigned a = 0; a < count; ++a)
                    for (unsigned b = 0; b < count; ++b)
                        if ((mask >> a & 1) && (mask >> b & 1)) timing.pairs[a][b] = timing.clock;
            }
            pending &= ~mask;
            progress = true;
        }
    }
    return progress;
}

// Stacks for every thread of a block, kept between launches; a guard page under each
// turns a stack overflow into a report instead of a silent overwrite of its neighbour.
static char* stack_memory = nullptr;
static size_t stack_count = 0;

MINRAN_UNSEEN inline char* stacks(size_t threads) {
    if (threads > stack_count) {
        if (stack_memory) munmap(stack_memory, stack_count * (STACK_BYTES + 4096));
        void* m = mmap(nullptr, threads * (STACK_BYTES + 4096), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) { stack_memory = nullptr; stack_count = 0; return nullptr; }
        stack_memory = static_cast<char*>(m);
        stack_count = threads;
        for (size_t t = 0; t < threads; ++t) mprotect(stack_memory + t * (STACK_BYTES + 4096), 4096, PROT_NONE);
    }
    return stack_memory;
}

// Starts fiber t on its own stack: on x86-64 by pointing the stack register at it and
// calling fiber_main (no system call), elsewhere through setcontext (which makes one).
MINRAN_UNSEEN inline char* stack_of(unsigned t) { return stack_memory + t * (STACK_BYTES + 4096) + 4096; }

[[noreturn]] MINRAN_RUNTIME void start_fiber(Fiber& f, unsigned t) {
#if defined(__x86_64__)
    (void)f;
    char* top = stack_of(t) + STACK_BYTES;   // 16-byte aligned, as the call needs
    asm volatile("mov %0, %%rsp\n\t"
                 "xor %%ebp, %%ebp\n\t"
                 "call *%1\n\t"
                 "ud2" : : "r"(top), "r"(fiber_main) : "memory");
    __builtin_unreachable();
#else
    getcontext(&f.start);
    f.start.uc_stack.ss_sp = stack_of(t);
    f.start.uc_stack.ss_size = STACK_BYTES;
    f.start.uc_link = nullptr;
    makecontext(&f.start, fiber_main, 0);
    setcontext(&f.start);
    __builtin_unreachable();
#endif
}

// Runs every thread of the current block.
MINRAN_RUNTIME void run_block(Launch& L, const unsigned* order) {
    if (!stacks(L.threads)) fail("emulator: could not allocate thread stacks");
    for (unsigned t = 0; t < L.threads; ++t) {
        L.fibers[t].started = false;
        L.fibers[t].state = RUNNABLE;
    }
    L.block_run = ++block_runs;
    L.epoch = 0;
    for (unsigned w = 0; w * 32 < L.threads; ++w) {
        if (warps[w].has_pairs) memset(warps[w].pairs, 0, sizeof warps[w].pairs);
        warps[w].clock = warps[w].full_sync = 0;
        warps[w].has_pairs = false;
    }
    fill_shared_memory();
    for (;;) {
        for (unsigned i = 0; i < L.threads; ++i) {
            Fiber& f = L.fibers[order[i]];
            if (f.state != RUNNABLE) continue;
            threadIdx = f.index;
            L.current = &f;
            if (_setjmp(L.scheduler) == 0) {   // back here when f stops or returns
                tracking = true;
                if (!f.started) {
                    f.started = true;
                    start_fiber(f, order[i]);
                }
                _longjmp(f.resume, 1);
            }
        }
        if (complete_warp_operations(L)) continue;
        unsigned waiting = 0, finished = 0;
        for (unsigned t = 0; t < L.threads; ++t) (L.fibers[t].state == AT_BARRIER ? waiting : finished) += 1;
        if (waiting == 0) return;
        if (finished)
            fail("__syncthreads() in block (%u,%u,%u) was reached by %u threads while %u threads "
                 "of the block returned without reaching it (on a GPU: a hang or undefined "
                 "behaviour)", blockIdx.x, blockIdx.y, blockIdx.z, waiting, finished);
        for (unsigned t = 0; t < L.threads; ++t) L.fibers[t].state = RUNNABLE;
        L.epoch += 1;
    }
}

// ---- faults the instrumentation did not see --------------------------------------------
static struct sigaction previous_segv;
static char alternate_stack[64 * 1024];

MINRAN_RUNTIME void on_fault(int, siginfo_t* info, void* context) {
    uintptr_t a = (uintptr_t)info->si_addr;
    if (running && running->current) {
        const char* verb = "touched";
#if defined(__x86_64__)
        verb = (static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_ERR] & 2) ? "wrote" : "read";
#else
        (void)context;
#endif
        for (int i = 0; i < array_count; ++i) {
            Array& r = arrays[i];
            if (a - r.zone_lo < r.zone_hi - r.zone_lo) {
                if (a >= r.lo && a < r.hi)
                    fail("%s wrote element %lld of argument %d, declared const (caught by its "
                         "read-only pages)", me().text, element_of(a, r.lo, r.itemsize), r.argument);
                fail("%s %s element %lld of argument %d, which has %lld elements: out of "
                     "bounds (caught by a guard page)", me().text, verb,
                     element_of(a, r.lo, r.itemsize), r.argument, r.n);
            }
        }
        uintptr_t stacks_lo = (uintptr_t)stack_memory;
        if (a - stacks_lo < stack_count * (STACK_BYTES + 4096) &&
            (a - stacks_lo) % (STACK_BYTES + 4096) < 4096)
            fail("%s overflowed its %zu KiB stack (deep recursion, or a large local array)",
                 me().text, STACK_BYTES / 1024);
    }
    sigaction(SIGSEGV, &previous_segv, nullptr);   // not ours: fault again, as before
}

// ---- one launch ------------------------------------------------------------------------
MINRAN_RUNTIME int run_launch(Launch& L, const unsigned* grid, const unsigned* block_size,
                              int order_kind, unsigned seed, char* error, int error_size) {
    gridDim = dim3(grid[0], grid[1], grid[2]);
    blockDim = dim3(block_size[0], block_size[1], block_size[2]);
    L.error = error;
    L.error_size = (size_t)error_size;
    const unsigned threads = blockDim.x * blockDim.y * blockDim.z;   // at most 1024
    const size_t blocks = size_t(gridDim.x) * gridDim.y * gridDim.z;
    L.threads = threads;
    static Fiber fiber_pool[1024];   // the most threads a block can have
    L.fibers = fiber_pool;
    unsigned* thread_order = static_cast<unsigned*>(malloc(threads * sizeof(unsigned)));
    unsigned* block_order = static_cast<unsigned*>(malloc(blocks * sizeof(unsigned)));
    if (!thread_order || !block_order) {
        free(thread_order); free(block_order);
        snprintf(error, size_t(error_size), "emulator: out of memory for %zu blocks", blocks);
        return 1;
    }
    for (unsigned t = 0; t < threads; ++t) {
        L.fibers[t].index = uint3{t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
        L.fibers[t].linear = t;
    }
    unsigned state = seed * 2654435761u + 12345u;
    auto arrange = [&](unsigned* order, size_t n) {
        for (size_t i = 0; i < n; ++i) order[i] = unsigned(order_kind == 1 ? n - 1 - i : i);
        if (order_kind == 2)
            for (size_t i = n; i > 1; --i) {   // Fisher-Yates with a small LCG: reproducible
                state = state * 1664525u + 1013904223u;
                unsigned j = unsigned((state >> 8) % i), swap = order[i - 1];
                order[i - 1] = order[j];
                order[j] = swap;
            }
    };
    arrange(block_order, blocks);
    for (int i = 0; i < array_count; ++i) {   // a fresh record of every element
        memset(arrays[i].shadow, 0, arrays[i].shadow_bytes);
        arrays[i].read_before_write = arrays[i].wrote = 0;
    }
    stack_t own_stack{}, previous_stack{};
    own_stack.ss_sp = alternate_stack;
    own_stack.ss_size = sizeof alternate_stack;
    sigaltstack(&own_stack, &previous_stack);
    struct sigaction handler {};
    handler.sa_sigaction = on_fault;
    handler.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&handler.sa_mask);
    sigaction(SIGSEGV, &handler, &previous_segv);
    running = &L;
    volatile int failed = 0;
    if (sigsetjmp(L.abort, 1) == 0) {
        for (size_t i = 0; i < blocks; ++i) {
            unsigned b = block_order[i];
            blockIdx = uint3{unsigned(b % gridDim.x), unsigned(b / gridDim.x % gridDim.y),
                             unsigned(b / (size_t(gridDim.x) * gridDim.y))};
            L.block_linear = b;
            arrange(thread_order, threads);
            run_block(L, thread_order);
        }
    } else {
        failed = 1;
    }
    tracking = false;
    running = nullptr;
    sigaction(SIGSEGV, &previous_segv, nullptr);
    sigaltstack(&previous_stack, nullptr);
    free(thread_order);
    free(block_order);
    L.fibers = nullptr;
    return failed ? 1 : 0;
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
    Launch L;
    L.closure = &closure;
    L.body = [](void* c) {
        Closure* k = static_cast<Closure*>(c);
        std::apply(k->kernel, *k->values);
    };
    return run_launch(L, grid, block_size, order_kind, seed, error, error_size);
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
MINRAN_TYPE_NAME(unsigned int*) MINRAN_TYPE_NAME(const unsigned int*)
MINRAN_TYPE_NAME(long long*) MINRAN_TYPE_NAME(const long long*)
#undef MINRAN_TYPE_NAME

template <typename... Params>
MINRAN_UNSEEN const char* signature(void (*)(Params...)) {
    static std::string joined = [] {
        std::string s;
        for (const char* name : {type_name<Params>::value...}) s += (s.empty() ? "" : ",") + std::string(name);
        return s;
    }();
    return joined.c_str();
}

// ---- warp functions and atomics: the values --------------------------------------------
template <typename V>
inline V shuffle(int op, unsigned mask, V var, int arg, int width) {
    static_assert(std::is_arithmetic<V>::value && sizeof(V) <= 8, "shuffles move numbers of up to 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &var, sizeof(V));
    bits = warp_op(op, mask, bits, arg, width,
                   std::is_floating_point<V>::value ? ~0ull : 0xA5A5A5A5A5A5A5A5ull);
    V out;
    memcpy(&out, &bits, sizeof(V));
    return out;
}

// The read and write of an atomic are not instrumented; the access is recorded as ATOMIC.
template <typename V, typename Update>
MINRAN_RUNTIME V atomic_update(V* address, Update update) {
    atomic_access(address, sizeof(V));
    V old = *address;
    *address = update(old);
    return old;
}

}  // namespace minran_emulator

// ---- warp functions --------------------------------------------------------------------
inline void __syncthreads() { minran_emulator::barrier(); }

template <typename V>
inline V __shfl_sync(unsigned mask, V var, int srcLane, int width = warpSize) {
    return minran_emulator::shuffle(minran_emulator::SHFL, mask, var, srcLane, width);
}
template <typename V>
inline V __shfl_up_sync(unsigned mask, V var, unsigned int delta, int width = warpSize) {
    return minran_emulator::shuffle(minran_emulator::SHFL_UP, mask, var, (int)delta, width);
}
template <typename V>
inline V __shfl_down_sync(unsigned mask, V var, unsigned int delta, int width = warpSize) {
    return minran_emulator::shuffle(minran_emulator::SHFL_DOWN, mask, var, (int)delta, width);
}
template <typename V>
inline V __shfl_xor_sync(unsigned mask, V var, int laneMask, int width = warpSize) {
    return minran_emulator::shuffle(minran_emulator::SHFL_XOR, mask, var, laneMask, width);
}
inline unsigned int __ballot_sync(unsigned mask, int predicate) {
    return (unsigned int)minran_emulator::warp_op(minran_emulator::BALLOT, mask, predicate != 0, 0, 32);
}
inline int __any_sync(unsigned mask, int predicate) {
    return (int)minran_emulator::warp_op(minran_emulator::ANY, mask, predicate != 0, 0, 32);
}
inline int __all_sync(unsigned mask, int predicate) {
    return (int)minran_emulator::warp_op(minran_emulator::ALL, mask, predicate != 0, 0, 32);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    minran_emulator::warp_op(minran_emulator::SYNCWARP, mask, 0, 0, 32);
}

// ---- atomics: the overloads CUDA has ---------------------------------------------------
#define MINRAN_ATOMIC(name, type, expression)                                              \
    inline type name(type* address, type val) {                                            \
        return minran_emulator::atomic_update(address, [val](type old) { (void)old; return (type)(expression); }); \
    }
MINRAN_ATOMIC(atomicAdd, int, (unsigned)old + (unsigned)val)   // wraps, as the GPU does
MINRAN_ATOMIC(atomicAdd, unsigned int, old + val)
MINRAN_ATOMIC(atomicAdd, unsigned long long int, old + val)
MINRAN_ATOMIC(atomicAdd, float, old + val)
MINRAN_ATOMIC(atomicAdd, double, old + val)
MINRAN_ATOMIC(atomicSub, int, (unsigned)old - (unsigned)val)
MINRAN_ATOMIC(atomicSub, unsigned int, old - val)
MINRAN_ATOMIC(atomicExch, int, val)
MINRAN_ATOMIC(atomicExch, unsigned int, val)
MINRAN_ATOMIC(atomicExch, unsigned long long int, val)
MINRAN_ATOMIC(atomicExch, float, val)
MINRAN_ATOMIC(atomicMin, int, old < val ? old : val)
MINRAN_ATOMIC(atomicMin, unsigned int, old < val ? old : val)
MINRAN_ATOMIC(atomicMin, long long int, old < val ? old : val)
MINRAN_ATOMIC(atomicMin, unsigned long long int, old < val ? old : val)
MINRAN_ATOMIC(atomicMax, int, old > val ? old : val)
MINRAN_ATOMIC(atomicMax, unsigned int, old > val ? old : val)
MINRAN_ATOMIC(atomicMax, long long int, old > val ? old : val)
MINRAN_ATOMIC(atomicMax, unsigned long long int, old > val ? old : val)
MINRAN_ATOMIC(atomicAnd, int, old & val)
MINRAN_ATOMIC(atomicAnd, unsigned int, old & val)
MINRAN_ATOMIC(atomicAnd, unsigned long long int, old & val)
MINRAN_ATOMIC(atomicOr, int, old | val)
MINRAN_ATOMIC(atomicOr, unsigned int, old | val)
MINRAN_ATOMIC(atomicOr, unsigned long long int, old | val)
MINRAN_ATOMIC(atomicXor, int, old ^ val)
MINRAN_ATOMIC(atomicXor, unsigned int, old ^ val)
MINRAN_ATOMIC(atomicXor, unsigned long long int, old ^ val)
#undef MINRAN_ATOMIC
#define MINRAN_ATOMIC_CAS(type)                                                            \
    inline type atomicCAS(type* address, type compare, type val) {                         \
        return minran_emulator::atomic_update(address, [compare, val](type old) { return old == compare ? val : old; }); \
    }
MINRAN_ATOMIC_CAS(int)
MINRAN_ATOMIC_CAS(unsigned int)
MINRAN_ATOMIC_CAS(unsigned long long int)
#undef MINRAN_ATOMIC_CAS

// ---- the instrumentation's calls (-fsanitize=thread, without its run-time library) -----
#define MINRAN_HOOK(size)                                                                  \
    extern "C" MINRAN_UNSEEN void __tsan_read##size(void* a) { minran_emulator::access(a, size, minran_emulator::READ); } \
    extern "C" MINRAN_UNSEEN void __tsan_write##size(void* a) { minran_emulator::access(a, size, minran_emulator::WRITE); } \
    extern "C" MINRAN_UNSEEN void __tsan_unaligned_read##size(void* a) { minran_emulator::access(a, size, minran_emulator::READ); } \
    extern "C" MINRAN_UNSEEN void __tsan_unaligned_write##size(void* a) { minran_emulator::access(a, size, minran_emulator::WRITE); } \
    extern "C" MINRAN_UNSEEN void __tsan_volatile_read##size(void* a) { minran_emulator::access(a, size, minran_emulator::READ); } \
    extern "C" MINRAN_UNSEEN void __tsan_volatile_write##size(void* a) { minran_emulator::access(a, size, minran_emulator::WRITE); }
MINRAN_HOOK(1) MINRAN_HOOK(2) MINRAN_HOOK(4) MINRAN_HOOK(8) MINRAN_HOOK(16)
#undef MINRAN_HOOK
extern "C" MINRAN_UNSEEN void __tsan_read_range(void* a, unsigned long size) { minran_emulator::access(a, size, minran_emulator::READ); }
extern "C" MINRAN_UNSEEN void __tsan_write_range(void* a, unsigned long size) { minran_emulator::access(a, size, minran_emulator::WRITE); }
extern "C" MINRAN_UNSEEN void __tsan_init() {}
extern "C" MINRAN_UNSEEN void __tsan_func_entry(void*) {}
extern "C" MINRAN_UNSEEN void __tsan_func_exit() {}

// ---- what emulator.py calls ------------------------------------------------------------
#define MINRAN_EXPORT extern "C" __attribute__((visibility("default")))

MINRAN_EXPORT MINRAN_UNSEEN void minran_set_shared_regions(char** starts, size_t* sizes, int n) {
    using namespace minran_emulator;
    for (int i = 0; i < region_count; ++i) free(regions[i].shadow);
    region_count = 0;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < n && i < 64; ++i) {
        Region& r = regions[region_count++];
        r.lo = (uintptr_t)starts[i];
        r.hi = r.lo + sizes[i];
        r.shadow = static_cast<Record*>(calloc(sizes[i] / 4 + 1, sizeof(Record)));
        lo = r.lo - SHARED_GAP < lo ? r.lo - SHARED_GAP : lo;
        hi = r.hi + SHARED_GAP > hi ? r.hi + SHARED_GAP : hi;
    }
    shared_lo = region_count ? lo : 0;
    shared_span = region_count ? hi - lo : 0;
}

// The launch's arrays: for each, its mapping and its bytes, element size, the parameter it
// is passed as, and its flags (1: const, 2: a pure output). Returns 0, or 1 if out of memory.
MINRAN_EXPORT MINRAN_UNSEEN int minran_set_arrays(int n, const uint64_t* zone_lo, const uint64_t* zone_hi,
                                                  const uint64_t* lo, const uint64_t* hi,
                                                  const unsigned* itemsize, const int* argument,
                                                  const int* flags) {
    using namespace minran_emulator;
    for (int i = 0; i < array_count; ++i)
        if (arrays[i].shadow) munmap(arrays[i].shadow, arrays[i].shadow_bytes);
    array_count = 0;
    for (int i = 0; i < n && i < MAX_ARRAYS; ++i) {
        Array& r = arrays[array_count++];
        r.zone_lo = zone_lo[i];
        r.zone_hi = zone_hi[i];
        r.lo = lo[i];
        r.hi = hi[i];
        r.itemsize = itemsize[i];
        r.argument = argument[i];
        r.flags = flags[i];
        r.n = (long long)((r.hi - r.lo) / r.itemsize);
        r.shadow_bytes = (size_t(r.n) + 1) * sizeof(Record);
        void* m = mmap(nullptr, r.shadow_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        r.shadow = m == MAP_FAILED ? nullptr : static_cast<Record*>(m);
        if (!r.shadow) return 1;
    }
    return 0;
}

// After a launch, how it used array i: 1 if it read some element before any thread wrote
// it, plus 2 if it wrote some element.
MINRAN_EXPORT MINRAN_UNSEEN int minran_array_use(int i) {
    return minran_emulator::arrays[i].read_before_write | 2 * minran_emulator::arrays[i].wrote;
}

// After a launch: per element of array i, 0 if no thread wrote it, 1 if only plain writes
// did, 2 if an atomic did.
MINRAN_EXPORT MINRAN_UNSEEN void minran_written(int i, unsigned char* out) {
    using namespace minran_emulator;
    const Array& r = arrays[i];
    for (long long k = 0; k < r.n; ++k)
        out[k] = r.shadow[k].blocks[ATOMIC][0] ? 2 : r.shadow[k].blocks[WRITE][0] ? 1 : 0;
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
