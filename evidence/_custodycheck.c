/*
 * The custody log's checks in compiled code, for speed: `evidence custody verify` over a long
 * log (see evidence/custody.py, `_check_run`, for what each row must satisfy).
 *
 * This checker only ever certifies: it reads a run of rows, and says either "every row holds,
 * and here is what the run adds up to" (the chains' heads, the Merkle blocks' roots), or "not
 * certain" (None). It never reports a problem in words. Anything it does not know for sure
 * holds exactly as the Python checker would find it -- a broken chain, but also any JSON or
 * column spelled in a way it does not follow, an escaped string where a field is read, a
 * number with a fraction -- makes it give up, and the caller checks the whole log again in
 * Python, which says what is wrong. So a log this checker certifies is one the Python checker
 * certifies too, and tests hold the two to that over every way of breaking a log they know.
 *
 * Rows come from SQLite (read here through its C library, over the same SQL the Python reader
 * runs) or from PostgreSQL's binary COPY stream (fed in chunks by the caller, whose driver
 * reads it without making an object per value).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#define HASH 32
#define JSON_DEPTH 32

/* --- a value as read from a row or an entry ------------------------------------------------ */

typedef struct {
    const unsigned char *p;
    Py_ssize_t n;
    int null; /* SQL NULL, or a JSON field that is absent or null */
} Text;

typedef struct {
    int64_t value;
    int null;
} Int;

typedef struct {
    Int seq;
    Text case_id;
    Int case_seq;
    Text prev;
    Text entry;
    Text leaf;
    Text at, actor, action, object_type, object_id, sha256;
} Row;

/* The fields of an entry the checks read; every other byte is checked as JSON only. */
typedef struct {
    Int seq;
    Text at, action, sha256;
    int actor; /* the entry names an actor (an object); then actor_id is its id */
    Text actor_id;
    int has_case;
    Text case_id, case_ref;
    Int case_seq;
    int has_prev;
    unsigned char prev[HASH];
    int object;
    Text object_type, object_id;
} Doc;

/* --- a case chain's head ------------------------------------------------------------------- */

typedef struct {
    char *key; /* the case id as the entry spells it; NULL: free slot */
    Py_ssize_t klen;
    int64_t case_seq, seq;
    unsigned char leaf[HASH];
    int opened; /* the chain began before the run: its first entry here, kept for the join */
    int64_t open_case_seq;
    int open_has_prev;
    unsigned char open_prev[HASH];
} Head;

typedef struct {
    PyObject_HEAD
    EVP_MD_CTX *ctx;
    EVP_MD *md;
    int64_t expected; /* the seq the next row must have */
    int starts_log;
    char *case_filter;
    Py_ssize_t case_filter_len;
    int64_t *marks;
    Py_ssize_t nmarks;
    int depth;
    Py_ssize_t block;
    Py_ssize_t batch; /* rows between two calls of on_batch */
    Py_ssize_t since; /* rows checked since on_batch was last called */
    int64_t start; /* leaves before the run */
    unsigned char *leaves; /* the block being filled */
    Py_ssize_t nleaves;
    int64_t nblocks;
    unsigned char *roots; /* the roots of the run's full blocks, HASH bytes each */
    size_t roots_cap;     /* in blocks */
    int64_t *marked_first; /* blocks a mark falls inside: their first leaf ... */
    unsigned char *marked_leaves; /* ... and their leaves, block * HASH bytes each */
    size_t nmarked, marked_cap;
    int64_t *case_entries; /* seq of the filtered case's entries */
    size_t ncase_entries, case_entries_cap;
    Head *heads;
    size_t cap, used;
    const char *why; /* why it gave up; NULL while all holds */
    int64_t why_seq;
    /* The rows are checked without holding Python's lock (other threads run meanwhile), so
     * a failure there is noted here and raised once the lock is held again. */
    const char *fault; /* NULL, or what failed: FAULT_MEMORY or an OpenSSL failure */
    int busy;          /* a read is under way: the checker takes no other call */
    /* PostgreSQL binary COPY: bytes not yet parsed, and where the stream is */
    unsigned char *buf;
    size_t buflen, bufcap;
    int copy_state; /* 0 header not read, 1 tuples, 2 trailer seen */
} Checker;

static const char FAULT_MEMORY[] = "out of memory";

/* Code that runs without Python's lock says a failure here (-2 then goes up to the caller). */
static int fault(Checker *c, const char *what) {
    if (c->fault == NULL) c->fault = what;
    return -2;
}

/* With Python's lock held again, after a read failed: NULL, with the Python error set (that of
 * on_batch or Ctrl-C, else the failure noted). */
static PyObject *failed_read(Checker *c) {
    if (PyErr_Occurred()) return NULL;
    if (c->fault == FAULT_MEMORY) return PyErr_NoMemory();
    PyErr_SetString(PyExc_RuntimeError, c->fault ? c->fault : "the check failed");
    return NULL;
}

/* Room for `need` items of `size` bytes at *p (which holds *cap), grown by doubling. */
static int grow(Checker *c, void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 0;
    size_t more = *cap ? *cap : 16;
    while (more < need) more *= 2;
    void *grown = PyMem_RawRealloc(*p, more * size);
    if (grown == NULL) return fault(c, FAULT_MEMORY);
    *p = grown;
    *cap = more;
    return 0;
}

static int give_up(Checker *c, const char *why, int64_t seq) {
    if (c->why == NULL) {
        c->why = why;
        c->why_seq = seq;
    }
    return -1;
}

/* --- hashing (RFC 9162) -------------------------------------------------------------------- */

static int digest(Checker *c, unsigned char prefix, const unsigned char *a, size_t an,
                  const unsigned char *b, size_t bn, unsigned char *out) {
    unsigned int len = 0;
    if (!EVP_DigestInit_ex(c->ctx, c->md, NULL) || !EVP_DigestUpdate(c->ctx, &prefix, 1) ||
        !EVP_DigestUpdate(c->ctx, a, an) || (bn && !EVP_DigestUpdate(c->ctx, b, bn)) ||
        !EVP_DigestFinal_ex(c->ctx, out, &len) || len != HASH)
        return fault(c, "SHA-256 failed in OpenSSL");
    return 0;
}

