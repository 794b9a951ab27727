// fuzz_config.c — libFuzzer target: the configuration loader on arbitrary bytes, both as a
// whole JSON document and as `--set` overrides (one per line) on top of the demo config.
// Invariant: a configuration that loads prints (config_to_json) to a document that loads
// again and prints identically.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "mnrl/config.h"

static void check_round_trip(const MnrlConfig *cfg) {
    char *json = config_to_json(cfg);
    MnrlConfig again;
    MnrlError err;
    FUZZ_ASSERT(config_from_string("(printed)", json, NULL, 0, &again, &err) == 0);
    char *json_again = config_to_json(&again);
    FUZZ_ASSERT(strcmp(json, json_again) == 0);
    FUZZ_ASSERT(config_hash(cfg) == config_hash(&again));
    free(json_again);
    free(json);
    config_free(&again);
}

static void load_text(const char *text, const char *const *sets, int n_sets) {
    MnrlConfig cfg;
    MnrlError err;
    err.msg[0] = '\0';
    if (config_from_string("fuzz.json", text, sets, n_sets, &cfg, &err) == 0) {
        check_round_trip(&cfg);
    } else {
        FUZZ_ASSERT_MESSAGE(err);
    }
    config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    load_text(text, NULL, 0);

    // The same bytes as --set lines (at most 16) over the embedded demo config.
    const char *sets[16];
    int n_sets = 0;
    for (char *line = text; line && n_sets < 16;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        sets[n_sets++] = line;
        line = next;
    }
    load_text(mnrl_demo_config_json, sets, n_sets);
    free(text);
    return 0;
}
