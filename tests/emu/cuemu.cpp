// cuemu.cpp — the runtime behind cuemu.h: fibers, the block scheduler, barriers and warp
// collectives with deadlock reports, and the CUDA runtime API as host memory operations.
// Scheduling: a block's threads are fibers run round by round in the chosen order
// (CUEMU_ORDER); a fiber runs until it reaches a barrier, a warp collective or its end.
// A round in which no fiber can run is a deadlock: the launch stops with a report of
// where each thread waits, instead of hanging.
#include "cuemu.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#error "cuemu switches fibers with x86-64 assembly"
#endif

// cuemu_switch(save, load): saves the callee-saved registers on the current stack, stores
// the stack pointer in *save, and resumes the context whose stack pointer is load.
extern "C" void cuemu_switch(void **save_sp, void *load_sp);
asm(R"(
    .pushsection .text
    .globl cuemu_switch
    .type cuemu_switch, @function
cuemu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuemu_switch, .-cuemu_switch
    .popsection
)");

namespace cuemu {

const uint3 *current_thread_idx;
uint3 block_idx;
dim3 block_dim, grid_dim;
unsigned char *dynamic_smem;

namespace {

// Kernel frames are small, but ASan's redzones make them several times larger. The
// lowest page of each stack is a guard page, so an overflow faults instead of corrupting.
#ifdef __SANITIZE_ADDRESS__
const size_t kStackBytes = 1 << 20;
#else
const size_t kStackBytes = 256 << 10;
#endif
const size_t kDefaultSmemLimit = 48 << 10;
// The largest opt-in dynamic shared memory per block of an H100 (sm_90): 227 KiB.
const size_t kMaxSmemOptin = 227 << 10;

enum FiberState { RUNNABLE, AT_BARRIER, AT_WARP, EXITED };

struct Fiber {
    uint3 idx;
    int linear;
    char *stack;  // lowest address of the mapping (the guard page)
    void *sp;
    FiberState state;
    const char *what, *file;  // where it waits
    int line;
    int predicate, barrier_result;
    WarpKind warp_kind;
    unsigned warp_mask;
    uint64_t warp_value, warp_result;
    int warp_param, warp_width;
    WarpOp warp_op;
    void *asan_fake_stack;
};

enum Order { FORWARD, REVERSE, RANDOM };

struct Runtime {
    bool initialised;
    Order order;
    uint64_t rng;
    std::vector<char *> stacks;
    bool stacks_poisoned;  // an aborted launch left ASan stack poison on them
    std::vector<Fiber> fibers;
    std::vector<int> schedule;
    int nthreads, arrived;
    BarrierKind barrier_kind;
    KernelBody body;
    void *body_ctx;
    Fiber *self;
    void *scheduler_sp;
    const void *asan_scheduler_bottom;
    size_t asan_scheduler_size;
    void *asan_scheduler_fake;
    bool failed;
    char report[8192];
    cudaError_t last_error;
    std::vector<std::pair<const void *, int>> smem_limits;
} rt;

uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int parse_order(const char *name, Order *out) {
    if (strcmp(name, "forward") == 0) *out = FORWARD;
    else if (strcmp(name, "reverse") == 0) *out = REVERSE;
    else if (strcmp(name, "random") == 0) *out = RANDOM;
    else return -1;
    return 0;
}

void init_once() {
    if (rt.initialised) return;
    rt.initialised = true;
    rt.order = FORWARD;
    const char *order = getenv("CUEMU_ORDER");
    if (order && *order && parse_order(order, &rt.order) != 0) {
        fprintf(stderr, "cuemu: CUEMU_ORDER=%s is not forward, reverse or random; using forward\n", order);
    }
    const char *seed = getenv("CUEMU_SEED");
    rt.rng = seed ? strtoull(seed, NULL, 10) : 20240607u;
}

// Puts the scheduling order of n items (threads of a block, or blocks) into out.
void make_order(int n, std::vector<int> *out) {
    out->resize(n);
    for (int i = 0; i < n; i++) (*out)[i] = rt.order == REVERSE ? n - 1 - i : i;
    if (rt.order == RANDOM) {
        for (int i = n - 1; i > 0; i--) std::swap((*out)[i], (*out)[splitmix64(&rt.rng) % (uint64_t)(i + 1)]);
    }
}

cudaError_t fail_launch(cudaError_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cudaError_t fail_launch(cudaError_t code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rt.report, sizeof rt.report, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", rt.report);
    rt.last_error = code;
    return code;
}

// ---- fibers ----------------------------------------------------------------------------

void fiber_main();

void asan_start_switch(void **fake_save, const void *bottom, size_t size) {
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_start_switch_fiber(fake_save, bottom, size);
#else
    (void)fake_save, (void)bottom, (void)size;
#endif
}

void asan_finish_switch(void *fake, const void **bottom_old, size_t *size_old) {
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_finish_switch_fiber(fake, bottom_old, size_old);
#else
    (void)fake, (void)bottom_old, (void)size_old;
#endif
}

char *stack_for(int i) {
    while ((int)rt.stacks.size() <= i) {
        void *p = mmap(NULL, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "cuemu: cannot map a %zu-byte fiber stack\n", kStackBytes);
            abort();
        }
        mprotect(p, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE);
        rt.stacks.push_back(static_cast<char *>(p));
    }
    return rt.stacks[i];
}

// A fresh context whose first switch "returns" into fiber_main with the stack aligned as
// at a function entry: six zeroed callee-saved registers, then fiber_main, then a null
// return address (which also ends frame-pointer unwinding).
void *initial_context(char *stack) {
    uintptr_t top = ((uintptr_t)(stack + kStackBytes)) & ~(uintptr_t)15;
    void **sp = reinterpret_cast<void **>(top);
    *--sp = NULL;
    *--sp = reinterpret_cast<void *>(&fiber_main);
    for (int i = 0; i < 6; i++) *--sp = NULL;
    return sp;
}

void run_fiber(Fiber *f) {
    rt.self = f;
    current_thread_idx = &f->idx;
    asan_start_switch(&rt.asan_scheduler_fake, f->stack, kStackBytes);
    cuemu_switch(&rt.scheduler_sp, f->sp);
    asan_finish_switch(rt.asan_scheduler_fake, NULL, NULL);
    rt.self = NULL;
}

// Back to the scheduler; returns when the scheduler runs this fiber again.
void yield_to_scheduler(bool exiting) {
    Fiber *f = rt.self;
    asan_start_switch(exiting ? NULL : &f->asan_fake_stack, rt.asan_scheduler_bottom, rt.asan_scheduler_size);
    cuemu_switch(&f->sp, rt.scheduler_sp);
    asan_finish_switch(f->asan_fake_stack, &rt.asan_scheduler_bottom, &rt.asan_scheduler_size);
}

void fiber_main() {
    asan_finish_switch(NULL, &rt.asan_scheduler_bottom, &rt.asan_scheduler_size);
    rt.body(rt.body_ctx);
    rt.self->state = EXITED;
    yield_to_scheduler(true);
    __builtin_unreachable();
}

// Called from a fiber that found a bug: records the report and leaves the fiber for good.
[[noreturn]] void fail_from_fiber(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void fail_from_fiber(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rt.report, sizeof rt.report, fmt, ap);
    va_end(ap);
    rt.failed = true;
    yield_to_scheduler(true);
    __builtin_unreachable();
}

// ---- deadlock report -----------------------------------------------------------------------

// Lists where the threads of the block stand, one line per distinct place.
void describe_threads(char *out, size_t cap) {
    size_t used = 0;
    std::vector<bool> listed(rt.nthreads, false);
    for (int i = 0; i < rt.nthreads && used < cap; i++) {
        if (listed[i]) continue;
        const Fiber &a = rt.fibers[i];
        int count = 0;
        for (int j = i; j < rt.nthreads; j++) {
            const Fiber &b = rt.fibers[j];
            bool same = b.state == a.state && (a.state == EXITED || a.state == RUNNABLE ||
                        (b.line == a.line && strcmp(b.what, a.what) == 0 && strcmp(b.file, a.file) == 0));
            if (same) listed[j] = true, count++;
        }
        int n;
        if (a.state == EXITED || a.state == RUNNABLE)
            n = snprintf(out + used, cap - used, "\n  %d thread(s) from thread %d (%u,%u,%u): %s", count, i,
                         a.idx.x, a.idx.y, a.idx.z, a.state == EXITED ? "exited" : "runnable");
        else
            n = snprintf(out + used, cap - used, "\n  %d thread(s) from thread %d (%u,%u,%u): wait at %s, %s:%d",
                         count, i, a.idx.x, a.idx.y, a.idx.z, a.what, a.file, a.line);
        used += n > 0 ? (size_t)n : 0;
    }
}

void report_deadlock() {
    bool at_barrier = false;
    for (int i = 0; i < rt.nthreads; i++) at_barrier |= rt.fibers[i].state == AT_BARRIER;
    char where[6144];
    where[0] = '\0';
    describe_threads(where, sizeof where);
    snprintf(rt.report, sizeof rt.report,
             "cuemu: block (%u,%u,%u): %s; no thread can proceed:%s", block_idx.x,
             block_idx.y, block_idx.z,
             at_barrier ? "divergent barrier: not every thread of the block reached the same barrier"
                        : "deadlock: a warp collective waits for lanes of its mask that never arrive",
             where);
}

// ---- barriers ----------------------------------------------------------------------------

void release_barrier() {
    const Fiber &first = rt.fibers[0];
    int count = 0;
    for (int i = 0; i < rt.nthreads; i++) {
        const Fiber &f = rt.fibers[i];
        if (f.line != first.line || strcmp(f.file, first.file) != 0 || strcmp(f.what, first.what) != 0) {
            char where[6144];
            where[0] = '\0';
            describe_threads(where, sizeof where);
            fail_from_fiber("cuemu: block (%u,%u,%u): divergent barrier: the threads wait at different barriers:%s",
                            block_idx.x, block_idx.y, block_idx.z, where);
        }
        count += f.predicate != 0;
    }
    int result = 0;
    switch (rt.barrier_kind) {
    case BAR_SYNC: break;
    case BAR_COUNT: result = count; break;
    case BAR_AND: result = count == rt.nthreads; break;
    case BAR_OR: result = count > 0; break;
    }
    for (int i = 0; i < rt.nthreads; i++) {
        rt.fibers[i].state = RUNNABLE;
        rt.fibers[i].barrier_result = result;
    }
    rt.arrived = 0;
}

// ---- warp collectives --------------------------------------------------------------------

// The lane whose value lane receives, per CUDA's shuffle rules with sub-warp width.
int source_lane(WarpKind kind, int lane, int param, int width) {
    int segment = lane & ~(width - 1);
    switch (kind) {
    case WARP_SHFL_IDX: return segment + (param & (width - 1));
    case WARP_SHFL_UP: return (lane - segment) >= param ? lane - param : lane;
    case WARP_SHFL_DOWN: return (lane - segment) + param < width ? lane + param : lane;
    case WARP_SHFL_XOR: {
        int src = lane ^ param;
        return src >= segment + width ? lane : src;  // later segments are out of reach
    }
    default: return lane;
    }
}

void complete_warp(int base, unsigned mask) {
    const Fiber &first = rt.fibers[base + __builtin_ctz(mask)];
    uint64_t ballot = 0;
    for (int lane = 0; lane < 32; lane++) {
        if (!(mask >> lane & 1)) continue;
        const Fiber &f = rt.fibers[base + lane];
        const bool other_site = f.warp_kind == WARP_APPLY &&
                                (f.warp_op != first.warp_op || f.line != first.line || strcmp(f.file, first.file) != 0);
        if (f.warp_kind != first.warp_kind || other_site)
            fail_from_fiber("cuemu: block (%u,%u,%u) warp %d: lanes meet at different collectives: %s at %s:%d and %s at %s:%d",
                            block_idx.x, block_idx.y, block_idx.z, base / 32, first.what, first.file, first.line,
                            f.what, f.file, f.line);
        if (f.warp_value) ballot |= 1ull << lane;
    }
    if (first.warp_kind == WARP_APPLY) {  // mask is the whole warp (warp_apply)
        void *lanes[32];
        for (int lane = 0; lane < 32; lane++) lanes[lane] = reinterpret_cast<void *>(rt.fibers[base + lane].warp_value);
        first.warp_op(lanes, first.what, first.file, first.line);
    }
    for (int lane = 0; lane < 32; lane++) {
        if (!(mask >> lane & 1)) continue;
        Fiber &f = rt.fibers[base + lane];
        if (f.warp_kind == WARP_BALLOT) {
            f.warp_result = ballot;
        } else {
            int src = source_lane(f.warp_kind, lane, f.warp_param, f.warp_width);
            if (!(mask >> src & 1))
                fail_from_fiber("cuemu: %s at %s:%d: lane %d of warp %d reads lane %d, which is not in mask 0x%08x",
                                f.what, f.file, f.line, lane, base / 32, src, mask);
            f.warp_result = rt.fibers[base + src].warp_value;
        }
    }
    for (int lane = 0; lane < 32; lane++)
        if (mask >> lane & 1) rt.fibers[base + lane].state = RUNNABLE;
}

// ---- running a block ---------------------------------------------------------------------

void unpoison_stacks() {
#ifdef __SANITIZE_ADDRESS__
    if (!rt.stacks_poisoned) return;
    for (char *s : rt.stacks) ASAN_UNPOISON_MEMORY_REGION(s + sysconf(_SC_PAGESIZE), kStackBytes - sysconf(_SC_PAGESIZE));
#endif
    rt.stacks_poisoned = false;
}

// Runs every thread of the current block to its end; false after a deadlock or a bug
// report (rt.report says which).
bool run_block() {
    unsigned n = 0;
    for (unsigned z = 0; z < block_dim.z; z++)
        for (unsigned y = 0; y < block_dim.y; y++)
            for (unsigned x = 0; x < block_dim.x; x++, n++) {
                Fiber &f = rt.fibers[n];
                f = Fiber();
                f.idx = make_uint3(x, y, z);
                f.linear = (int)n;
                f.stack = stack_for((int)n);
                f.sp = initial_context(f.stack);
                f.state = RUNNABLE;
            }
    rt.arrived = 0;
    int live = rt.nthreads;
    while (live > 0) {
        bool ran = false;
        make_order(rt.nthreads, &rt.schedule);
        for (int i : rt.schedule) {
            Fiber *f = &rt.fibers[i];
            if (f->state != RUNNABLE) continue;
            run_fiber(f);
            ran = true;
            if (rt.failed) return false;
            live -= f->state == EXITED;
        }
        if (!ran) {
            report_deadlock();
            return false;
        }
    }
    return true;
}

bool valid_config(dim3 grid, dim3 block) {
    uint64_t threads = (uint64_t)block.x * block.y * block.z;
    return threads >= 1 && threads <= 1024 && block.x <= 1024 && block.y <= 1024 && block.z <= 64 &&
           grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 0x7fffffffu && grid.y <= 65535 && grid.z <= 65535;
}

size_t smem_limit(const void *kernel) {
    for (const auto &entry : rt.smem_limits)
        if (entry.first == kernel) return (size_t)entry.second;
    return kDefaultSmemLimit;
}

}  // namespace

int block_barrier(BarrierKind kind, int predicate, const char *what, const char *file, int line) {
    Fiber *f = rt.self;
    f->state = AT_BARRIER;
    f->what = what, f->file = file, f->line = line;
    f->predicate = predicate;
    rt.barrier_kind = kind;
    if (++rt.arrived == rt.nthreads) release_barrier();
    yield_to_scheduler(false);
    return f->barrier_result;
}

uint64_t warp_collective(WarpKind kind, unsigned mask, uint64_t value, int param, int width,
                         const char *what, const char *file, int line) {
    Fiber *f = rt.self;
    int lane = f->linear % 32, base = f->linear - lane;
    int lanes = std::min(32, rt.nthreads - base);
    unsigned existing = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
    if (!(mask >> lane & 1))
        fail_from_fiber("cuemu: %s at %s:%d: mask 0x%08x does not name the calling lane %d (thread %d)", what,
                        file, line, mask, lane, f->linear);
    if (mask & ~existing)
        fail_from_fiber("cuemu: %s at %s:%d: mask 0x%08x names lanes beyond the block's last thread (warp %d has %d lanes)",
                        what, file, line, mask, base / 32, lanes);
    if (width < 1 || width > 32 || (width & (width - 1)))
        fail_from_fiber("cuemu: %s at %s:%d: width %d is not a power of two in [1, 32]", what, file, line, width);
    f->state = AT_WARP;
    f->what = what, f->file = file, f->line = line;
    f->warp_kind = kind, f->warp_mask = mask, f->warp_value = value;
    f->warp_param = param, f->warp_width = width;
    bool complete = true;
    for (int l = 0; l < lanes && complete; l++) {
        const Fiber &peer = rt.fibers[base + l];
        if (mask >> l & 1) complete = peer.state == AT_WARP && peer.warp_mask == mask;
    }
    if (complete) complete_warp(base, mask);
    yield_to_scheduler(false);
    return f->warp_result;
}

void warp_apply(WarpOp op, void *ctx, const char *what, const char *file, int line) {
    rt.self->warp_op = op;
    warp_collective(WARP_APPLY, 0xffffffffu, reinterpret_cast<uintptr_t>(ctx), 0, 32, what, file, line);
}

void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char message[sizeof rt.report];
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    fail_from_fiber("%s", message);
}

