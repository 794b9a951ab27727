// test_dataset.c — readers and recipes of dataset.c against the Python reference
// (tests/reference/make_nli_goldens.py: sentence-transformers' training_nli_v2 triplet
// recipe and the pairs recipe on data/snli_dev_test.tsv.gz, STSb as ST reads it) and
// against hand-written tiny files (CSV quoting, JSONL negatives, errors, skip counts).
#include <jansson.h>
#include <stdint.h>
#include <zlib.h>

#include "mnrl/dataset.h"
#include "test.h"

#define SNLI MNRL_SOURCE_DIR "/data/snli_dev_test.tsv.gz"
#define STSB MNRL_SOURCE_DIR "/data/stsbenchmark.tsv.gz"

static json_t *load_json(const char *path) {
    char *data;
    size_t len;
    MnrlError err;
    if (mnrl_read_file(path, &data, &len, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, len, 0, &jerr);
    free(data);
    if (!root) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        exit(1);
    }
    return root;
}

// Text of row r, column c.
static const char *cell(const Dataset *ds, size_t r, size_t c) {
    return dataset_text(ds, ds->text_id[r * ds->n_cols + c], NULL);
}

static int json_list_has(const json_t *list, const char *s) {
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v) {
        if (strcmp(json_string_value(v), s) == 0) return 1;
    }
    return 0;
}

static int load(DataOptions *opt, Dataset *ds, MnrlError *err) {
    err->msg[0] = '\0';
    return dataset_load(opt, ds, err);
}

