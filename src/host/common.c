// common.c — errors, checked allocation, hashing, whole-file I/O and clocks.
#include "mnrl/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

int mnrl_fail(MnrlError *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int mnrl_fail_context(MnrlError *err, const char *fmt, ...) {
    if (!err) return -1;
    char context[MNRL_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);
    // Join by hand (context ": " previous), truncating at the buffer's end.
    char joined[MNRL_ERROR_MAX];
    size_t n = 0;
    const char *parts[3] = {context, ": ", err->msg};
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(parts[i]);
        if (len > sizeof joined - 1 - n) len = sizeof joined - 1 - n;
        memcpy(joined + n, parts[i], len);
        n += len;
    }
    joined[n] = '\0';
    memcpy(err->msg, joined, n + 1);
    return -1;
}

static void out_of_memory(size_t bytes) {
    fprintf(stderr, "mnrl_cuda: out of memory allocating %zu bytes\n", bytes);
    abort();
}

void *mnrl_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) out_of_memory(bytes);
    return p;
}

void *mnrl_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) out_of_memory(count * size);
    return p;
}

void *mnrl_realloc(void *ptr, size_t bytes) {
    void *p = realloc(ptr, bytes ? bytes : 1);
    if (!p) out_of_memory(bytes);
    return p;
}

char *mnrl_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = mnrl_malloc(n);
    memcpy(p, s, n);
    return p;
}

void *mnrl_aligned_calloc(size_t alignment, size_t bytes) {
    // aligned_alloc wants a size that is a multiple of the alignment.
    size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    void *p = aligned_alloc(alignment, rounded ? rounded : alignment);
    if (!p) out_of_memory(bytes);
    memset(p, 0, rounded);
    return p;
}

static uint64_t avalanche64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t mnrl_hash64(const void *data, size_t len, uint64_t seed) {
    const unsigned char *bytes = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= bytes[i];
        h *= 0x100000001b3ULL;
    }
    return avalanche64(h);
}

uint64_t mnrl_splitmix64(uint64_t *state) {
    *state += 0x9e3779b97f4a7c15ULL;
    return avalanche64(*state);
}

uint64_t mnrl_rand_below(uint64_t *state, uint64_t bound) {
    // Rejection sampling: draw until the value falls below the largest multiple of bound.
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do {
        r = mnrl_splitmix64(state);
    } while (r >= limit);
    return r % bound;
}