cudaError_t launch(const void *kernel, const char *name, dim3 grid, dim3 block, size_t smem,
                   cudaStream_t stream, KernelBody body, void *ctx, const char *file, int line) {
    (void)stream;  // one in-order queue: everything completes before launch returns
    init_once();
    if (rt.self)
        return fail_launch(cudaErrorNotSupported, "cuemu: %s:%d: kernel %s launched from device code (not emulated)",
                           file, line, name);
    if (!valid_config(grid, block))
        return fail_launch(cudaErrorInvalidConfiguration,
                           "cuemu: %s:%d: kernel %s: invalid launch grid (%u,%u,%u) block (%u,%u,%u)", file, line,
                           name, grid.x, grid.y, grid.z, block.x, block.y, block.z);
    if (smem > smem_limit(kernel))
        return fail_launch(cudaErrorInvalidValue,
                           "cuemu: %s:%d: kernel %s: %zu bytes of dynamic shared memory exceed the limit of %zu "
                           "(raise it with cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, n))",
                           file, line, name, smem, smem_limit(kernel));
    unpoison_stacks();
    rt.nthreads = (int)(block.x * block.y * block.z);
    rt.fibers.resize(rt.nthreads);
    rt.body = body, rt.body_ctx = ctx;
    rt.failed = false;
    block_dim = block, grid_dim = grid;
    void *smem_buffer = NULL;
    if (posix_memalign(&smem_buffer, 16, smem ? smem : 1) != 0) abort();
    dynamic_smem = static_cast<unsigned char *>(smem_buffer);
    uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;
    std::vector<int> block_order;
    make_order((int)std::min<uint64_t>(blocks, 0x7fffffff), &block_order);
    bool ok = true;
    for (size_t b = 0; b < block_order.size() && ok; b++) {
        uint64_t id = (uint64_t)block_order[b];
        block_idx = make_uint3((unsigned)(id % grid.x), (unsigned)(id / grid.x % grid.y), (unsigned)(id / grid.x / grid.y));
        memset(dynamic_smem, 0xFF, smem);
        ok = run_block();
    }
    free(smem_buffer);
    dynamic_smem = NULL;
    if (ok) return cudaSuccess;
    rt.stacks_poisoned = true;  // the abandoned fibers' frames
    char detail[sizeof rt.report];
    memcpy(detail, rt.report, sizeof detail);
    return fail_launch(cudaErrorLaunchFailure, "%s\n  (kernel %s launched at %s:%d)", detail, name, file, line);
}

}  // namespace cuemu

