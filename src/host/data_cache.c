// data_cache.c — building, validating and mapping the pre-tokenized data file.
#include "mnrl/data_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "mnrl/log.h"

// CRC-32 (zlib) of a buffer of any size: crc32_z takes size_t.
static uint64_t crc_bytes(const void *data, size_t len) {
    return crc32_z(crc32_z(0L, Z_NULL, 0), data, len);
}

// Size and CRC-32 of the file's bytes as stored (a .gz file is not decompressed).
static int source_checksum(const char *path, uint64_t *size, uint64_t *crc, MnrlError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mnrl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20;
    unsigned char *buf = mnrl_malloc(cap);
    uLong c = crc32_z(0L, Z_NULL, 0);
    *size = 0;
    size_t n;
    while ((n = fread(buf, 1, cap, f)) > 0) {
        c = crc32_z(c, buf, n);
        *size += n;
    }
    int failed = ferror(f);
    fclose(f);
    free(buf);
    if (failed) return mnrl_fail(err, "%s: read failed", path);
    *crc = c;
    return 0;
}

static uint64_t mix_str(uint64_t h, const char *s) {
    return mnrl_hash64(s, strlen(s) + 1, h);  // the NUL separates neighbouring strings
}

static uint64_t mix_u64(uint64_t h, uint64_t v) {
    return mnrl_hash64(&v, sizeof v, h);
}

// Every DataOptions field that changes the rows (all but the path, which names the file).
static uint64_t options_hash(const DataOptions *opt) {
    uint64_t h = mix_str(0, data_format_name(opt->format));
    h = mix_str(h, data_recipe_name(opt->recipe));
    h = mix_str(h, opt->split);
    h = mix_str(h, opt->anchor_column);
    h = mix_str(h, opt->positive_column);
    h = mix_u64(h, opt->n_negative_columns);
    for (size_t i = 0; i < opt->n_negative_columns; i++) h = mix_str(h, opt->negative_columns[i]);
    h = mix_u64(h, opt->max_rows);
    h = mix_u64(h, (uint64_t)opt->on_error);
    return mix_u64(h, opt->seed);
}

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

// The header a valid cache must have (counts and checksums of the payload aside).
static int expected_header(const DataOptions *opt, const Tokenizer *tok, int max_seq_length,
                           DataCacheHeader *h, MnrlError *err) {
    memset(h, 0, sizeof *h);
    memcpy(h->magic, DATA_CACHE_MAGIC, sizeof h->magic);
    h->version = DATA_CACHE_VERSION;
    h->endian = DATA_CACHE_ENDIAN;
    if (source_checksum(opt->path, &h->source_size, &h->source_crc, err) < 0) return -1;
    h->options_hash = options_hash(opt);
    h->tokenizer_fingerprint = tokenizer_fingerprint(tok);
    h->max_seq_length = (uint32_t)max_seq_length;
    h->token_bytes = tokenizer_vocab_size(tok) <= 65536 ? 2 : 4;
    return 0;
}

static uint64_t header_hash(const DataCacheHeader *h) {
    return mnrl_hash64(h, offsetof(DataCacheHeader, header_hash), 0);
}

// ---------------------------------------------------------------------------------------
// Reading and validating

static void unmap(DataCache *c) {
    if (c->map) munmap(c->map, c->map_len);
    c->map = NULL;
    c->map_len = 0;
}

// Why the stored header does not match the wanted one, or NULL when it does.
static const char *header_mismatch(const DataCacheHeader *got, const DataCacheHeader *want) {
    if (memcmp(got->magic, DATA_CACHE_MAGIC, sizeof got->magic) != 0) {
        return "not a data cache file";
    }
    if (got->endian != DATA_CACHE_ENDIAN) return "written on a machine of other endianness";
    if (got->version != DATA_CACHE_VERSION) return "written by another cache format version";
    if (got->header_hash != header_hash(got)) return "corrupt header";
    if (got->source_size != want->source_size || got->source_crc != want->source_crc) {
        return "the source file changed";
    }
    if (got->tokenizer_fingerprint != want->tokenizer_fingerprint) return "the tokenizer changed";
    if (got->max_seq_length != want->max_seq_length) return "max_seq_length changed";
    if (got->options_hash != want->options_hash) return "the data options changed";
    if (got->token_bytes != want->token_bytes) return "corrupt header";
    return NULL;
}