/* The block of 2**depth leaves is full: keep its root (and its leaves, where a mark falls
 * strictly inside it), then start the next. The block is hashed in place. */
static int fold_block(Checker *c) {
    int64_t first = c->start + c->nblocks * c->block;
    for (Py_ssize_t i = 0; i < c->nmarks; i++) {
        if (c->marks[i] > first && c->marks[i] < first + c->block) {
            /* both arrays grow alike, from the same count to the same room */
            size_t n = c->nmarked, room = c->marked_cap;
            if (grow(c, (void **)&c->marked_first, &room, n + 1, sizeof(int64_t)) < 0 ||
                grow(c, (void **)&c->marked_leaves, &c->marked_cap, n + 1,
                     (size_t)c->block * HASH) < 0)
                return -2;
            c->marked_first[n] = first;
            memcpy(c->marked_leaves + n * (size_t)c->block * HASH, c->leaves,
                   (size_t)c->block * HASH);
            c->nmarked++;
            break;
        }
    }
    for (Py_ssize_t n = c->block; n > 1; n /= 2) {
        for (Py_ssize_t i = 0; i < n / 2; i++) {
            if (digest(c, 1, c->leaves + 2 * i * HASH, 2 * HASH, NULL, 0,
                       c->leaves + i * HASH) < 0)
                return -2;
        }
    }
    if (grow(c, (void **)&c->roots, &c->roots_cap, (size_t)c->nblocks + 1, HASH) < 0) return -2;
    memcpy(c->roots + (size_t)c->nblocks * HASH, c->leaves, HASH);
    c->nblocks++;
    c->nleaves = 0;
    return 0;
}

/* --- JSON: strict RFC 8259, stricter where that is simpler --------------------------------- */

typedef struct {
    const unsigned char *p, *end;
} Scan;

static void ws(Scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hexval(unsigned char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* One UTF-8 character, first byte at p (>= 0x80): its length, or 0 where Python's strict
 * decoder would refuse it (overlong forms, surrogates, past U+10FFFF, cut short). */
static int utf8_char(const unsigned char *p, const unsigned char *end) {
    unsigned char b = p[0];
    int n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) n = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        n = 3;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else return 0;
    if (end - p < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

/* Bytes a string's scan must stop at: the closing quote, an escape, a control character or
 * the first byte of a UTF-8 character. */
static unsigned char stops[256];

/* A lower-case hexadecimal digit's value, else -1: hashes are written in those only. */
static signed char lower_hex[256];

static void init_stops(void) {
    for (int i = 0; i < 256; i++) {
        stops[i] = i < 0x20 || i >= 0x80 || i == '"' || i == '\\';
        lower_hex[i] = (signed char)(i >= '0' && i <= '9' ? i - '0'
                                     : i >= 'a' && i <= 'f' ? i - 'a' + 10 : -1);
    }
}

/* A string at s->p (on its opening quote). Sets out to its bytes between the quotes and
 * *escaped when it holds an escape (then out is not its value). 0, or -1 when not valid. */
static int string(Scan *s, Text *out, int *escaped) {
    s->p++;
    const unsigned char *from = s->p;
    *escaped = 0;
    while (s->p < s->end) {
#if defined(__SSE2__)
        /* 16 bytes at a time: a stop is a quote, a backslash, or a byte below 0x20 or from
         * 0x80 up (negative as a signed byte, so below 0x20 too) */
        const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'),
                      space = _mm_set1_epi8(0x20);
        while (s->end - s->p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)s->p);
            int hit = _mm_movemask_epi8(_mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                _mm_cmplt_epi8(v, space)));
            if (hit) {
                s->p += __builtin_ctz((unsigned)hit);
                break;
            }
            s->p += 16;
        }
#endif
        while (s->end - s->p >= 4 && !(stops[s->p[0]] | stops[s->p[1]] | stops[s->p[2]] |
                                       stops[s->p[3]]))
            s->p += 4;
        while (s->p < s->end && !stops[*s->p]) s->p++;
        if (s->p >= s->end) break;
        unsigned char ch = *s->p;
        if (ch == '"') {
            out->p = from;
            out->n = s->p - from;
            out->null = 0;
            s->p++;
            return 0;
        }
        if (ch < 0x20) return -1;
        if (ch == '\\') {
            *escaped = 1;
            if (s->end - s->p < 2) return -1;
            ch = s->p[1];
            if (ch == 'u') {
                if (s->end - s->p < 6) return -1;
                int v = 0;
                for (int i = 2; i < 6; i++) {
                    int h = hexval(s->p[i]);
                    if (h < 0) return -1;
                    v = v * 16 + h;
                }
                if (v >= 0xD800 && v <= 0xDFFF) return -1; /* surrogates: not followed */
                s->p += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", ch) || ch == 0) return -1;
            s->p += 2;
            continue;
        }
        if (ch >= 0x80) {
            int n = utf8_char(s->p, s->end);
            if (n == 0) return -1;
            s->p += n;
            continue;
        }
        s->p++;
    }
    return -1;
}

/* A number; only integers of up to 18 digits are followed (entries hold no fractions, nor
 * larger numbers): -1 for anything else. */
static int number(Scan *s, Int *out) {
    int negative = 0;
    if (*s->p == '-') {
        negative = 1;
        s->p++;
    }
    const unsigned char *digits = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
    Py_ssize_t n = s->p - digits;
    if (n == 0 || n > 18 || (n > 1 && digits[0] == '0')) return -1;
    if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E')) return -1;
    int64_t v = 0;
    for (Py_ssize_t i = 0; i < n; i++) v = v * 10 + (digits[i] - '0');
    out->value = negative ? -v : v;
    out->null = 0;
    return 0;
}

static int value(Scan *s, int depth);

static int literal(Scan *s, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return -1;
    s->p += n;
    return 0;
}

/* Past an object's or array's opening bracket: 1 when an item follows, 0 when `close` ends it
 * at once. */
static int opened(Scan *s, unsigned char close) {
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    return 1;
}

/* After an item: 1 when a comma says another follows, 0 when `close` ends the list, -1 for
 * anything else. */
static int after_item(Scan *s, unsigned char close) {
    ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == ',') {
        s->p++;
        ws(s);
        return 1;
    }
    if (*s->p == close) {
        s->p++;
        return 0;
    }
    return -1;
}