using cuemu::rt;

extern "C" int cuemu_set_order(const char *name) {
    cuemu::init_once();
    return cuemu::parse_order(name, &rt.order);
}

extern "C" const char *cuemu_last_report(void) { return rt.report; }

// ---- the CUDA runtime API over host memory -------------------------------------------------
// Device memory is host memory; every call completes before it returns, so streams and
// events only keep time.

struct CUstream_st {
    int unused;
};
struct CUevent_st {
    double seconds;
};

static cudaError_t record_error(cudaError_t code) {
    if (code != cudaSuccess) rt.last_error = code;
    return code;
}

cudaError_t cudaMalloc(void **ptr, size_t size) {
    if (!ptr) return record_error(cudaErrorInvalidValue);
    *ptr = NULL;
    if (size == 0) return cudaSuccess;
    if (posix_memalign(ptr, 256, size) != 0) return record_error(cudaErrorMemoryAllocation);
    memset(*ptr, 0xFF, size);  // uninitialised device memory reads as NaN / -1, not 0
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t size) { return cudaMalloc(ptr, size); }
cudaError_t cudaFreeHost(void *ptr) { return cudaFree(ptr); }

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    (void)kind;
    if (count && (!dst || !src)) return record_error(cudaErrorInvalidValue);
    if (count) memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream) {
    (void)stream;
    return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemset(void *ptr, int value, size_t count) {
    if (count && !ptr) return record_error(cudaErrorInvalidValue);
    if (count) memset(ptr, value, count);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream) {
    (void)stream;
    return cudaMemset(ptr, value, count);
}

cudaError_t cudaMemcpyToSymbol(const void *symbol, const void *src, size_t count, size_t offset, enum cudaMemcpyKind kind) {
    return cudaMemcpy(static_cast<char *>(const_cast<void *>(symbol)) + offset, src, count, kind);
}

cudaError_t cudaMemcpyFromSymbol(void *dst, const void *symbol, size_t count, size_t offset, enum cudaMemcpyKind kind) {
    return cudaMemcpy(dst, static_cast<const char *>(symbol) + offset, count, kind);
}

cudaError_t cudaDeviceSynchronize(void) { return rt.last_error; }

cudaError_t cudaStreamCreate(cudaStream_t *stream) {
    if (!stream) return record_error(cudaErrorInvalidValue);
    *stream = new CUstream_st();
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    (void)flags;
    return cudaStreamCreate(stream);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    (void)stream;
    return rt.last_error;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
    if (!event) return record_error(cudaErrorInvalidValue);
    *event = new CUevent_st();
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
    (void)flags;
    return cudaEventCreate(event);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    (void)stream;
    if (!event) return record_error(cudaErrorInvalidResourceHandle);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    event->seconds = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    (void)event;
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    if (!ms || !start || !end) return record_error(cudaErrorInvalidValue);
    *ms = (float)((end->seconds - start->seconds) * 1e3);
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t code = rt.last_error;
    rt.last_error = cudaSuccess;
    return code;
}

cudaError_t cudaPeekAtLastError(void) { return rt.last_error; }

const char *cudaGetErrorName(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorLaunchFailure: return "unspecified launch failure (cuemu: see the report on stderr)";
    case cudaErrorNotSupported: return "operation not supported";
    default: return "unknown error";
    }
}

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;  // hints only
    if (value < 0 || (size_t)value > cuemu::kMaxSmemOptin) return record_error(cudaErrorInvalidValue);
    for (auto &entry : rt.smem_limits)
        if (entry.first == func) {
            entry.second = value;
            return cudaSuccess;
        }
    rt.smem_limits.emplace_back(func, value);
    return cudaSuccess;
}