// Payload section sizes from the header's counts; 0 when the counts are implausible.
static size_t payload_size(const DataCacheHeader *h, size_t *ids_bytes, size_t *offsets_bytes,
                           size_t *tokens_bytes) {
    if (h->n_rows >= UINT32_MAX || h->n_cols < 2 || h->n_cols > 65536 ||
        h->n_texts >= UINT32_MAX || h->n_tokens > h->n_texts * (uint64_t)h->max_seq_length ||
        h->skip_summary_len >= MNRL_ERROR_MAX) {
        return 0;
    }
    *ids_bytes = align8((size_t)(h->n_rows * h->n_cols) * sizeof(uint32_t));
    *offsets_bytes = (size_t)(h->n_texts + 1) * sizeof(uint64_t);
    *tokens_bytes = align8((size_t)h->n_tokens * h->token_bytes);
    return *ids_bytes + *offsets_bytes + *tokens_bytes + align8((size_t)h->skip_summary_len + 1);
}

// Points the views into the mapping and checks every id and offset, so that even a file
// with a matching checksum cannot make a reader index out of bounds.
static const char *set_views(DataCache *c) {
    const DataCacheHeader *h = c->map;
    size_t ids_bytes, offsets_bytes, tokens_bytes;
    size_t payload = payload_size(h, &ids_bytes, &offsets_bytes, &tokens_bytes);
    if (payload == 0 || payload != h->payload_bytes) return "corrupt header";
    const char *base = (const char *)c->map + sizeof *h;
    c->header = h;
    c->n_rows = (size_t)h->n_rows;
    c->n_cols = (size_t)h->n_cols;
    c->n_texts = (uint32_t)h->n_texts;
    c->text_id = (const uint32_t *)base;
    c->offset = (const uint64_t *)(base + ids_bytes);
    c->tokens = base + ids_bytes + offsets_bytes;
    c->skip_summary = base + ids_bytes + offsets_bytes + tokens_bytes;
    for (size_t i = 0; i < c->n_rows * c->n_cols; i++) {
        if (c->text_id[i] >= c->n_texts) return "corrupt row table";
    }
    if (c->offset[0] != 0 || c->offset[c->n_texts] != h->n_tokens) return "corrupt offsets";
    for (uint32_t t = 0; t < c->n_texts; t++) {
        uint64_t begin = c->offset[t], end = c->offset[t + 1];
        if (end < begin || end - begin > h->max_seq_length) {
            return "corrupt offsets";
        }
    }
    if (c->skip_summary[h->skip_summary_len] != '\0') return "corrupt summary";
    return NULL;
}

// Maps the file and checks it against want. Returns 1 when usable, 0 when it must be
// rebuilt (reason set), -1 on an error other than a stale or damaged file.
static int map_and_check(DataCache *c, const DataCacheHeader *want, MnrlError *err) {
    int fd = open(c->path, O_RDONLY);
    if (fd < 0) {
        if (errno != ENOENT) return mnrl_fail(err, "%s: cannot open: %s", c->path, strerror(errno));
        snprintf(c->rebuild_reason, sizeof c->rebuild_reason, "no cache file yet");
        return 0;
    }
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) != 0) why = "cannot stat";
    else if ((size_t)st.st_size < sizeof(DataCacheHeader)) why = "truncated";
    else {
        c->map_len = (size_t)st.st_size;
        c->map = mmap(NULL, c->map_len, PROT_READ, MAP_SHARED, fd, 0);
        if (c->map == MAP_FAILED) {
            c->map = NULL;
            close(fd);
            return mnrl_fail(err, "%s: cannot map: %s", c->path, strerror(errno));
        }
    }
    close(fd);
    if (!why) why = header_mismatch(c->map, want);
    if (!why) {
        const DataCacheHeader *h = c->map;
        if (c->map_len != sizeof *h + h->payload_bytes) why = "truncated or overlong";
        else if (crc_bytes(h + 1, (size_t)h->payload_bytes) != h->payload_crc) {
            why = "payload checksum mismatch (corrupt)";
        } else {
            why = set_views(c);
        }
    }
    if (!why) return 1;
    snprintf(c->rebuild_reason, sizeof c->rebuild_reason, "%s", why);
    unmap(c);
    return 0;
}