/* An array at s->p, checked and skipped. */
static int elements(Scan *s, int depth) {
    if (depth > JSON_DEPTH) return -1;
    int more = opened(s, ']');
    while (more == 1) {
        if (value(s, depth + 1) < 0) return -1;
        more = after_item(s, ']');
    }
    return more;
}

/* The members of an object at s->p. For each key, `member` is called with the scanner on the
 * value; it reads it and returns 0, or 1 to have it checked and skipped, or -1 to give up. A
 * key written with an escape gives up where members are read (it could spell a field that is
 * read); `skip` reads none. */
typedef int (*Member)(Scan *s, const Text *key, void *into, unsigned *seen);

static int skip(Scan *s, const Text *key, void *into, unsigned *seen) { return 1; }

static int members(Scan *s, Member member, void *into, int depth);

static int value(Scan *s, int depth) {
    if (s->p >= s->end) return -1;
    Text t;
    Int i;
    int escaped;
    switch (*s->p) {
    case '{': return members(s, skip, NULL, depth);
    case '[': return elements(s, depth);
    case '"': return string(s, &t, &escaped);
    case 't': return literal(s, "true");
    case 'f': return literal(s, "false");
    case 'n': return literal(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) return number(s, &i);
        return -1;
    }
}

static int is_null(Scan *s) {
    if (s->end - s->p >= 4 && memcmp(s->p, "null", 4) == 0) {
        s->p += 4;
        return 1;
    }
    return 0;
}

/* A field read as a string: absent is null, JSON null is null, an unescaped string is its
 * bytes; anything else gives up. */
static int text_field(Scan *s, Text *out) {
    if (is_null(s)) return 0;
    int escaped;
    if (s->p >= s->end || *s->p != '"' || string(s, out, &escaped) < 0 || escaped) return -1;
    return 0;
}

