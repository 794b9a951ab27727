// dist_mpi.c — MPI start-up and the collectives on host buffers (see dist.h). Compiled
// into every build, empty unless -DMNRL_MPI=ON.
#ifdef MNRL_HAVE_MPI
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "mnrl/dist.h"

// Our own communicator (a duplicate of MPI_COMM_WORLD), so that a library that also uses
// MPI cannot match our messages; errors come back as codes instead of ending the process.
static MPI_Comm dist_comm = MPI_COMM_NULL;
static int we_initialised_mpi = 0;

static int mpi_fail(MnrlError *err, const char *what, int code) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "code %d", code);
    return mnrl_fail(err, "dist: %s failed: %s", what, text);
}

#define MPI_TRY(call, err)                                      \
    do {                                                        \
        int mpi_code_ = (call);                                 \
        if (mpi_code_ != MPI_SUCCESS) return mpi_fail((err), #call, mpi_code_); \
    } while (0)

// MPI counts are int: larger buffers are a caller's mistake here (a gradient of 2^31 floats
// would be 8 GB), reported rather than truncated.
static int mpi_count(size_t count, int *out, MnrlError *err) {
    if (count > (size_t)INT_MAX)
        return mnrl_fail(err, "dist: %zu elements in one MPI call, over MPI's limit of %d", count,
                         INT_MAX);
    *out = (int)count;
    return 0;
}

int dist_mpi_start(MnrlDist *d, MnrlError *err) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
        if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
            return mnrl_fail(err, "dist: MPI_Init failed; check the MPI installation and the "
                             "launch command (mpirun -np N ./mnrl_cuda ...)");
        we_initialised_mpi = 1;
    }
    MPI_TRY(MPI_Comm_dup(MPI_COMM_WORLD, &dist_comm), err);
    MPI_TRY(MPI_Comm_set_errhandler(dist_comm, MPI_ERRORS_RETURN), err);
    MPI_TRY(MPI_Comm_rank(dist_comm, &d->rank), err);
    MPI_TRY(MPI_Comm_size(dist_comm, &d->world), err);
    // The local rank is the rank among the processes sharing this node's memory.
    MPI_Comm node;
    MPI_TRY(MPI_Comm_split_type(dist_comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), err);
    int local = 0;
    int code = MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
    if (code != MPI_SUCCESS) return mpi_fail(err, "MPI_Comm_rank(node)", code);
    d->local_rank = local;
    return 0;
}

int dist_mpi_broadcast_bytes(void *buf, size_t bytes, int root, MnrlError *err) {
    int n = 0;
    if (mpi_count(bytes, &n, err) != 0) return -1;
    MPI_TRY(MPI_Bcast(buf, n, MPI_BYTE, root, dist_comm), err);
    return 0;
}

void dist_mpi_finish(void) {
    if (dist_comm != MPI_COMM_NULL) MPI_Comm_free(&dist_comm);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (we_initialised_mpi && !finalized) MPI_Finalize();
    we_initialised_mpi = 0;
}

void dist_mpi_abort(int code) {
    int initialised = 0, finalized = 0;
    MPI_Initialized(&initialised);
    MPI_Finalized(&finalized);
    if (initialised && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
}

// ---- the collectives ------------------------------------------------------------------------

static int mpi_all_gather(MnrlDist *d, float *out, const float *in, size_t count, int blocks,
                          MnrlError *err) {
    int n = 0;
    if (mpi_count(count, &n, err) != 0) return -1;
    for (int blk = 0; blk < blocks; blk++) {
        MPI_TRY(MPI_Allgather(in + (size_t)blk * count, n, MPI_FLOAT,
                              out + (size_t)blk * (size_t)d->world * count, n, MPI_FLOAT,
                              dist_comm), err);
    }
    return 0;
}

static int mpi_reduce_scatter(MnrlDist *d, float *out, const float *in, size_t count,
                              int blocks, MnrlError *err) {
    int n = 0;
    if (mpi_count(count, &n, err) != 0) return -1;
    for (int blk = 0; blk < blocks; blk++) {
        MPI_TRY(MPI_Reduce_scatter_block(in + (size_t)blk * (size_t)d->world * count,
                                         out + (size_t)blk * count, n, MPI_FLOAT, MPI_SUM,
                                         dist_comm), err);
    }
    return 0;
}

static int mpi_all_reduce(MnrlDist *d, float *buf, size_t count, MnrlError *err) {
    (void)d;
    int n = 0;
    if (mpi_count(count, &n, err) != 0) return -1;
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, dist_comm), err);
    return 0;
}

static int mpi_broadcast(MnrlDist *d, void *buf, size_t bytes, int root, MnrlError *err) {
    if (root < 0 || root >= d->world)
        return mnrl_fail(err, "dist: broadcast from rank %d of %d", root, d->world);
    return dist_mpi_broadcast_bytes(buf, bytes, root, err);
}

static int mpi_barrier(MnrlDist *d, MnrlError *err) {
    (void)d;
    MPI_TRY(MPI_Barrier(dist_comm), err);
    return 0;
}

static int mpi_any(MnrlDist *d, int flag, int *any, MnrlError *err) {
    (void)d;
    int mine = flag != 0;
    MPI_TRY(MPI_Allreduce(&mine, any, 1, MPI_INT, MPI_LOR, dist_comm), err);
    return 0;
}

static void mpi_abort(MnrlDist *d, int code) {
    (void)d;
    dist_mpi_abort(code);
}

// The communicator lives until dist_mpi_finish (dist_close calls it after this).
static void mpi_close(MnrlDist *d) {
    (void)d;
}

static const MnrlDistOps mpi_ops = {
    "mpi", mpi_all_gather, mpi_reduce_scatter, mpi_all_reduce, mpi_broadcast, mpi_barrier,
    mpi_any, mpi_abort, mpi_close,
};

const MnrlDistOps *dist_mpi_ops(void) {
    return &mpi_ops;
}

#endif