uint32_t data_cache_tokens(const DataCache *c, uint32_t id, int32_t *out) {
    uint64_t begin = c->offset[id];
    uint32_t n = data_cache_length(c, id);
    if (c->header->token_bytes == 2) {
        const uint16_t *t = (const uint16_t *)c->tokens + begin;
        for (uint32_t i = 0; i < n; i++) out[i] = t[i];
    } else {
        memcpy(out, (const int32_t *)c->tokens + begin, n * sizeof *out);
    }
    return n;
}

void data_cache_close(DataCache *c) {
    unmap(c);
    memset(c, 0, sizeof *c);
}

// ---------------------------------------------------------------------------------------
// Building

// The file being assembled in memory: header, then the payload appended section by section.
typedef struct {
    char *data;
    size_t len, cap;
} FileBuf;

static void *buf_grow(FileBuf *b, size_t more) {
    if (b->len + more > b->cap) {
        b->cap = 2 * (b->len + more);
        b->data = mnrl_realloc(b->data, b->cap);
    }
    void *p = b->data + b->len;
    memset(p, 0, more);
    b->len += more;
    return p;
}

// Texts per parallel wave: the scratch of wave * max_len int32 ids stays near 64 MB.
static size_t wave_size(int max_len) {
    size_t n = ((size_t)1 << 24) / (size_t)max_len;
    return n < 256 ? 256 : n;
}

// Tokenizes every unique text in waves (parallel within a wave, appended in id order),
// writing offsets at offsets_at and the ids after them in the buffer.
static void append_tokens(FileBuf *b, size_t offsets_at, const Dataset *ds, const Tokenizer *tok,
                          int max_len, uint32_t token_bytes, FILE *log) {
    size_t wave = wave_size(max_len);
    int32_t *scratch = mnrl_malloc(wave * (size_t)max_len * sizeof *scratch);
    int *count = mnrl_malloc(wave * sizeof *count);
    size_t tokens_at = b->len;
    uint64_t n_tokens = 0;
    Progress progress;
    progress_begin(&progress, log, "tokenizing", "texts", ds->texts.n);
    for (size_t first = 0; first < ds->texts.n; first += wave) {
        long n = (long)(ds->texts.n - first < wave ? ds->texts.n - first : wave);
#pragma omp parallel for schedule(dynamic, 64)
        for (long i = 0; i < n; i++) {
            size_t len;
            const char *text = dataset_text(ds, (uint32_t)(first + (size_t)i), &len);
            count[i] = tokenizer_encode(tok, text, len, max_len, scratch + (size_t)i * max_len);
        }
        for (long i = 0; i < n; i++) {
            char *out = buf_grow(b, (size_t)count[i] * token_bytes);
            const int32_t *ids = scratch + (size_t)i * max_len;
            for (int j = 0; j < count[i]; j++) {
                if (token_bytes == 2) ((uint16_t *)out)[j] = (uint16_t)ids[j];
                else ((int32_t *)out)[j] = ids[j];
            }
            n_tokens += (uint64_t)count[i];
            ((uint64_t *)(b->data + offsets_at))[first + (size_t)i + 1] = n_tokens;
        }
        progress_update(&progress, first + (uint64_t)n);
    }
    progress_end(&progress);
    buf_grow(b, align8(b->len - tokens_at) - (b->len - tokens_at));
    ((DataCacheHeader *)b->data)->n_tokens = n_tokens;
    free(scratch);
    free(count);
}

// Lays out the whole file for ds in memory and fills the header's counts and checksums.
static void assemble(FileBuf *b, const Dataset *ds, const DataCacheHeader *want,
                     const Tokenizer *tok, FILE *log) {
    DataCacheHeader *h = buf_grow(b, sizeof *h);
    *h = *want;
    h->n_rows = ds->n_rows;
    h->n_cols = ds->n_cols;
    h->n_texts = ds->texts.n;
    size_t ids_bytes = ds->n_rows * ds->n_cols * sizeof(uint32_t);
    memcpy(buf_grow(b, align8(ids_bytes)), ds->text_id, ids_bytes);
    size_t offsets_at = b->len;
    buf_grow(b, ((size_t)ds->texts.n + 1) * sizeof(uint64_t));  // zeroed: offset[0] = 0
    append_tokens(b, offsets_at, ds, tok, (int)want->max_seq_length, want->token_bytes, log);
    size_t summary_len = strlen(ds->skip_summary);
    memcpy(buf_grow(b, align8(summary_len + 1)), ds->skip_summary, summary_len);
    h = (DataCacheHeader *)b->data;  // the buffer moved while growing
    h->skip_summary_len = summary_len;
    h->payload_bytes = b->len - sizeof *h;
    h->payload_crc = crc_bytes(h + 1, (size_t)h->payload_bytes);
    h->header_hash = header_hash(h);
}

