// test_mpi_equivalence.c — data-parallel MNRL equals single-process MNRL (DESIGN §1 "Across
// ranks"; run by ctest under mpirun -np 2 and -np 4, label "mpi"). CPU backend, fp32,
// dropout 0, tiny parity model, global batch 16: W ranks × 16/W rows against one process ×
// 16 rows on rank 0 (equivalence.h), for k = 0 (tests/data/parity/tiny_train.tsv) and
// k = 2 hard negatives (tests/data/dist/triplets_k2.tsv, tests/reference/
// make_dist_triplets.py):
//   - one batch: the same loss and every parameter gradient within 1e-5 relative per
//     tensor (the key biases, whose exact gradient is 0, within 1e-6 of the gradient norm);
//   - 10 AdamW steps: every step's loss within 1e-5, the last step's gradients as above;
//   - the same, k = 2, with the ranks running cached MNRL (gradcache.h) in chunks of 3 rows
//     (16/W rows per rank: 3 + 3 + 2 on 2 ranks, 3 + 1 on 4): the gather, loss and
//     reduce-scatter of the cached embeddings equal one uncached process.
// The wrong gather order must fail this comparison: test_mpi_wrong_order.c shows it does.
#include "mpi/equivalence.h"

static void check_close(const MnrlDist *d, const char *what, const EqResult *r) {
    if (d->rank != 0) return;
    eq_print(d, what, r);
    CHECK_MSG(fabs(r->loss_ranks - r->loss_single) <= 1e-5 * fabs(r->loss_single), "%s: loss %.9g vs %.9g", what,
              r->loss_ranks, r->loss_single);
    CHECK_MSG(r->worst_rel <= 1e-5, "%s: %s relative error %.3g", what, r->worst_tensor, r->worst_rel);
    CHECK_MSG(r->noise_abs <= 1e-6, "%s: key-bias gradients differ by %.3g of the norm", what, r->noise_abs);
    CHECK_MSG(r->worst_step_loss <= 1e-5, "%s: a step's loss differs by %.3g", what, r->worst_step_loss);
}

int main(void) {
    MnrlDist d;
    Tokenizer *tok = NULL;
    eq_start(&d, &tok);
    EqResult k0 = eq_batch(&d, tok, EQ_K0_ROWS, 0);
    check_close(&d, "k=0 batch", &k0);
    EqResult k2 = eq_batch(&d, tok, EQ_K2_ROWS, 0);
    check_close(&d, "k=2 batch", &k2);
    EqResult t0 = eq_trajectory(&d, tok, EQ_K0_ROWS, 0);
    check_close(&d, "k=0 10 steps", &t0);
    EqResult t2 = eq_trajectory(&d, tok, EQ_K2_ROWS, 0);
    check_close(&d, "k=2 10 steps", &t2);
    EqResult c2 = eq_batch(&d, tok, EQ_K2_ROWS, 3);
    check_close(&d, "k=2 batch, ranks cached in chunks of 3 rows", &c2);
    EqResult ct2 = eq_trajectory(&d, tok, EQ_K2_ROWS, 3);
    check_close(&d, "k=2 10 steps, ranks cached in chunks of 3 rows", &ct2);
    tokenizer_free(tok);
    dist_close(&d);
    TEST_END();
}
