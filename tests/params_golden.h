// params_golden.h — reads the per-tensor golden listings that
// tests/reference/make_model_file_goldens.py writes (name, shape, decay flag, first and
// last value, float64 sum and abs sum, computed by torch) and checks a loaded parameter
// buffer against one. Shared by test_params.c and test_params_demo.c; include after test.h.
#ifndef MNRL_TEST_PARAMS_GOLDEN_H
#define MNRL_TEST_PARAMS_GOLDEN_H

#include "mnrl/params.h"

// Value of "n_params N" in a golden file, or -1.
static long long golden_n_params(const char *path) {
    FILE *f = fopen(path, "r");
    char line[1024];
    long long n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "n_params %lld", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

// Compares every listed tensor with the table and buffer; returns how many were listed.
static int check_against_golden(const ParamTable *table, const float *buffer, const char *path) {
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return 0;
    char line[1024];
    int listed = 0, value_errors = 0;
    while (fgets(line, sizeof line, f)) {
        char name[256], first_text[64], last_text[64];
        int ndim, decay, used = 0;
        long long shape[2] = {0, 0};
        if (line[0] == '#' || strncmp(line, "n_params", 8) == 0) continue;
        if (sscanf(line, "%255s %d%n", name, &ndim, &used) != 2 || ndim < 1 || ndim > 2) {
            CHECK_MSG(0, "%s: bad line %s", path, line);
            continue;
        }
        const char *rest = line + used;
        for (int d = 0; d < ndim; d++) {
            int n = 0;
            sscanf(rest, "%lld%n", &shape[d], &n);
            rest += n;
        }
        double sum, abs_sum;
        CHECK(sscanf(rest, "%d %63s %63s %lf %lf", &decay, first_text, last_text, &sum, &abs_sum) == 5);
        listed++;
        const ParamTensor *p = params_find(table, name);
        CHECK_MSG(p != NULL, "%s: %s not in the table", path, name);
        if (!p) continue;
        CHECK_MSG(p->ndim == ndim && p->shape[0] == shape[0] && (ndim == 1 || p->shape[1] == shape[1]),
                  "%s: shape differs", name);
        CHECK_MSG(p->decay == (decay == 1), "%s: decay flag %d, golden %d", name, p->decay, decay);
        const float *v = buffer + p->offset;
        // first/last are exact (hex floats); the sums differ only by summation order.
        double got_sum = 0, got_abs = 0;
        for (size_t i = 0; i < p->numel; i++) {
            got_sum += v[i];
            got_abs += fabs(v[i]);
        }
        if (v[0] != strtod(first_text, NULL) || v[p->numel - 1] != strtod(last_text, NULL) ||
            fabs(got_sum - sum) > 1e-11 * abs_sum || fabs(got_abs - abs_sum) > 1e-11 * abs_sum) {
            value_errors++;
            fprintf(stderr, "%s: %s: first %a last %a sum %.17g abs %.17g; golden %s %s %.17g %.17g\n", path, name,
                    v[0], v[p->numel - 1], got_sum, got_abs, first_text, last_text, sum, abs_sum);
        }
    }
    fclose(f);
    CHECK_EQ_INT(value_errors, 0);
    CHECK_EQ_INT(listed, table->n_tensors);
    return listed;
}

#endif