static int int_field(Scan *s, Int *out) {
    if (is_null(s)) return 0;
    if (s->p >= s->end || !(*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) return -1;
    return number(s, out);
}

#define key_is(key, name) \
    ((size_t)(key)->n == sizeof(name) - 1 && memcmp((key)->p, name, sizeof(name) - 1) == 0)

static int members(Scan *s, Member member, void *into, int depth) {
    unsigned seen = 0;
    if (depth > JSON_DEPTH || s->p >= s->end || *s->p != '{') return -1;
    int more = opened(s, '}');
    while (more == 1) {
        Text key;
        int escaped;
        if (s->p >= s->end || *s->p != '"' || string(s, &key, &escaped) < 0 ||
            (escaped && member != skip))
            return -1;
        ws(s);
        if (s->p >= s->end || *s->p != ':') return -1;
        s->p++;
        ws(s);
        int read = member(s, &key, into, &seen);
        if (read < 0) return -1;
        if (read == 1 && value(s, depth + 1) < 0) return -1;
        more = after_item(s, '}');
    }
    return more;
}

/* Each field read may be there once: a repeated one gives up (decoders differ on which
 * counts). */
static int once(unsigned *seen, unsigned bit) {
    if (*seen & bit) return -1;
    *seen |= bit;
    return 0;
}

/* An object of which two string fields are read: one it must have, one it may. */
typedef struct {
    const char *must, *may; /* their names */
    Text must_value, may_value;
} Pair;

static int named(const Text *key, const char *name) {
    size_t n = strlen(name);
    return (size_t)key->n == n && memcmp(key->p, name, n) == 0;
}

static int pair_member(Scan *s, const Text *key, void *into, unsigned *seen) {
    Pair *pair = into;
    if (named(key, pair->must)) {
        if (once(seen, 1) < 0 || is_null(s)) return -1; /* it is a string */
        return text_field(s, &pair->must_value);
    }
    if (named(key, pair->may)) return once(seen, 2) < 0 ? -1 : text_field(s, &pair->may_value);
    return 1;
}

/* Such an object, or null: *present says which. */
static int pair_object(Scan *s, const char *must, const char *may, int *present, Text *must_out,
                       Text *may_out) {
    if (is_null(s)) return 0;
    Pair pair = {must, may, {NULL, 0, 1}, {NULL, 0, 1}};
    if (members(s, pair_member, &pair, 2) < 0 || pair.must_value.null) return -1;
    *present = 1;
    *must_out = pair.must_value;
    *may_out = pair.may_value;
    return 0;
}

static int entry_member(Scan *s, const Text *key, void *into, unsigned *seen) {
    Doc *d = into;
    if (key_is(key, "seq")) return once(seen, 1) < 0 ? -1 : int_field(s, &d->seq);
    if (key_is(key, "at")) return once(seen, 2) < 0 ? -1 : text_field(s, &d->at);
    if (key_is(key, "action")) return once(seen, 4) < 0 ? -1 : text_field(s, &d->action);
    if (key_is(key, "actor")) {
        Text name;
        if (once(seen, 8) < 0) return -1;
        return pair_object(s, "id", "ref", &d->actor, &d->actor_id, &name);
    }
    if (key_is(key, "case")) {
        if (once(seen, 16) < 0) return -1;
        return pair_object(s, "id", "ref", &d->has_case, &d->case_id, &d->case_ref);
    }
    if (key_is(key, "case_seq")) return once(seen, 32) < 0 ? -1 : int_field(s, &d->case_seq);
    if (key_is(key, "prev_case_hash")) {
        Text hex = {NULL, 0, 1};
        if (once(seen, 64) < 0 || text_field(s, &hex) < 0) return -1;
        if (hex.null) return 0;
        if (hex.n != 2 * HASH) return -1;
        for (int i = 0; i < HASH; i++) {
            /* lower-case digits only: the spelling entries are written in */
            int a = lower_hex[hex.p[2 * i]], b = lower_hex[hex.p[2 * i + 1]];
            if (a < 0 || b < 0) return -1;
            d->prev[i] = (unsigned char)(a * 16 + b);
        }
        d->has_prev = 1;
        return 0;
    }
    if (key_is(key, "object")) {
        if (once(seen, 128) < 0) return -1;
        return pair_object(s, "type", "id", &d->object, &d->object_type, &d->object_id);
    }
    if (key_is(key, "sha256")) return once(seen, 256) < 0 ? -1 : text_field(s, &d->sha256);
    return 1;
}

static int parse_entry(const unsigned char *p, Py_ssize_t n, Doc *d) {
    static const Text none = {NULL, 0, 1};
    static const Int no_int = {0, 1};
    memset(d, 0, sizeof *d);
    d->seq = d->case_seq = no_int;
    d->at = d->action = d->sha256 = d->actor_id = d->case_id = d->case_ref = none;
    d->object_type = d->object_id = none;
    Scan s = {p, p + n};
    ws(&s);
    if (members(&s, entry_member, d, 1) < 0) return -1;
    ws(&s);
    if (s.p != s.end) return -1;
    /* what the typed reader requires */
    if (d->seq.null || d->at.null || d->action.null) return -1;
    return 0;
}

/* --- the chains ---------------------------------------------------------------------------- */

static uint64_t fnv(const unsigned char *p, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static Head *head_of(Checker *c, const Text *id, int make) {
    if (c->used * 2 >= c->cap) {
        if (!make) goto find;
        size_t cap = c->cap ? c->cap * 2 : 64;
        Head *grown = PyMem_RawCalloc(cap, sizeof(Head));
        if (grown == NULL) {
            fault(c, FAULT_MEMORY);
            return NULL;
        }
        for (size_t i = 0; i < c->cap; i++) {
            if (c->heads[i].key == NULL) continue;
            size_t j = fnv((unsigned char *)c->heads[i].key, c->heads[i].klen) & (cap - 1);
            while (grown[j].key != NULL) j = (j + 1) & (cap - 1);
            grown[j] = c->heads[i];
        }
        PyMem_RawFree(c->heads);
        c->heads = grown;
        c->cap = cap;
    }
find:
    if (c->cap == 0) return NULL;
    size_t j = fnv(id->p, id->n) & (c->cap - 1);
    while (c->heads[j].key != NULL) {
        if (c->heads[j].klen == id->n && memcmp(c->heads[j].key, id->p, id->n) == 0)
            return &c->heads[j];
        j = (j + 1) & (c->cap - 1);
    }
    if (!make) return NULL;
    Head *h = &c->heads[j];
    h->key = PyMem_RawMalloc(id->n ? id->n : 1);
    if (h->key == NULL) {
        fault(c, FAULT_MEMORY);
        return NULL;
    }
    memcpy(h->key, id->p, id->n);
    h->klen = id->n;
    c->used++;
    return h;
}

static int same_text(const Text *a, const Text *b) {
    if (a->null || b->null) return a->null && b->null;
    return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
}

static int note_case_entry(Checker *c, const Text *case_id, int64_t seq) {
    if (c->case_filter == NULL || case_id->n != c->case_filter_len ||
        memcmp(case_id->p, c->case_filter, case_id->n) != 0)
        return 0;
    if (grow(c, (void **)&c->case_entries, &c->case_entries_cap, c->ncase_entries + 1,
             sizeof(int64_t)) < 0)
        return -2;
    c->case_entries[c->ncase_entries++] = seq;
    return 0;
}

/* One row: 0 when it holds, -1 when not certain (c->why says why), -2 on a Python error. */
static int check_row(Checker *c, const Row *r) {
    if (c->why != NULL) return -1;
    int64_t seq = r->seq.value;
    if (r->seq.null || seq != c->expected) return give_up(c, "seq", c->expected);
    c->expected++;
    if (r->entry.null) return give_up(c, "entry", seq);
    unsigned char *leaf = c->leaves + c->nleaves * HASH;
    if (digest(c, 0, r->entry.p, r->entry.n, NULL, 0, leaf) < 0) return -2;
    c->nleaves++;
    if (r->leaf.null || r->leaf.n != HASH || memcmp(r->leaf.p, leaf, HASH) != 0)
        return give_up(c, "leaf_hash", seq);
    Doc d;
    if (parse_entry(r->entry.p, r->entry.n, &d) < 0) return give_up(c, "entry JSON", seq);
    if (d.seq.value != seq) return give_up(c, "entry seq", seq);
    Text none = {NULL, 0, 1};
    if (!same_text(&r->at, &d.at) || !same_text(&r->action, &d.action) ||
        !same_text(&r->actor, d.actor ? &d.actor_id : &none) ||
        !same_text(&r->object_type, d.object ? &d.object_type : &none) ||
        !same_text(&r->object_id, d.object ? &d.object_id : &none) ||
        !same_text(&r->sha256, &d.sha256))
        return give_up(c, "columns", seq);
    if (!d.has_case) {
        if (!r->case_id.null || !r->case_seq.null || !r->prev.null || !d.case_seq.null ||
            d.has_prev)
            return give_up(c, "case columns", seq);
        goto placed;
    }
    if (!same_text(&r->case_id, &d.case_id) || d.case_seq.null || r->case_seq.null ||
        r->case_seq.value != d.case_seq.value || r->prev.null != !d.has_prev ||
        (d.has_prev && (r->prev.n != HASH || memcmp(r->prev.p, d.prev, HASH) != 0)))
        return give_up(c, "chain columns", seq);
    Head *h = head_of(c, &d.case_id, 0);
    if (h == NULL && c->fault != NULL) return -2;
    if (h == NULL) {
        h = head_of(c, &d.case_id, 1);
        if (h == NULL) return -2;
        if (!c->starts_log) {
            /* the chain began before this run: the join checks this link */
            h->opened = 1;
            h->open_case_seq = d.case_seq.value;
            h->open_has_prev = d.has_prev;
            if (d.has_prev) memcpy(h->open_prev, d.prev, HASH);
        } else if (d.case_seq.value != 1 || d.has_prev) {
            return give_up(c, "chain start", seq);
        }
    } else if (d.case_seq.value != h->case_seq + 1 || !d.has_prev ||
               memcmp(d.prev, h->leaf, HASH) != 0) {
        return give_up(c, "chain link", seq);
    }
    h->case_seq = d.case_seq.value;
    h->seq = seq;
    memcpy(h->leaf, leaf, HASH);
    if (note_case_entry(c, &d.case_id, seq) < 0) return -2;
placed:
    if (c->nleaves == c->block && fold_block(c) < 0) return -2;
    return 0;
}

/* --- the object ---------------------------------------------------------------------------- */

static void Checker_dealloc(Checker *c) {
    if (c->ctx) EVP_MD_CTX_free(c->ctx);
    if (c->md) EVP_MD_free(c->md);
    PyMem_Free(c->case_filter);
    PyMem_Free(c->marks);
    PyMem_Free(c->leaves);
    for (size_t i = 0; i < c->cap; i++) PyMem_RawFree(c->heads[i].key);
    PyMem_RawFree(c->heads);
    PyMem_RawFree(c->buf);
    PyMem_RawFree(c->roots);
    PyMem_RawFree(c->marked_first);
    PyMem_RawFree(c->marked_leaves);
    PyMem_RawFree(c->case_entries);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static int Checker_init(Checker *c, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"first_seq", "starts_log", "case_id", "marks", "depth", "batch", NULL};
    long long first_seq;
    int starts_log, depth;
    const char *case_id = NULL;
    Py_ssize_t case_len = 0;
    PyObject *marks;
    Py_ssize_t batch = 1000;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Lpz#Oi|n", kw, &first_seq, &starts_log,
                                     &case_id, &case_len, &marks, &depth, &batch))
        return -1;
    if (batch < 1) {
        PyErr_SetString(PyExc_ValueError, "batch must be at least 1");
        return -1;
    }
    c->batch = batch;
    if (depth < 0 || depth > 20) {
        PyErr_SetString(PyExc_ValueError, "depth must be 0..20");
        return -1;
    }
    if (c->ctx != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a checker is made once");
        return -1;
    }
    c->ctx = EVP_MD_CTX_new();
    c->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (c->ctx == NULL || c->md == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL has no SHA-256");
        return -1;
    }
    c->expected = first_seq;
    c->start = first_seq - 1;
    c->starts_log = starts_log;
    c->depth = depth;
    c->block = (Py_ssize_t)1 << depth;
    c->leaves = PyMem_Malloc(c->block * HASH);
    if (c->leaves == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (case_id != NULL) {
        c->case_filter = PyMem_Malloc(case_len ? case_len : 1);
        if (c->case_filter == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(c->case_filter, case_id, case_len);
        c->case_filter_len = case_len;
    }
    PyObject *seq = PySequence_Fast(marks, "marks must be a sequence of ints");
    if (seq == NULL) return -1;
    c->nmarks = PySequence_Fast_GET_SIZE(seq);
    c->marks = PyMem_Malloc((c->nmarks ? c->nmarks : 1) * sizeof(int64_t));
    if (c->marks == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < c->nmarks; i++) {
        c->marks[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (c->marks[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static int ready(Checker *c) {
    if (c->ctx == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "checker not initialised");
        return 0;
    }
    if (c->busy) {
        PyErr_SetString(PyExc_RuntimeError, "checker already reading in another thread");
        return 0;
    }
    return 1;
}

/* --- SQLite -------------------------------------------------------------------------------- */

/* A column read as text: NULL, or TEXT; any other storage class gives up. An id column of 32
 * digits is spelled with the dashes put in, as entries write ids (into `spelled`). */
static int sqlite_text(sqlite3_stmt *st, int col, Text *out, unsigned char *spelled) {
    int type = sqlite3_column_type(st, col);
    if (type == SQLITE_NULL) {
        out->null = 1;
        out->p = NULL;
        out->n = 0;
        return 0;
    }
    if (type != SQLITE_TEXT) return -1;
    /* the text's bytes as stored: read as a blob, SQLite need not copy it to end it in NUL */
    out->p = sqlite3_column_blob(st, col);
    out->n = sqlite3_column_bytes(st, col);
    out->null = 0;
    if (out->p == NULL) out->p = (const unsigned char *)"";
    if (spelled != NULL && out->n == 32) {
        static const int cut[] = {8, 4, 4, 4, 12};
        const unsigned char *from = out->p;
        unsigned char *to = spelled;
        for (int i = 0; i < 5; i++) {
            if (i) *to++ = '-';
            memcpy(to, from, cut[i]);
            to += cut[i];
            from += cut[i];
        }
        out->p = spelled;
        out->n = 36;
    }
    return 0;
}

static int sqlite_blob(sqlite3_stmt *st, int col, Text *out) {
    int type = sqlite3_column_type(st, col);
    out->null = type == SQLITE_NULL;
    out->p = NULL;
    out->n = 0;
    if (out->null) return 0;
    if (type != SQLITE_BLOB) return -1;
    out->n = sqlite3_column_bytes(st, col);
    out->p = sqlite3_column_blob(st, col);
    if (out->p == NULL) out->p = (const unsigned char *)"";
    return 0;
}

static int sqlite_int(sqlite3_stmt *st, int col, Int *out) {
    int type = sqlite3_column_type(st, col);
    out->null = type == SQLITE_NULL;
    out->value = 0;
    if (out->null) return 0;
    if (type != SQLITE_INTEGER) return -1;
    out->value = sqlite3_column_int64(st, col);
    return 0;
}

/* Rows are read and checked without Python's lock, so that other threads (another range's
 * checker) run meanwhile; `unlocked` holds this thread's state while the lock is let go. */
typedef struct {
    PyThreadState *state;
} Unlocked;

static void let_go(Unlocked *u) { u->state = PyEval_SaveThread(); }

static void take_back(Unlocked *u) {
    if (u->state != NULL) PyEval_RestoreThread(u->state);
    u->state = NULL;
}

/* A row was checked: every `batch` rows (and with `last`, for the rows since), on_batch is
 * told how many, and a signal (Ctrl-C) is looked at, with Python's lock taken back for it
 * (when `u` holds it let go). -2 on a Python error (set; the lock is let go again). */
static int tick(Checker *c, PyObject *on_batch, int last, Unlocked *u) {
    if (!last && ++c->since < c->batch) return 0;
    Py_ssize_t count = c->since;
    c->since = 0;
    int callback = on_batch != NULL && on_batch != Py_None && count > 0;
    if (u != NULL) take_back(u);
    int failed = PyErr_CheckSignals() < 0;
    if (!failed && callback) {
        PyObject *r = PyObject_CallFunction(on_batch, "n", count);
        failed = r == NULL;
        Py_XDECREF(r);
    }
    if (u != NULL) let_go(u);
    return failed ? -2 : 0;
}

/* The columns as stored; the spellings the Python reader has the database make (an id with
 * dashes, the time as entries write it) are made here, as the database would make them. */
static const char SQLITE_ROWS[] =
    "SELECT seq, case_id, case_seq, prev_case_hash, entry, leaf_hash, recorded_at, actor_id, "
    "action, object_type, object_id, sha256 FROM custody_entries WHERE seq > ?1 AND seq <= ?2 "
    "ORDER BY seq";

/* recorded_at as entries write it: SQLite keeps "2026-12-05 05:52:05.131645", entries say
 * "2026-12-05T05:52:05.131645Z" (every space a T, then a Z: replace(recorded_at, ' ', 'T')
 * || 'Z', as the Python reader asks the database for it). */
static int sqlite_time(sqlite3_stmt *st, int col, Text *out, unsigned char *spelled,
                       Py_ssize_t room) {
    if (sqlite_text(st, col, out, NULL) < 0 || out->null || out->n + 1 > room) return -1;
    for (Py_ssize_t i = 0; i < out->n; i++) spelled[i] = out->p[i] == ' ' ? 'T' : out->p[i];
    spelled[out->n] = 'Z';
    out->p = spelled;
    out->n += 1;
    return 0;
}

static PyObject *Checker_sqlite(Checker *c, PyObject *args) {
    const char *path;
    long long after, upto;
    PyObject *on_batch = Py_None;
    if (!PyArg_ParseTuple(args, "sLL|O", &path, &after, &upto, &on_batch) || !ready(c))
        return NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int failed = 0; /* a Python error is set, or a fault noted */
    char message[512] = "";
    Unlocked u;
    c->busy = 1;
    let_go(&u);
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(db, 30000);
    /* pages mapped instead of copied in: the log is read once, front to back */
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "PRAGMA mmap_size = 4294967296", NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db, SQLITE_ROWS, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 1, after);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, upto);
    unsigned char case_spelled[36], actor_spelled[36], at_spelled[64];
    while (rc == SQLITE_OK) {
        int step = sqlite3_step(st);
        if (step == SQLITE_DONE) break;
        if (step != SQLITE_ROW) {
            rc = step;
            break;
        }
        Row r;
        if (sqlite_int(st, 0, &r.seq) < 0 || sqlite_text(st, 1, &r.case_id, case_spelled) < 0 ||
            sqlite_int(st, 2, &r.case_seq) < 0 || sqlite_blob(st, 3, &r.prev) < 0 ||
            sqlite_blob(st, 4, &r.entry) < 0 || sqlite_blob(st, 5, &r.leaf) < 0 ||
            sqlite_time(st, 6, &r.at, at_spelled, sizeof at_spelled) < 0 ||
            sqlite_text(st, 7, &r.actor, actor_spelled) < 0 ||
            sqlite_text(st, 8, &r.action, NULL) < 0 ||
            sqlite_text(st, 9, &r.object_type, NULL) < 0 ||
            sqlite_text(st, 10, &r.object_id, NULL) < 0 ||
            sqlite_text(st, 11, &r.sha256, NULL) < 0) {
            give_up(c, "column storage", c->expected);
            break;
        }
        int held = check_row(c, &r);
        if (held == -2) failed = 1;
        if (held != 0) break;
        if (tick(c, on_batch, 0, &u) < 0) {
            failed = 1;
            break;
        }
    }
    if (!failed && c->why == NULL && rc == SQLITE_OK && tick(c, on_batch, 1, &u) < 0) failed = 1;
    if (rc != SQLITE_OK)
        snprintf(message, sizeof message, "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_finalize(st);
    sqlite3_close(db);
    take_back(&u);
    c->busy = 0;
    if (failed) return failed_read(c);
    if (rc != SQLITE_OK) {
        PyErr_Format(PyExc_OSError, "reading the custody log from %s: %s", path, message);
        return NULL;
    }
    return PyBool_FromLong(c->why == NULL);
}

/* --- PostgreSQL binary COPY ---------------------------------------------------------------- */

static const unsigned char COPY_SIGNATURE[11] = "PGCOPY\n\377\r\n";

static int32_t be32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static int64_t be64(const unsigned char *p) {
    return (int64_t)((uint64_t)(uint32_t)be32(p) << 32 | (uint32_t)be32(p + 4));
}

/* One field of a tuple at *p: 0, or 1 when the tuple is not all there yet, -1 if malformed. */
static int copy_field(const unsigned char **p, const unsigned char *end, Text *out) {
    if (end - *p < 4) return 1;
    int32_t n = be32(*p);
    *p += 4;
    if (n == -1) {
        out->null = 1;
        out->p = NULL;
        out->n = 0;
        return 0;
    }
    if (n < 0) return -1;
    if (end - *p < n) return 1;
    out->p = *p;
    out->n = n;
    out->null = 0;
    *p += n;
    return 0;
}

static int copy_int(const Text *t, Int *out) {
    out->null = t->null;
    out->value = 0;
    if (t->null) return 0;
    if (t->n == 8) out->value = be64(t->p);
    else if (t->n == 4) out->value = be32(t->p);
    else return -1;
    return 0;
}

/* A uuid (16 bytes) as PostgreSQL's uuid::text spells it, into `spelled` (36 bytes). */
static int copy_uuid(Text *t, unsigned char *spelled) {
    static const char digits[] = "0123456789abcdef";
    if (t->null) return 0;
    if (t->n != 16) return -1;
    unsigned char *to = spelled;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *to++ = '-';
        *to++ = (unsigned char)digits[t->p[i] >> 4];
        *to++ = (unsigned char)digits[t->p[i] & 15];
    }
    t->p = spelled;
    t->n = 36;
    return 0;
}

/* A timestamptz (microseconds since 2000-01-01 00:00 UTC) as the Python reader has
 * PostgreSQL spell it: to_char(recorded_at AT TIME ZONE 'UTC',
 * 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'). Years outside 1000..9999 give up. */
static int copy_time(Text *t, unsigned char *spelled) {
    if (t->null || t->n != 8) return -1;
    int64_t us = be64(t->p);
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    int64_t days = secs / 86400, rest = secs % 86400;
    if (rest < 0) {
        rest += 86400;
        days -= 1;
    }
    /* days since 1970-01-01 -> civil date (H. Hinnant's algorithm) */
    int64_t z = days + 10957 + 719468; /* 2000-01-01 is day 10957 of the Unix epoch */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    if (year < 1000 || year > 9999) return -1;
    /* "YYYY-MM-DDTHH:MM:SS.ffffffZ" */
    const struct {
        int64_t value;
        int at, digits;
    } parts[] = {{year, 0, 4},          {month, 5, 2},         {day, 8, 2},  {rest / 3600, 11, 2},
                 {rest / 60 % 60, 14, 2}, {rest % 60, 17, 2}, {frac, 20, 6}};
    memcpy(spelled, "0000-00-00T00:00:00.000000Z", 27);
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        int64_t v = parts[i].value;
        for (int k = parts[i].at + parts[i].digits - 1; k >= parts[i].at; k--, v /= 10)
            spelled[k] = (unsigned char)('0' + v % 10);
    }
    t->p = spelled;
    t->n = 27;
    return 0;
}

/* Keep `len` bytes at `data` for the next chunk, after what is kept already. */
static int keep_bytes(Checker *c, const unsigned char *data, size_t len) {
    if (grow(c, (void **)&c->buf, &c->bufcap, c->buflen + len, 1) < 0) return -1;
    memmove(c->buf + c->buflen, data, len);
    c->buflen += len;
    return 0;
}

/* The next bytes of a binary COPY stream: every whole row in them checked, the rest kept for
 * the next. -1 on a Python error; once not certain, nothing more is read. */
static int feed(Checker *c, const unsigned char *data, size_t len, PyObject *on_batch,
                Unlocked *u) {
    if (c->why != NULL || len == 0) return 0;
    if (c->buflen) { /* a row cut between chunks: joined first */
        if (keep_bytes(c, data, len) < 0) return -1;
        data = c->buf;
        len = c->buflen;
        c->buflen = 0;
    }
    const unsigned char *p = data, *end = data + len;
    if (c->copy_state == 0) {
        if (end - p < 19) goto keep;
        int32_t ext = be32(p + 15);
        if (memcmp(p, COPY_SIGNATURE, 11) != 0 || ext < 0) {
            give_up(c, "COPY header", c->expected);
            return 0;
        }
        if (end - p < 19 + ext) goto keep;
        p += 19 + ext;
        c->copy_state = 1;
    }
    while (c->copy_state == 1 && end - p >= 2) {
        const unsigned char *q = p;
        int16_t fields = (int16_t)(q[0] << 8 | q[1]);
        q += 2;
        if (fields == -1) {
            c->copy_state = 2;
            p = q;
            if (tick(c, on_batch, 1, u) < 0) return -1;
            break;
        }
        if (fields != 12) {
            give_up(c, "COPY column count", c->expected);
            return 0;
        }
        Text t[12];
        int more = 0;
        for (int i = 0; i < 12 && !more; i++) {
            int got = copy_field(&q, end, &t[i]);
            if (got < 0) {
                give_up(c, "COPY field", c->expected);
                return 0;
            }
            more = got;
        }
        if (more) break;
        Row r;
        unsigned char case_spelled[36], actor_spelled[36], at_spelled[40];
        if (copy_int(&t[0], &r.seq) < 0 || copy_int(&t[2], &r.case_seq) < 0 ||
            copy_uuid(&t[1], case_spelled) < 0 || copy_uuid(&t[7], actor_spelled) < 0 ||
            copy_time(&t[6], at_spelled) < 0) {
            give_up(c, "COPY value", c->expected);
            return 0;
        }
        r.case_id = t[1];
        r.prev = t[3];
        r.entry = t[4];
        r.leaf = t[5];
        r.at = t[6];
        r.actor = t[7];
        r.action = t[8];
        r.object_type = t[9];
        r.object_id = t[10];
        r.sha256 = t[11];
        int held = check_row(c, &r);
        if (held == -2) return -1;
        if (held != 0) return 0;
        if (tick(c, on_batch, 0, u) < 0) return -1;
        p = q;
    }
keep:
    return keep_bytes(c, p, end - p);
}

static PyObject *Checker_copy(Checker *c, PyObject *args) {
    Py_buffer chunk;
    PyObject *on_batch = Py_None;
    if (!PyArg_ParseTuple(args, "y*|O", &chunk, &on_batch)) return NULL;
    int fed = ready(c) ? feed(c, chunk.buf, chunk.len, on_batch, NULL) : -1;
    PyBuffer_Release(&chunk);
    if (fed < 0) return failed_read(c);
    return PyBool_FromLong(c->why == NULL);
}

/* libpq's functions, as found in the libpq this process loaded (psycopg's own). */
typedef int (*GetCopyData)(void *conn, char **buffer, int async);
typedef void (*FreeMem)(void *ptr);

/* The rows of the COPY under way on a libpq connection, read here instead of one Python call
 * a row. Reads up to the stream's trailer and no further (the COPY's end and its result are
 * left to the driver that started it), on to the trailer even once not certain; a Python
 * error (Ctrl-C) stops it at once, and the driver cancels the COPY as it unwinds. */
static PyObject *Checker_libpq(Checker *c, PyObject *args) {
    unsigned long long conn;
    const char *path;
    PyObject *on_batch = Py_None;
    if (!PyArg_ParseTuple(args, "Ks|O", &conn, &path, &on_batch) || !ready(c)) return NULL;
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD); /* the copy already loaded, or none */
    GetCopyData get = lib ? (GetCopyData)dlsym(lib, "PQgetCopyData") : NULL;
    FreeMem freemem = lib ? (FreeMem)dlsym(lib, "PQfreemem") : NULL;
    if (get == NULL || freemem == NULL) {
        if (lib) dlclose(lib);
        PyErr_Format(PyExc_OSError, "libpq is not loaded from %s", path);
        return NULL;
    }
    int failed = 0, ended = 0;
    Unlocked u;
    c->busy = 1;
    let_go(&u);
    for (;;) {
        char *data = NULL;
        int n = get((void *)(uintptr_t)conn, &data, 0);
        if (n < 0) { /* the COPY ended without its trailer (or broke): its end is read */
            give_up(c, "COPY ended", c->expected);
            ended = 1;
            break;
        }
        /* The trailer comes alone after rows; with no row, after the header in one message. */
        int trailer = n == 2 && (unsigned char)data[0] == 0xFF && (unsigned char)data[1] == 0xFF;
        failed = feed(c, (const unsigned char *)data, (size_t)n, on_batch, &u) < 0;
        freemem(data);
        if (trailer || c->copy_state == 2 || failed) break; /* failed: Ctrl-C, say; the driver
                                                               cancels the COPY */
    }
    take_back(&u);
    c->busy = 0;
    dlclose(lib);
    if (failed) return failed_read(c);
    return PyBool_FromLong(!ended);
}

/* --- the result ---------------------------------------------------------------------------- */

static PyObject *Checker_result(Checker *c, PyObject *Py_UNUSED(ignored)) {
    if (!ready(c)) return NULL;
    if (c->why != NULL || (c->copy_state == 1) || c->buflen != 0) Py_RETURN_NONE;
    PyObject *blocks = NULL, *marked = NULL, *case_entries = NULL;
    PyObject *heads = PyDict_New(), *opens = PyDict_New();
    if (heads == NULL || opens == NULL) goto fail;
    for (size_t i = 0; i < c->cap; i++) {
        Head *h = &c->heads[i];
        if (h->key == NULL) continue;
        PyObject *key = PyUnicode_DecodeUTF8(h->key, h->klen, "strict");
        if (key == NULL) goto fail;
        PyObject *head = Py_BuildValue("(Ly#L)", (long long)h->case_seq, (const char *)h->leaf,
                                       (Py_ssize_t)HASH, (long long)h->seq);
        int bad = head == NULL || PyDict_SetItem(heads, key, head) < 0;
        Py_XDECREF(head);
        if (!bad && h->opened) {
            PyObject *open;
            if (h->open_has_prev)
                open = Py_BuildValue("(Ly#)", (long long)h->open_case_seq,
                                     (const char *)h->open_prev, (Py_ssize_t)HASH);
            else
                open = Py_BuildValue("(LO)", (long long)h->open_case_seq, Py_None);
            bad = open == NULL || PyDict_SetItem(opens, key, open) < 0;
            Py_XDECREF(open);
        }
        Py_DECREF(key);
        if (bad) goto fail;
    }
    blocks = PyList_New(c->nblocks);
    marked = PyList_New((Py_ssize_t)c->nmarked);
    case_entries = PyList_New((Py_ssize_t)c->ncase_entries);
    if (blocks == NULL || marked == NULL || case_entries == NULL) goto fail;
    for (int64_t i = 0; i < c->nblocks; i++) {
        PyObject *root = PyBytes_FromStringAndSize((const char *)c->roots + i * HASH, HASH);
        if (root == NULL) goto fail;
        PyList_SET_ITEM(blocks, i, root);
    }
    for (size_t i = 0; i < c->nmarked; i++) {
        PyObject *kept = Py_BuildValue(
            "(Ly#)", (long long)c->marked_first[i],
            (const char *)c->marked_leaves + i * (size_t)c->block * HASH, c->block * HASH);
        if (kept == NULL) goto fail;
        PyList_SET_ITEM(marked, (Py_ssize_t)i, kept);
    }
    for (size_t i = 0; i < c->ncase_entries; i++) {
        PyObject *seq = PyLong_FromLongLong(c->case_entries[i]);
        if (seq == NULL) goto fail;
        PyList_SET_ITEM(case_entries, (Py_ssize_t)i, seq);
    }
    PyObject *tail = PyBytes_FromStringAndSize((const char *)c->leaves, c->nleaves * HASH);
    if (tail == NULL) goto fail;
    return Py_BuildValue("{s:L,s:L,s:N,s:N,s:N,s:N,s:N,s:N}", "next_seq",
                         (long long)c->expected, "count",
                         (long long)(c->nblocks * c->block + c->nleaves), "blocks", blocks,
                         "tail", tail, "marked", marked, "heads", heads, "opens", opens,
                         "case_entries", case_entries);
fail:
    Py_XDECREF(heads);
    Py_XDECREF(opens);
    Py_XDECREF(blocks);
    Py_XDECREF(marked);
    Py_XDECREF(case_entries);
    return NULL;
}

static PyObject *Checker_why(Checker *c, void *Py_UNUSED(closure)) {
    if (c->why == NULL) Py_RETURN_NONE;
    return Py_BuildValue("(sL)", c->why, (long long)c->why_seq);
}

static PyMethodDef Checker_methods[] = {
    {"sqlite", (PyCFunction)Checker_sqlite, METH_VARARGS,
     "sqlite(path, after, upto, on_batch=None) -> bool: check the entries after < seq <= upto "
     "of the log in the SQLite file at path; False once not certain."},
    {"copy", (PyCFunction)Checker_copy, METH_VARARGS,
     "copy(chunk, on_batch=None) -> bool: check the rows in the next chunk of a PostgreSQL "
     "binary COPY stream of the columns as stored (ids as uuid, the time as timestamptz), "
     "in the order of SQLite's; False once not certain."},
    {"libpq", (PyCFunction)Checker_libpq, METH_VARARGS,
     "libpq(pgconn_ptr, libpq_path, on_batch=None) -> bool: check the rows of the binary COPY "
     "under way on that libpq connection, read up to its trailer with the PQgetCopyData of the "
     "libpq loaded from libpq_path; False when the COPY ended without one (its end is then "
     "read: the caller collects its result). Whether it holds: result()."},
    {"result", (PyCFunction)Checker_result, METH_NOARGS,
     "result() -> dict | None: what the run adds up to, or None when it is not certain."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Checker_getset[] = {
    {"gave_up", (getter)Checker_why, NULL,
     "(what, seq) that made the checker give up, or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CheckerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "evidence._custodycheck.Checker",
    .tp_basicsize = sizeof(Checker),
    .tp_dealloc = (destructor)Checker_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Certifies a run of custody entries, or says it is not certain.",
    .tp_methods = Checker_methods,
    .tp_getset = Checker_getset,
    .tp_init = (initproc)Checker_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "evidence._custodycheck",
    "The custody log's checks in compiled code (see evidence/custody.py).", -1, NULL, NULL, NULL,
    NULL, NULL,
};

PyMODINIT_FUNC PyInit__custodycheck(void) {
    init_stops();
    if (PyType_Ready(&CheckerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&CheckerType);
    if (PyModule_AddObject(m, "Checker", (PyObject *)&CheckerType) < 0) {
        Py_DECREF(&CheckerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