// Python's count, anchor order and relation for the triplet recipe of one split.
static void check_triplets(const json_t *golden) {
    const char *split = json_string_value(json_object_get(golden, "split"));
    DataOptions opt = data_options_default(SNLI);
    opt.split = split;
    Dataset ds;
    MnrlError err;
    CHECK_MSG(load(&opt, &ds, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(ds.format, DATA_FORMAT_ALLNLI);
    CHECK_EQ_INT(ds.n_cols, 3);
    CHECK_EQ_INT(ds.n_rows, json_integer_value(json_object_get(golden, "triplets")));
    const json_t *anchors = json_object_get(golden, "anchors");
    size_t order_ok = 0;
    for (size_t i = 0; i < json_array_size(anchors) && 2 * i + 1 < ds.n_rows; i++) {
        const char *a = json_string_value(json_array_get(anchors, i));
        order_ok += strcmp(cell(&ds, 2 * i, 0), a) == 0 && strcmp(cell(&ds, 2 * i + 1, 1), a) == 0;
    }
    CHECK_EQ_INT(order_ok, json_array_size(anchors));
    size_t i_sample;
    const json_t *p;
    size_t relation_ok = 0, n_sample = json_array_size(json_object_get(golden, "partners"));
    json_array_foreach(json_object_get(golden, "partners"), i_sample, p) {
        size_t i = (size_t)json_integer_value(json_object_get(p, "index"));
        const json_t *ent = json_object_get(p, "entailment");
        const json_t *con = json_object_get(p, "contradiction");
        relation_ok += json_list_has(ent, cell(&ds, 2 * i, 1)) &&
                       json_list_has(con, cell(&ds, 2 * i, 2)) &&
                       json_list_has(ent, cell(&ds, 2 * i + 1, 0)) &&
                       json_list_has(con, cell(&ds, 2 * i + 1, 2));
    }
    CHECK_EQ_INT(relation_ok, n_sample);
    printf("triplets %s: %zu rows, %u unique texts (Python: %lld)\n", split, ds.n_rows,
           ds.texts.n, (long long)json_integer_value(json_object_get(golden, "triplets")));
    dataset_free(&ds);
}

static void check_pairs(const json_t *golden) {
    DataOptions opt = data_options_default(SNLI);
    opt.split = json_string_value(json_object_get(golden, "split"));
    opt.recipe = DATA_RECIPE_PAIRS;
    Dataset ds;
    MnrlError err;
    CHECK_MSG(load(&opt, &ds, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(ds.n_cols, 2);
    CHECK_EQ_INT(ds.n_rows, json_integer_value(json_object_get(golden, "pairs")));
    const json_t *first = json_object_get(golden, "first_pairs");
    for (size_t i = 0; i < json_array_size(first); i++) {
        CHECK_STR(cell(&ds, i, 0), json_string_value(json_array_get(json_array_get(first, i), 0)));
        CHECK_STR(cell(&ds, i, 1), json_string_value(json_array_get(json_array_get(first, i), 1)));
    }
    const json_t *last = json_object_get(golden, "last_pair");
    CHECK_STR(cell(&ds, ds.n_rows - 1, 0), json_string_value(json_array_get(last, 0)));
    CHECK_STR(cell(&ds, ds.n_rows - 1, 1), json_string_value(json_array_get(last, 1)));
    dataset_free(&ds);
}

// Same seed, same rows; another seed draws other partners but the same count and anchors.
static void check_triplet_seed(void) {
    DataOptions opt = data_options_default(SNLI);
    opt.split = "dev";
    Dataset a, b, c;
    MnrlError err;
    CHECK(load(&opt, &a, &err) == 0);
    CHECK(load(&opt, &b, &err) == 0);
    opt.seed = 7;
    CHECK(load(&opt, &c, &err) == 0);
    size_t same_ab = 0, same_ac = 0, anchors_ac = 0;
    for (size_t r = 0; r < a.n_rows; r++) {
        int ab = 1, ac = 1;
        for (size_t col = 0; col < 3; col++) {
            ab &= strcmp(cell(&a, r, col), cell(&b, r, col)) == 0;
            ac &= strcmp(cell(&a, r, col), cell(&c, r, col)) == 0;
        }
        same_ab += ab;
        same_ac += ac;
        anchors_ac += strcmp(cell(&a, r, r % 2), cell(&c, r, r % 2)) == 0;
    }
    CHECK_EQ_INT(same_ab, a.n_rows);
    CHECK_EQ_INT(c.n_rows, a.n_rows);
    CHECK_EQ_INT(anchors_ac, a.n_rows);
    CHECK_MSG(same_ac < a.n_rows, "seed 7 drew the same %zu rows as seed 42", same_ac);
    opt.max_rows = 11;
    Dataset d;
    CHECK(load(&opt, &d, &err) == 0);
    CHECK_EQ_INT(d.n_rows, 11);
    size_t prefix_ok = 0;
    for (size_t r = 0; r < 11; r++) {
        prefix_ok += strcmp(cell(&d, r, 2), cell(&c, r, 2)) == 0;
    }
    CHECK_EQ_INT(prefix_ok, 11);
    dataset_free(&a);
    dataset_free(&b);
    dataset_free(&c);
    dataset_free(&d);
}

static void check_nli_goldens(void) {
    json_t *root = load_json(MNRL_TEST_DATA_DIR "/nli/recipes.json.gz");
    size_t i;
    const json_t *split;
    json_array_foreach(json_object_get(root, "splits"), i, split) {
        check_triplets(split);
        check_pairs(split);
    }
    json_decref(root);
    check_triplet_seed();
}

static void check_sts_goldens(void) {
    json_t *root = load_json(MNRL_TEST_DATA_DIR "/nli/sts.json");
    size_t i;
    const json_t *g;
    json_array_foreach(json_object_get(root, "splits"), i, g) {
        StsSet sts;
        MnrlError err;
        const char *split = json_string_value(json_object_get(g, "split"));
        CHECK_MSG(sts_load(STSB, split, &sts, &err) == 0, "%s", err.msg);
        CHECK_EQ_INT(sts.n, json_integer_value(json_object_get(g, "pairs")));
        CHECK_EQ_INT(sts.texts.n, json_integer_value(json_object_get(g, "unique_sentences")));
        double sum = 0;
        for (size_t p = 0; p < sts.n; p++) sum += sts.score[p];
        CHECK_NEAR(sum, json_real_value(json_object_get(g, "score_sum")), 1e-3);
        const json_t *first = json_object_get(g, "first"), *last = json_object_get(g, "last");
        CHECK_STR(text_table_get(&sts.texts, sts.text_id[0], NULL),
                  json_string_value(json_array_get(first, 0)));
        CHECK_STR(text_table_get(&sts.texts, sts.text_id[1], NULL),
                  json_string_value(json_array_get(first, 1)));
        CHECK_STR(text_table_get(&sts.texts, sts.text_id[2 * sts.n - 1], NULL),
                  json_string_value(json_array_get(last, 1)));
        CHECK_NEAR(sts.score[sts.n - 1], json_number_value(json_array_get(last, 2)), 1e-6);
        sts_free(&sts);
    }
    json_decref(root);
}

// Loads path with the given format and options; returns the error message ("" on success).
static const char *try_load(DataOptions *opt, Dataset *ds) {
    static MnrlError err;
    if (load(opt, ds, &err) == 0) return "";
    return err.msg;
}

static void check_csv(void) {
    test_write_file("ds_quoting.csv",
               "anchor,positive,negative\n"
               "plain,\"with, comma\",\"say \"\"hi\"\"\"\n"
               "\"two\nlines\",\"\",x\n"
               "a,b,c\r\n"
               "\"\"\"\",\"é\",\"end\"\n");
    DataOptions opt = data_options_default("ds_quoting.csv");
    Dataset ds;
    const char *msg = try_load(&opt, &ds);
    // Line 3 opens a record spanning lines 3-4 whose positive is empty: an error at line 3.
    CHECK_STR(msg, "ds_quoting.csv:3: empty field \"positive\"; fix the row, or set "
                   "data.on_error to \"skip\" to skip malformed rows");
    opt.on_error = DATA_ON_ERROR_SKIP;
    CHECK_STR(try_load(&opt, &ds), "");
    CHECK_EQ_INT(ds.format, DATA_FORMAT_CSV);
    CHECK_EQ_INT(ds.n_rows, 3);
    CHECK_STR(cell(&ds, 0, 0), "plain");
    CHECK_STR(cell(&ds, 0, 1), "with, comma");
    CHECK_STR(cell(&ds, 0, 2), "say \"hi\"");
    CHECK_STR(cell(&ds, 1, 2), "c");
    CHECK_STR(cell(&ds, 2, 0), "\"");
    CHECK_STR(cell(&ds, 2, 1), "é");
    CHECK_STR(ds.skip_summary, "skipped 1 malformed row (1 empty field); first: "
                               "ds_quoting.csv:3: empty field \"positive\"");
    dataset_free(&ds);

    test_write_file("ds_multiline.csv", "anchor,positive\n\"first\nsecond\nthird\",p\nq,\"r\"\n");
    opt.path = "ds_multiline.csv";
    CHECK_STR(try_load(&opt, &ds), "");
    CHECK_EQ_INT(ds.n_rows, 2);
    CHECK_STR(cell(&ds, 0, 0), "first\nsecond\nthird");
    CHECK_STR(cell(&ds, 1, 1), "r");
    dataset_free(&ds);

    opt.on_error = DATA_ON_ERROR_FAIL;
    test_write_file("ds_badquote.csv", "anchor,positive\na,b\"c\nx,y\n");
    opt.path = "ds_badquote.csv";
    CHECK_CONTAINS(try_load(&opt, &ds), "ds_badquote.csv:2: a quote inside an unquoted field");
    test_write_file("ds_after.csv", "anchor,positive\na,b\n\"c\"d,e\n");
    opt.path = "ds_after.csv";
    CHECK_CONTAINS(try_load(&opt, &ds),
                   "ds_after.csv:3: unexpected character after a closing quote");
    test_write_file("ds_open.csv", "anchor,positive\na,b\nc,\"d\n\ne\n");
    opt.path = "ds_open.csv";
    CHECK_CONTAINS(try_load(&opt, &ds), "ds_open.csv:3: a quoted field is never closed "
                                        "(end of file reached)");
    test_write_file("ds_count.csv", "anchor,positive\na,b\nc,d,e\n");
    opt.path = "ds_count.csv";
    CHECK_CONTAINS(try_load(&opt, &ds), "ds_count.csv:3: expected 2 comma-separated fields "
                                        "(as in the header), got 3");
}

static void check_tsv(void) {
    test_write_file("ds_generic.tsv", "id\tnegative\tanchor\tnegative_2\tpositive\tnote\n"
                                 "1\tn1\ta1\tm1\tp1\tx\n"
                                 "2\tn2\ta2\tm2\tp2\ty\n"
                                 "3\tn1\tp1\tm3\ta1\tz\n");
    DataOptions opt = data_options_default("ds_generic.tsv");
    Dataset ds;
    CHECK_STR(try_load(&opt, &ds), "");
    CHECK_EQ_INT(ds.format, DATA_FORMAT_TSV);
    CHECK_EQ_INT(ds.n_rows, 3);
    CHECK_EQ_INT(ds.n_cols, 4);
    CHECK_STR(ds.column_names[2], "negative");
    CHECK_STR(ds.column_names[3], "negative_2");
    CHECK_STR(cell(&ds, 1, 0), "a2");
    CHECK_STR(cell(&ds, 1, 1), "p2");
    CHECK_STR(cell(&ds, 1, 2), "n2");
    CHECK_STR(cell(&ds, 1, 3), "m2");
    // Equal texts share an id in any column: row 3's anchor is row 1's positive.
    CHECK_EQ_INT(ds.text_id[2 * 4 + 0], ds.text_id[0 * 4 + 1]);
    CHECK_EQ_INT(ds.text_id[2 * 4 + 1], ds.text_id[0 * 4 + 0]);
    CHECK_EQ_INT(ds.text_id[2 * 4 + 2], ds.text_id[0 * 4 + 2]);
    CHECK_EQ_INT(ds.texts.n, 9);
    dataset_free(&ds);

    const char *negatives[] = {"negative_2"};
    opt.negative_columns = negatives;
    opt.n_negative_columns = 1;
    opt.anchor_column = "positive";
    opt.positive_column = "note";
    opt.max_rows = 2;
    CHECK_STR(try_load(&opt, &ds), "");
    CHECK_EQ_INT(ds.n_rows, 2);
    CHECK_EQ_INT(ds.n_cols, 3);
    CHECK_STR(cell(&ds, 1, 0), "p2");
    CHECK_STR(cell(&ds, 1, 1), "y");
    CHECK_STR(cell(&ds, 1, 2), "m2");
    dataset_free(&ds);

    const char *missing[] = {"hard_negative"};
    opt.negative_columns = missing;
    CHECK_STR(try_load(&opt, &ds), "ds_generic.tsv:1: the header has no column "
              "\"hard_negative\" (columns present: id, negative, anchor, negative_2, positive, "
              "note); set data.negative_columns");
    opt = data_options_default("ds_generic.tsv");
    opt.anchor_column = "query";
    CHECK_STR(try_load(&opt, &ds), "ds_generic.tsv:1: the header has no column \"query\" "
              "(columns present: id, negative, anchor, negative_2, positive, note); set "
              "data.anchor_column");

    test_write_file("ds_pairs.tsv", "anchor\tpositive\nx\ty\nonly one\n\tz\n");
    opt = data_options_default("ds_pairs.tsv");
    CHECK_STR(try_load(&opt, &ds), "ds_pairs.tsv:3: expected 2 tab-separated fields (as in "
              "the header), got 1; fix the row, or set data.on_error to \"skip\" to skip "
              "malformed rows");
    test_write_file("ds_header_only.tsv", "anchor\tpositive\n");
    opt.path = "ds_header_only.tsv";
    CHECK_STR(try_load(&opt, &ds), "ds_header_only.tsv: no rows (the file has no data lines); add "
              "rows below the header line");
    test_write_file("ds_empty.tsv", "");
    opt.path = "ds_empty.tsv";
    CHECK_STR(try_load(&opt, &ds), "ds_empty.tsv: empty file (no header line); check data.train, "
              "or give a file whose first line names its columns");
    opt.path = "ds_missing.tsv";
    CHECK_CONTAINS(try_load(&opt, &ds), "ds_missing.tsv: cannot open");
    opt.path = "ds_data.txt";
    CHECK_STR(try_load(&opt, &ds), "ds_data.txt: cannot tell the format from the file name "
              "(expected .tsv, .csv or .jsonl, optionally .gz); set data.format");
}

// The skip summary counts each reason and quotes the first message.
static void check_skip_counts(void) {
    test_write_file("ds_bad.tsv", "anchor\tpositive\tnegative\n"
                             "a\tb\tc\n"
                             "too\tfew\n"
                             "bad \xff byte\tp\tn\n"
                             "d\te\tf\n"
                             "1\t2\t3\t4\n"
                             "g\t\th\n");
    DataOptions opt = data_options_default("ds_bad.tsv");
    Dataset ds;
    CHECK_CONTAINS(try_load(&opt, &ds), "ds_bad.tsv:3: expected 3 tab-separated fields");
    opt.on_error = DATA_ON_ERROR_SKIP;
    CHECK_STR(try_load(&opt, &ds), "");
    CHECK_EQ_INT(ds.n_rows, 2);
    CHECK_EQ_INT(ds.skipped_total, 4);
    CHECK_EQ_INT(ds.skipped[SKIP_FIELD_COUNT], 2);
    CHECK_EQ_INT(ds.skipped[SKIP_NOT_UTF8], 1);
    CHECK_EQ_INT(ds.skipped[SKIP_EMPTY_FIELD], 1);
    CHECK_EQ_INT(ds.lines_read, 6);
    CHECK_STR(ds.skip_summary, "skipped 4 malformed rows (2 wrong field count, 1 not UTF-8, "
              "1 empty field); first: ds_bad.tsv:3: expected 3 tab-separated fields (as in "
              "the header), got 2");
    CHECK_STR(cell(&ds, 1, 2), "f");
    dataset_free(&ds);
    opt.on_error = DATA_ON_ERROR_FAIL;
    test_write_file("ds_utf8.tsv", "anchor\tpositive\nok\tfine\nab\xc3\x28\tp\n");
    opt.path = "ds_utf8.tsv";
    CHECK_STR(try_load(&opt, &ds), "ds_utf8.tsv:3: not valid UTF-8 at byte offset 2 of the "
              "line; the file must be UTF-8 text; fix the row, or set data.on_error to "
              "\"skip\" to skip malformed rows");
    test_write_file("ds_allbad.tsv", "anchor\tpositive\nx\n\ty\n");
    opt.path = "ds_allbad.tsv";
    opt.on_error = DATA_ON_ERROR_SKIP;
    CHECK_STR(try_load(&opt, &ds), "ds_allbad.tsv: no rows left: skipped 2 malformed rows "
              "(1 wrong field count, 1 empty field); first: ds_allbad.tsv:2: expected 2 "
              "tab-separated fields (as in the header), got 1");
}

static void write_gz(const char *path, const char *content) {
    gzFile gz = gzopen(path, "wb");
    gzputs(gz, content);
    gzclose(gz);
}

static void check_jsonl(void) {
    write_gz("ds_rows.jsonl.gz",
             "{\"anchor\": \"a1\", \"positive\": \"p1\", \"negative\": [\"n1\", \"m1\"]}\n"
             "\n"
             "{\"positive\": \"p2\", \"anchor\": \"a2\", \"negative\": \"n2\", "
             "\"negative_2\": \"m2\"}\n"
             "{\"anchor\": \"a3\", \"negative_1\": \"n3\", \"positive\": \"p\\u00e93\", "
             "\"negative_2\": \"m3\"}\n");
    DataOptions opt = data_options_default("ds_rows.jsonl.gz");
    Dataset ds;
    CHECK_STR(try_load(&opt, &ds), "");
    CHECK_EQ_INT(ds.format, DATA_FORMAT_JSONL);
    CHECK_EQ_INT(ds.n_rows, 3);
    CHECK_EQ_INT(ds.n_cols, 4);
    CHECK_STR(cell(&ds, 0, 3), "m1");
    CHECK_STR(cell(&ds, 1, 0), "a2");
    CHECK_STR(cell(&ds, 1, 2), "n2");
    CHECK_STR(cell(&ds, 1, 3), "m2");
    CHECK_STR(cell(&ds, 2, 1), "pé3");
    CHECK_STR(cell(&ds, 2, 2), "n3");
    CHECK_STR(ds.column_names[3], "negative_2");
    dataset_free(&ds);

    test_write_file("ds_k.jsonl", "{\"anchor\": \"a\", \"positive\": \"p\", \"negative\": \"n\"}\n"
                             "{\"anchor\": \"b\", \"positive\": \"q\", "
                             "\"negative\": [\"n\", \"o\"]}\n");
    opt.path = "ds_k.jsonl";
    opt.on_error = DATA_ON_ERROR_SKIP;  // a mixed layout is an error even when skipping
    CHECK_STR(try_load(&opt, &ds), "ds_k.jsonl:2: this row has 2 negatives but the first row "
              "(line 1) has 1; every row needs the same number of negatives");

    test_write_file("ds_badjson.jsonl", "{\"anchor\": \"a\", \"positive\": \"p\"}\n"
                                   "{\"anchor\": \"a\", \"positive\": 3}\n"
                                   "{\"anchor\": \"a\" \"positive\": \"p\"}\n"
                                   "[1, 2]\n"
                                   "{\"anchor\": \"b\"}\n"
                                   "{\"anchor\": \"c\", \"positive\": \"\"}\n"
                                   "{\"anchor\": \"d\", \"positive\": \"e\", "
                                   "\"negative\": [\"x\", 1]}\n"
                                   "{\"anchor\": \"d\", \"anchor\": \"e\", \"positive\": \"e\"}\n"
                                   "{\"anchor\": \"f\", \"positive\": \"g\"}\n");
    opt.path = "ds_badjson.jsonl";
    opt.on_error = DATA_ON_ERROR_FAIL;
    CHECK_STR(try_load(&opt, &ds), "ds_badjson.jsonl:2: \"positive\" must be a string, got a "
              "number; fix the row, or set data.on_error to \"skip\" to skip malformed rows");
    opt.on_error = DATA_ON_ERROR_SKIP;
    CHECK_STR(try_load(&opt, &ds), "");
    CHECK_EQ_INT(ds.n_rows, 2);
    CHECK_EQ_INT(ds.skipped[SKIP_NOT_A_STRING], 2);
    CHECK_EQ_INT(ds.skipped[SKIP_BAD_JSON], 3);
    CHECK_EQ_INT(ds.skipped[SKIP_MISSING_KEY], 1);
    CHECK_EQ_INT(ds.skipped[SKIP_EMPTY_FIELD], 1);
    CHECK_STR(ds.skip_summary, "skipped 7 malformed rows (1 empty field, 3 bad JSON, "
              "1 missing column, 2 not a string); first: ds_badjson.jsonl:2: \"positive\" must "
              "be a string, got a number");
    CHECK_STR(cell(&ds, 1, 0), "f");
    dataset_free(&ds);
    opt.on_error = DATA_ON_ERROR_FAIL;
    test_write_file("ds_missing.jsonl", "{\"query\": \"a\", \"positive\": \"p\"}\n");
    opt.path = "ds_missing.jsonl";
    CHECK_CONTAINS(try_load(&opt, &ds), "ds_missing.jsonl:1: no key \"anchor\" (keys present: "
                                        "query, positive)");
    test_write_file("ds_notobj.jsonl", "{\"anchor\": \"a\", \"positive\": \"p\"}\n\"text\"\n");
    opt.path = "ds_notobj.jsonl";
    CHECK_CONTAINS(try_load(&opt, &ds), "ds_notobj.jsonl:2: expected a JSON object per line, "
                                        "got a string");
}

static void check_allnli_errors(void) {
    const char *header = "split\tdataset\tfilename\tsentence1\tsentence2\tlabel\n";
    char text[1024];
    // Python strips with str.strip(): "A b." with spaces and a no-break space is "A b.".
    snprintf(text, sizeof text, "%s"
             "train\tS\tf\t  A b. \tC d.\tentailment\n"
             "train\tS\tf\tA b.\xc2\xa0\tE f.\tcontradiction\n"
             "train\tS\tf\tC d.\tE f.\tneutral\n", header);
    test_write_file("ds_nli.tsv", text);
    DataOptions opt = data_options_default("ds_nli.tsv");
    Dataset ds;
    CHECK_STR(try_load(&opt, &ds), "");
    CHECK_EQ_INT(ds.format, DATA_FORMAT_ALLNLI);
    CHECK_EQ_INT(ds.n_rows, 2);
    CHECK_STR(cell(&ds, 0, 0), "A b.");
    CHECK_STR(cell(&ds, 0, 1), "C d.");
    CHECK_STR(cell(&ds, 0, 2), "E f.");
    CHECK_STR(cell(&ds, 1, 1), "A b.");
    dataset_free(&ds);
    opt.recipe = DATA_RECIPE_PAIRS;  // pairs keep the text as-is
    CHECK_STR(try_load(&opt, &ds), "");
    CHECK_EQ_INT(ds.n_rows, 1);
    CHECK_STR(cell(&ds, 0, 0), "  A b. ");
    dataset_free(&ds);
    opt.split = "dev";
    CHECK_STR(try_load(&opt, &ds), "ds_nli.tsv: no rows with split \"dev\" (splits present: "
              "train); set data.split");
    opt.split = "train";
    opt.recipe = DATA_RECIPE_TRIPLETS;
    snprintf(text, sizeof text,
             "%strain\tS\tf\ta\tb\tentailment\ntest\tS\tf\tc\td\tcontradiction\n", header);
    test_write_file("ds_nli_none.tsv", text);
    opt.path = "ds_nli_none.tsv";
    CHECK_STR(try_load(&opt, &ds), "ds_nli_none.tsv: no sentence of split \"train\" has both "
              "an entailment and a contradiction partner, so the triplet recipe makes no rows; "
              "try data.recipe \"pairs\"");
    snprintf(text, sizeof text, "%strain\tS\tf\ta\tb\tentailment\ntrain\tS\tf\ta\tc\t-\n", header);
    test_write_file("ds_nli_label.tsv", text);
    opt.path = "ds_nli_label.tsv";
    CHECK_STR(try_load(&opt, &ds), "ds_nli_label.tsv:3: unknown label \"-\" (expected "
              "entailment, neutral or contradiction); fix the row, or set data.on_error to "
              "\"skip\" to skip malformed rows");
    test_write_file("ds_nli_cols.tsv", "split\tsentence1\tsentence2\tgold\ntrain\ta\tb\tentailment\n");
    opt.path = "ds_nli_cols.tsv";
    opt.format = DATA_FORMAT_ALLNLI;
    CHECK_STR(try_load(&opt, &ds), "AllNLI format (split dataset filename sentence1 sentence2 "
              "label): ds_nli_cols.tsv:1: the header has no column \"label\" (columns present: "
              "split, sentence1, sentence2, gold)");
}

static void check_sts_files(void) {
    test_write_file("ds_sts.tsv", "score\tsentence2\tsentence1\n4.5\tb\ta\n0\td\tc\n");
    StsSet sts;
    MnrlError err;
    CHECK_MSG(sts_load("ds_sts.tsv", "dev", &sts, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(sts.n, 2);
    CHECK_STR(text_table_get(&sts.texts, sts.text_id[0], NULL), "a");
    CHECK_STR(text_table_get(&sts.texts, sts.text_id[1], NULL), "b");
    CHECK_NEAR(sts.score[0], 4.5, 0);
    sts_free(&sts);
    test_write_file("ds_sts_bad.tsv", "score\tsentence1\tsentence2\n4.5x\ta\tb\n");
    CHECK(sts_load("ds_sts_bad.tsv", NULL, &sts, &err) < 0);
    CHECK_STR(err.msg, "ds_sts_bad.tsv:2: score \"4.5x\" is not a number");
    test_write_file("ds_sts_nan.tsv", "score\tsentence1\tsentence2\nnan\ta\tb\n");
    CHECK(sts_load("ds_sts_nan.tsv", NULL, &sts, &err) < 0);
    CHECK_STR(err.msg, "ds_sts_nan.tsv:2: score \"nan\" is not a number");
    // Found by tests/fuzz/fuzz_sts: finite as a double, infinite as the float it is kept in.
    test_write_file("ds_sts_huge.tsv", "score\tsentence1\tsentence2\n1e300\ta\tb\n");
    CHECK(sts_load("ds_sts_huge.tsv", NULL, &sts, &err) < 0);
    CHECK_STR(err.msg, "ds_sts_huge.tsv:2: score \"1e300\" is not a number");
    CHECK(sts_load(STSB, "validation", &sts, &err) < 0);
    CHECK_CONTAINS(err.msg, "no sentence pairs with split \"validation\"");
    CHECK(sts_load(SNLI, "dev", &sts, &err) < 0);
    CHECK_CONTAINS(err.msg, "the header has no column \"score\"");
}

int main(void) {
    check_nli_goldens();
    check_sts_goldens();
    check_csv();
    check_tsv();
    check_skip_counts();
    check_jsonl();
    check_allnli_errors();
    check_sts_files();
    TEST_END();
}
