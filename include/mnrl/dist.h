// dist.h — ranks and collectives (DESIGN §1 "Across ranks", §2 "Distributed").
//
// Start-up: dist_init() finds this process's place (rank, world size, local rank) from the
// launcher, joins the other ranks and picks the collectives:
//   launcher                                  place from            collectives
//   mpirun / srun --mpi (MPI build)           MPI_Init              host: MPI; device: NCCL,
//                                                                   unique id by MPI_Bcast
//   torchrun-style RANK/WORLD_SIZE/LOCAL_RANK  the environment       device: NCCL, unique id
//   or SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID                      through a file in
//                                                                   dist.init_dir
//   none (or world size 1)                    rank 0 of 1           "single": copies, no-ops
// The CPU backend (host memory) needs MPI for more than one rank: the environment launch
// gives no channel to move host data over.
//
// One code path in the trainer: every collective is a call through d->ops, on host buffers
// (CPU backend) or device buffers (CUDA backend: NCCL on one stream, queued in stream
// order, grouped where one call moves several blocks). Every rank makes the same calls in
// the same order with the same sizes.
//
// Errors. A collective that fails returns -1 with a message; the caller then fails as
// usual and main(), after printing the message, calls dist_abort(d, code), which ends
// every rank (choice: abort, not a flag all-reduce at step boundaries, because a rank can
// fail between the collectives of a step, where the others already wait inside one):
// under MPI it is MPI_Abort (mpirun ends all ranks, exit code non-zero); under the
// environment launch the NCCL communicator is aborted and the process exits with the code,
// and the launcher ends the rest (torchrun stops the group when a worker fails; srun with
// --kill-on-bad-exit=1). Planned stops (end of data on one rank, a signal, a target step)
// are agreed with d->ops->any() at step boundaries, so no rank waits for one that left.
#ifndef MNRL_DIST_H
#define MNRL_DIST_H

#include <stddef.h>

#include "mnrl/common.h"
#include "mnrl/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    MNRL_DIST_LAUNCH_SINGLE,  // one process
    MNRL_DIST_LAUNCH_MPI,     // mpirun / srun --mpi: MPI_Init gives the place
    MNRL_DIST_LAUNCH_ENV      // RANK/WORLD_SIZE/LOCAL_RANK or SLURM_PROCID/NTASKS/LOCALID
} MnrlDistLaunch;

// Where this process stands, as the launcher's environment says (before any MPI call).
typedef struct {
    MnrlDistLaunch launch;
    int rank, world, local_rank;
    const char *source;  // what decided, for messages: "RANK/WORLD_SIZE/LOCAL_RANK", ...
} MnrlDistPlace;

// Which memory the collectives' buffers live in.
typedef enum { MNRL_DIST_HOST_MEMORY, MNRL_DIST_DEVICE_MEMORY } MnrlDistMemory;

typedef struct MnrlDist MnrlDist;

// The collectives. fp32 buffers are `float *` in the memory of dist_init; counts are
// elements. Sums are in the implementation's fixed order (deterministic for a given world
// size, not bit-equal across world sizes).
typedef struct {
    const char *name;  // "single", "mpi", "nccl"
    // Block all-gather, rank-major inside each block: in holds `blocks` blocks of count
    // floats; out (blocks · world · count, not overlapping in) receives
    //   out[(blk·world + r)·count + i] = in of rank r [blk·count + i].
    // blocks = 1 is the plain all-gather; blocks = 1 + k gathers MNRL candidates in the
    // global order (all positives rank-major, then each negative column rank-major).
    int (*all_gather)(MnrlDist *d, float *out, const float *in, size_t count, int blocks,
                      MnrlError *err);
    // Its adjoint, summing: in has all_gather's out layout, out (blocks · count) gets
    //   out[blk·count + i] = Σ_r in of rank r [(blk·world + rank)·count + i]   (written).
    int (*reduce_scatter)(MnrlDist *d, float *out, const float *in, size_t count, int blocks,
                          MnrlError *err);
    // buf[i] = Σ_r buf of rank r [i], in place (parameter gradients).
    int (*all_reduce)(MnrlDist *d, float *buf, size_t count, MnrlError *err);
    // Every rank's buf (bytes) becomes root's.
    int (*broadcast)(MnrlDist *d, void *buf, size_t bytes, int root, MnrlError *err);
    // Returns when every rank has called it (device: and this rank's queued work is done).
    int (*barrier)(MnrlDist *d, MnrlError *err);
    // Host ints: *any = 1 when flag is non-zero on at least one rank, else 0, on every rank
    // ("every rank agrees to stop"). Synchronous.
    int (*any)(MnrlDist *d, int flag, int *any, MnrlError *err);
    // Tears the communicator down without waiting for the other ranks (MPI: MPI_Abort,
    // which does not return). Called by dist_abort, not by the trainer.
    void (*abort)(MnrlDist *d, int code);
    // Releases the communicator (after the last collective, on every rank).
    void (*close)(MnrlDist *d);
} MnrlDistOps;