static int build_cache(const DataOptions *opt, const char *cache_dir, const Tokenizer *tok,
                       const DataCacheHeader *want, FILE *log, const char *path, MnrlError *err) {
    Dataset ds;
    if (dataset_load(opt, &ds, err) < 0) return -1;
    FileBuf b = {0};
    assemble(&b, &ds, want, tok, log);
    dataset_free(&ds);
    uint64_t size, crc;
    int rc = source_checksum(opt->path, &size, &crc, err);
    if (rc == 0 && (size != want->source_size || crc != want->source_crc)) {
        rc = mnrl_fail(err, "%s: the file changed while the data cache was being built; run "
                       "again once it no longer changes", opt->path);
    }
    if (rc == 0) rc = mnrl_mkdir_p(cache_dir, err);
    if (rc == 0) rc = mnrl_write_file_atomic(path, b.data, b.len, err);
    free(b.data);
    return rc;
}

// cache_dir/data-HASH.mnrlcache, HASH over everything that selects the content (the
// source's bytes aside: a changed file rebuilds the same cache file in place).
static int cache_path(const DataOptions *opt, const char *cache_dir, const DataCacheHeader *want,
                      char *out, size_t cap, MnrlError *err) {
    uint64_t h = mix_str(0, opt->path);
    h = mix_u64(h, want->options_hash);
    h = mix_u64(h, want->tokenizer_fingerprint);
    h = mix_u64(h, want->max_seq_length);
    char name[64];
    snprintf(name, sizeof name, "data-%016llx.mnrlcache", (unsigned long long)h);
    if (mnrl_path_join(out, cap, cache_dir, name) < 0) {
        return mnrl_fail(err, "%s: cache directory path too long; set data.cache_dir", cache_dir);
    }
    return 0;
}

static void log_summary(const DataCache *c, FILE *log) {
    if (!log) return;
    fprintf(log, "data cache: %s: %zu rows x %zu columns, %u unique texts, %llu tokens%s\n",
            c->path, c->n_rows, c->n_cols, c->n_texts,
            (unsigned long long)c->header->n_tokens, c->built ? " (built)" : "");
    if (*c->skip_summary) fprintf(log, "data: %s\n", c->skip_summary);
}

int data_cache_open(const DataOptions *opt, const char *cache_dir, const Tokenizer *tok,
                    int max_seq_length, FILE *log, DataCache *cache, MnrlError *err) {
    memset(cache, 0, sizeof *cache);
    if (max_seq_length < 2) {
        return mnrl_fail(err, "max_seq_length %d is below 2 ([CLS] and [SEP])", max_seq_length);
    }
    DataCacheHeader want;
    if (expected_header(opt, tok, max_seq_length, &want, err) < 0) return -1;
    if (cache_path(opt, cache_dir, &want, cache->path, sizeof cache->path, err) < 0) return -1;
    int usable = map_and_check(cache, &want, err);
    if (usable < 0) return -1;
    if (!usable) {
        if (log) fprintf(log, "data cache: building %s (%s)\n", cache->path, cache->rebuild_reason);
        if (build_cache(opt, cache_dir, tok, &want, log, cache->path, err) < 0) return -1;
        char first_reason[sizeof cache->rebuild_reason];
        memcpy(first_reason, cache->rebuild_reason, sizeof first_reason);
        if (map_and_check(cache, &want, err) != 1) {
            return mnrl_fail(err, "%s: the data cache just written does not read back (%s); "
                             "check the disk or set data.cache_dir elsewhere", cache->path,
                             cache->rebuild_reason);
        }
        memcpy(cache->rebuild_reason, first_reason, sizeof first_reason);
        cache->built = 1;
    }
    log_summary(cache, log);
    return 0;
}