int mnrl_read_file(const char *path, char **out_data, size_t *out_len, MnrlError *err) {
    // gzopen reads plain files transparently, so one path serves .gz and plain inputs.
    gzFile f = gzopen(path, "rb");
    if (!f) return mnrl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *data = mnrl_malloc(cap);
    for (;;) {
        if (cap - len < (1 << 15)) {
            cap *= 2;
            data = mnrl_realloc(data, cap);
        }
        int n = gzread(f, data + len, (unsigned)(cap - len - 1));
        if (n < 0) {
            int code;
            const char *why = gzerror(f, &code);
            mnrl_fail(err, "%s: read failed: %s", path, code == Z_ERRNO ? strerror(errno) : why);
            gzclose(f);
            free(data);
            return -1;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    gzclose(f);
    data[len] = '\0';
    *out_data = data;
    *out_len = len;
    return 0;
}

// Test-only, and read here alone: MNRL_TEST_FAIL_WRITE=TEXT makes every write of a path
// containing TEXT fail as on a full disk (ENOSPC), so that tests can check what a failed
// write leaves behind (tests/test_checkpoint.c, tests/cli/checkpoint.sh).
static int injected_write_failure(const char *path) {
    const char *text = getenv("MNRL_TEST_FAIL_WRITE");
    return text && text[0] && strstr(path, text);
}

int mnrl_write_file_atomic(const char *path, const void *data, size_t len, MnrlError *err) {
    int inject = injected_write_failure(path);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        return mnrl_fail(err, "%s: path too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return mnrl_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = inject ? (errno = ENOSPC, -1) : write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            mnrl_fail(err, "%s: write failed: %s%s", tmp, strerror(errno),
                      inject ? " (injected by MNRL_TEST_FAIL_WRITE, a test-only variable)" : "");
            close(fd);
            unlink(tmp);
            return -1;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        mnrl_fail(err, "%s: flushing to disk failed: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        mnrl_fail(err, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int mnrl_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int mnrl_mkdir_p(const char *path, MnrlError *err) {
    char partial[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof partial) return mnrl_fail(err, "\"%s\": bad directory path", path);
    memcpy(partial, path, n + 1);
    // Creates each prefix ending before a '/', then the whole path; existing ones are fine.
    for (size_t i = 1; i <= n; i++) {
        if (partial[i] != '/' && partial[i] != '\0') continue;
        char saved = partial[i];
        partial[i] = '\0';
        struct stat st;
        if (mkdir(partial, 0755) != 0 && errno != EEXIST) {
            return mnrl_fail(err, "%s: cannot create directory: %s", partial, strerror(errno));
        }
        if (stat(partial, &st) != 0 || !S_ISDIR(st.st_mode)) {
            return mnrl_fail(err, "%s: exists and is not a directory", partial);
        }
        partial[i] = saved;
    }
    return 0;
}

int mnrl_path_join(char *out, size_t cap, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    const char *sep = (dl > 0 && dir[dl - 1] != '/') ? "/" : "";
    int n = snprintf(out, cap, "%s%s%s", dir, sep, name);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

int mnrl_fsync_dir(const char *path, MnrlError *err) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return mnrl_fail(err, "%s: cannot open directory: %s", path, strerror(errno));
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    if (rc != 0) return mnrl_fail(err, "%s: flushing directory to disk failed: %s", path, strerror(saved));
    return 0;
}

int mnrl_remove_tree(const char *path, MnrlError *err) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        return mnrl_fail(err, "%s: cannot inspect: %s", path, strerror(errno));
    }
    // lstat: a symbolic link is removed itself, never followed into what it points to.
    if (S_ISDIR(st.st_mode)) {
        DIR *dir = opendir(path);
        if (!dir) return mnrl_fail(err, "%s: cannot open directory: %s", path, strerror(errno));
        struct dirent *entry;
        int rc = 0;
        while (rc == 0 && (entry = readdir(dir)) != NULL) {
            if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
            char child[4096];
            if (mnrl_path_join(child, sizeof child, path, entry->d_name) != 0) {
                rc = mnrl_fail(err, "%s/%s: path too long", path, entry->d_name);
            } else {
                rc = mnrl_remove_tree(child, err);
            }
        }
        closedir(dir);
        if (rc != 0) return rc;
        if (rmdir(path) != 0) return mnrl_fail(err, "%s: cannot remove directory: %s", path, strerror(errno));
        return 0;
    }
    if (unlink(path) != 0) return mnrl_fail(err, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

// The fewest significant digits (15..17) with which v prints and reads back exactly.
static int exact_precision(double v) {
    char text[64];
    for (int precision = 15; precision < 17; precision++) {
        snprintf(text, sizeof text, "%.*g", precision, v);
        if (strtod(text, NULL) == v) return precision;
    }
    return 17;
}

// The precision at which every real number in value prints exactly.
static int tree_precision(const json_t *value) {
    int precision = 15, needed;
    if (json_is_real(value)) return exact_precision(json_real_value(value));
    if (json_is_object(value)) {
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)value, key, child) {
            if ((needed = tree_precision(child)) > precision) precision = needed;
        }
    } else if (json_is_array(value)) {
        size_t i;
        json_t *child;
        json_array_foreach(value, i, child) {
            if ((needed = tree_precision(child)) > precision) precision = needed;
        }
    }
    return precision;
}

char *mnrl_json_dumps_exact(const struct json_t *value, size_t flags) {
    char *text = json_dumps(value, flags | JSON_ENCODE_ANY | JSON_REAL_PRECISION(tree_precision(value)));
    if (!text) abort();  // jansson fails here only when out of memory
    return text;
}

double mnrl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t mnrl_edit_distance(const char *a, const char *b) {
    // Three rolling rows of the dynamic programme: the transposition case looks two back.
    size_t na = strlen(a), nb = strlen(b);
    size_t *rows = mnrl_malloc(3 * (nb + 1) * sizeof *rows);
    size_t *before = rows, *prev = rows + nb + 1, *cur = rows + 2 * (nb + 1);
    for (size_t j = 0; j <= nb; j++) prev[j] = j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev[j - 1] + cost;
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                before[j - 2] + 1 < best) {
                best = before[j - 2] + 1;
            }
            cur[j] = best;
        }
        size_t *oldest = before;
        before = prev;
        prev = cur;
        cur = oldest;
    }
    size_t distance = prev[nb];
    free(rows);
    return distance;
}

const char *mnrl_closest_match(const char *typed, const char *const *candidates, size_t n) {
    const char *best = NULL;
    size_t best_distance = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t d = mnrl_edit_distance(typed, candidates[i]);
        if (d < best_distance) {
            best_distance = d;
            best = candidates[i];
        }
    }
    size_t limit = strlen(typed) / 3 > 1 ? strlen(typed) / 3 : 1;
    return best_distance <= limit ? best : NULL;
}