struct MnrlDist {
    int rank, world, local_rank;
    MnrlDistLaunch launch;
    MnrlDistMemory memory;
    const MnrlDistOps *ops;
    void *cuda_stream;  // device memory: the cudaStream_t the collectives are queued on
    void *impl;         // the implementation's state (communicator, scratch)
};

// Reads the launcher's environment for dist.backend (config.h). Errors: an MPI launch of
// more than one rank in a build without MPI and without RANK/WORLD_SIZE or SLURM
// variables; "mpi" in a build without MPI; "env" without the variables; malformed or
// out-of-range values; "single" while a launcher started several ranks.
int dist_discover(MnrlDistBackend backend, MnrlDistPlace *out, MnrlError *err);

// Joins the ranks and sets d up (see the top). output_dir is where the rendezvous file goes
// when cfg->init_dir is "". Device memory with several ranks: dist_init first makes this
// rank's GPU (dist_gpu_index) the current CUDA device, so the caller creates its stream
// after it and sets d->cuda_stream before the first collective (NULL: the default stream);
// one rank keeps the current device. The trainer picks the memory with train_dist_memory.
int dist_init(MnrlDist *d, const MnrlDistConfig *cfg, const char *output_dir,
              MnrlDistMemory memory, MnrlError *err);
// d->ops->close(d) when d was initialised; safe on a zeroed MnrlDist.
void dist_close(MnrlDist *d);
// After a failure on this rank (the message already printed): ends every rank with exit
// code code (> 0), see "Errors" at the top. Returns only when this is the one rank, so the
// caller exits as usual. Also right after a failed dist_init.
void dist_abort(MnrlDist *d, int code);

// The GPU of this rank: its local rank, or 0 when the launcher made exactly one device
// visible to the process (srun --gpus-per-task=1, per-rank CUDA_VISIBLE_DEVICES). Fails
// when the node has fewer visible devices than ranks.
int dist_gpu_index(const MnrlDist *d, int visible_devices, int *gpu, MnrlError *err);

// File rendezvous of the environment launch, also the start-up barrier without MPI: rank 0
// writes `dir/mnrl-rendezvous[-JOB]` atomically (world size, a fresh nonce and payload
// bytes in hex); every other rank waits for it, takes the payload and acknowledges with
// `FILE.rank-R`; rank 0 returns when every rank acknowledged this nonce and then removes
// the files, the others when the file is gone. A file left by an earlier run (other nonce
// or world size) is never taken for this one's. JOB is $SLURM_JOB_ID or
// $TORCHELASTIC_RUN_ID when set, so concurrent jobs can share dir. Waits at most
// timeout_s, then fails naming the file, the timeout and the missing ranks.
// payload: bytes (<= 4096) written by rank 0, received by the others.
int dist_file_rendezvous(const char *dir, int rank, int world, int timeout_s, void *payload,
                         size_t bytes, MnrlError *err);

// ---- for the implementations (dist.c picks them) ------------------------------------------
#ifdef MNRL_HAVE_MPI
// dist_mpi.c: MPI_Init (unless initialised), rank/world/local rank into d, the host
// collectives into d->ops (world > 1) and a broadcast for the NCCL id.
int dist_mpi_start(MnrlDist *d, MnrlError *err);
int dist_mpi_broadcast_bytes(void *buf, size_t bytes, int root, MnrlError *err);
const MnrlDistOps *dist_mpi_ops(void);
// MPI_Finalize when dist_mpi_start initialised MPI.
void dist_mpi_finish(void);
// MPI_Abort of MPI_COMM_WORLD when MPI is initialised (does not return then).
void dist_mpi_abort(int code);
#endif
#ifdef MNRL_HAVE_CUDA
// dist_nccl.cu: cudaSetDevice(dist_gpu_index(d, visible devices)).
int dist_cuda_select_device(const MnrlDist *d, MnrlError *err);
// dist_nccl.cu: the device copy of the single-rank collectives.
int dist_cuda_copy(void *dst, const void *src, size_t bytes, void *stream, MnrlError *err);
#endif
#ifdef MNRL_HAVE_NCCL
// dist_nccl.cu: ncclUniqueId as bytes (rank 0 makes it; every rank passes the same to open).
enum { MNRL_NCCL_ID_BYTES = 128 };
int dist_nccl_make_id(unsigned char id[MNRL_NCCL_ID_BYTES], MnrlError *err);
// Creates the communicator of d->rank in d->world on the current CUDA device; sets d->ops.
int dist_nccl_open(MnrlDist *d, const unsigned char id[MNRL_NCCL_ID_BYTES], MnrlError *err);
#endif

#ifdef __cplusplus
}
#endif

#endif
