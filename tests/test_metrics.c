// test_metrics.c — Spearman (average ranks for ties) and Pearson against scipy's
// spearmanr / pearsonr on STSb-sized inputs with many ties and on edge cases
// (tests/data/metrics/scipy_correlations.txt.gz, made by
// tests/reference/make_metrics_goldens.py, inputs stored with the results).
#include "mnrl/eval.h"
#include "mnrl/common.h"
#include "test.h"

static double next_value(char **p) {
    char *end;
    double v = strtod(*p, &end);  // reads "nan" as NaN
    if (end == *p) {
        fprintf(stderr, "scipy_correlations.txt.gz: expected a number near \"%.30s\"\n", *p);
        exit(1);
    }
    *p = end;
    return v;
}

// Agreement to 1e-9, or both NaN.
static void check_value(const char *name, const char *metric, double got, double want) {
    if (isnan(want)) {
        CHECK_MSG(isnan(got), "%s %s: %.17g, scipy NaN", name, metric, got);
    } else {
        CHECK_MSG(fabs(got - want) <= 1e-9, "%s %s: %.17g, scipy %.17g", name, metric, got, want);
    }
}

static void test_scipy_golden(void) {
    char *data;
    size_t len;
    MnrlError err;
    if (mnrl_read_file(MNRL_TEST_DATA_DIR "/metrics/scipy_correlations.txt.gz", &data, &len, &err) != 0)
        SKIP("golden missing: %s (run tests/reference/make_metrics_goldens.py)", err.msg);
    int cases = 0, stsb_sized = 0;
    for (char *p = strstr(data, "\ncase "); p; p = strstr(p, "\ncase ")) {
        char name[64];
        int used = 0;
        size_t n;
        if (sscanf(p, " case %63s %zu%n", name, &n, &used) != 2) break;
        p += used;
        double want_rho = next_value(&p), want_r = next_value(&p);
        double *x = mnrl_malloc(n * sizeof *x), *y = mnrl_malloc(n * sizeof *y);
        for (size_t i = 0; i < n; i++) x[i] = next_value(&p);
        for (size_t i = 0; i < n; i++) y[i] = next_value(&p);
        check_value(name, "spearman", mnrl_spearman(x, y, n), want_rho);
        check_value(name, "pearson", mnrl_pearson(x, y, n), want_r);
        cases++;
        stsb_sized += n == 1500 || n == 1379;
        free(x);
        free(y);
    }
    CHECK_EQ_INT(cases, 15);
    CHECK_EQ_INT(stsb_sized, 8);
    free(data);
}

// Cases scipy refuses (it raises) and our documented answers for them.
static void test_undefined(void) {
    double one[] = {1.0}, nan_in[] = {1.0, NAN, 3.0}, fine[] = {1.0, 2.0, 3.0};
    CHECK(isnan(mnrl_pearson(one, one, 1)));
    CHECK(isnan(mnrl_spearman(one, one, 1)));
    CHECK(isnan(mnrl_pearson(NULL, NULL, 0)));
    CHECK(isnan(mnrl_pearson(nan_in, fine, 3)));
    CHECK(isnan(mnrl_spearman(fine, nan_in, 3)));
}

int main(void) {
    test_scipy_golden();
    test_undefined();
    TEST_END();
}