// One emulated device that looks like an H100 where kernels can tell.
cudaError_t cudaGetDeviceCount(int *count) {
    if (!count) return record_error(cudaErrorInvalidValue);
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : record_error(cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int *device) {
    if (!device) return record_error(cudaErrorInvalidValue);
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
    if (!prop || device != 0) return record_error(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "cuemu (CUDA emulated on the CPU)");
    prop->major = 9, prop->minor = 0;
    prop->totalGlobalMem = (size_t)16 << 30;
    prop->sharedMemPerBlock = cuemu::kDefaultSmemLimit;
    prop->sharedMemPerBlockOptin = cuemu::kMaxSmemOptin;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsDim[0] = 1024, prop->maxThreadsDim[1] = 1024, prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 0x7fffffff, prop->maxGridSize[1] = 65535, prop->maxGridSize[2] = 65535;
    prop->multiProcessorCount = 1;
    prop->regsPerBlock = 65536;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
    if (!value || device != 0) return record_error(cudaErrorInvalidValue);
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)cuemu::kDefaultSmemLimit; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)cuemu::kMaxSmemOptin; break;
    case cudaDevAttrMultiProcessorCount: *value = 1; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    default: return record_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version) {
    if (!version) return record_error(cudaErrorInvalidValue);
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version) { return cudaRuntimeGetVersion(version); }
