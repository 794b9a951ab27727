// self_asan.cu — cuemu negative self-test for the sanitizer build: out-of-bounds accesses
// in emulated kernels are caught by AddressSanitizer at the kernel's line — a read past a
// cudaMalloc buffer, a write past the dynamic shared memory, and an overrun of a local
// array on a fiber's stack. Each runs in a child process whose report the parent checks.
// Without ASan (the plain build) the test is skipped.
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "mnrl/cuda_launch.h"
#include "test.h"

__global__ void read_past_end(const float *in, float *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[0] += in[i];  // off by one: i == n reads past the buffer
}

__global__ void write_past_smem(int words) {
    int *tile = reinterpret_cast<int *>(mnrl_dyn_smem);
    tile[threadIdx.x + 1] = 1;  // the last thread writes one word past the buffer
    (void)words;
}

// Out of line, so that UBSan cannot see the array's size and ASan must catch the overrun.
__device__ __attribute__((noinline)) void store(int *p, int i) { p[i] = i; }

__global__ void overrun_local(int n, int *out) {
    int local[8];
    for (int i = 0; i < n; i++) store(local, i);  // n = 9: one past the array
    out[threadIdx.x] = local[threadIdx.x % 8];
}

static void run_case(int which) {
    if (which == 0) {
        const int n = 100;
        float *in, *out;
        cudaMalloc(&in, n * sizeof(float));
        cudaMalloc(&out, sizeof(float));
        CUDA_LAUNCH(1, 128, 0, 0, read_past_end)(in, out, n);
    } else if (which == 1) {
        CUDA_LAUNCH(1, 64, 64 * sizeof(int), 0, write_past_smem)(64);
    } else {
        int *out;
        cudaMalloc(&out, 32 * sizeof(int));
        volatile int n = 9;
        CUDA_LAUNCH(1, 32, 0, 0, overrun_local)(n, out);
    }
}

// Runs case `which` in a child; returns its stderr, and whether it failed.
static std::string run_child(int which, bool *child_failed) {
    int fds[2];
    if (pipe(fds) != 0) return "";
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        run_case(which);
        _exit(0);  // reached only when ASan missed the bug
    }
    close(fds[1]);
    std::string text;
    char buf[4096];
    ssize_t got;
    while ((got = read(fds[0], buf, sizeof buf)) > 0) text.append(buf, (size_t)got);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    *child_failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return text;
}

#ifdef __SANITIZE_ADDRESS__
static const bool kHaveAsan = true;
#else
static const bool kHaveAsan = false;
#endif

int main(void) {
    if (!kHaveAsan) SKIP("out-of-bounds detection needs the AddressSanitizer build (-DMNRL_SANITIZE=ON)");
    const char *expected[][2] = {{"heap-buffer-overflow", "read_past_end"},
                                 {"heap-buffer-overflow", "write_past_smem"},
                                 {"stack-buffer-overflow", "overrun_local"}};
    for (int which = 0; which < 3; which++) {
        bool failed = false;
        std::string report = run_child(which, &failed);
        CHECK_MSG(failed, "case %d: the child exited cleanly; ASan missed the bug", which);
        CHECK_CONTAINS(report.c_str(), expected[which][0]);
        CHECK_CONTAINS(report.c_str(), expected[which][1]);
        if (test_failures) fprintf(stderr, "child report:\n%s\n", report.c_str());
    }
    TEST_END();
}
