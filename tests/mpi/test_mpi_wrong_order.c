// test_mpi_wrong_order.c — proof that test_mpi_equivalence.c catches the gather-order bug of
// sentence-transformers (fixed in their PR #3453): with the test-only toggle
// MNRL_TEST_WRONG_GATHER_ORDER=1 (loss.h), set here before the loss reads it, the ranks
// gather each rank's positives and negatives together, rank after rank. Run under mpirun
// -np 2 and -np 4 like the equivalence test, on the same batches (equivalence.h):
//   - k = 0: that order is the right one, so the ranks still equal one process (the toggle
//     changes nothing else);
//   - k = 2: anchors of ranks > 0 are scored against other rows' negatives as positives:
//     the comparison must report a mismatch of the loss and the gradients far beyond the
//     1e-5 the equivalence test allows, on the single batch and along the 10 steps.
#include "mpi/equivalence.h"

int main(void) {
    setenv("MNRL_TEST_WRONG_GATHER_ORDER", "1", 1);
    MnrlDist d;
    Tokenizer *tok = NULL;
    eq_start(&d, &tok);
    EqResult k0 = eq_batch(&d, tok, EQ_K0_ROWS, 0);
    EqResult k2 = eq_batch(&d, tok, EQ_K2_ROWS, 0);
    EqResult t2 = eq_trajectory(&d, tok, EQ_K2_ROWS, 0);
    if (d.rank == 0) {
        eq_print(&d, "k=0 batch, wrong order", &k0);
        eq_print(&d, "k=2 batch, wrong order", &k2);
        eq_print(&d, "k=2 10 steps, wrong order", &t2);
        CHECK_MSG(fabs(k0.loss_ranks - k0.loss_single) <= 1e-5 * k0.loss_single && k0.worst_rel <= 1e-5,
                  "k=0: the toggle changed the right order (loss %.9g vs %.9g, gradients %.3g)", k0.loss_ranks,
                  k0.loss_single, k0.worst_rel);
        // The mismatch the equivalence test reports, by a wide margin.
        CHECK_MSG(fabs(k2.loss_ranks - k2.loss_single) > 1e-3 * k2.loss_single,
                  "k=2: the wrong order went unnoticed in the loss (%.9g vs %.9g)", k2.loss_ranks, k2.loss_single);
        CHECK_MSG(k2.worst_rel > 1e-2, "k=2: the wrong order went unnoticed in the gradients (%.3g)", k2.worst_rel);
        CHECK_MSG(t2.worst_step_loss > 1e-3, "k=2: the wrong order went unnoticed over 10 steps (%.3g)",
                  t2.worst_step_loss);
    }
    tokenizer_free(tok);
    dist_close(&d);
    TEST_END();
}
