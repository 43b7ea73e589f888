/* What a path string says by itself about being below one of the virtual roots: shared by
 * the preloaded library (prefilter.c) and the tracer's quick loop (quickloop.c), which
 * must answer alike (objmount/paths.py's lexical_class is the reference). No libc: the
 * preloaded library is built without it. */
#ifndef TRACER_LEXICAL_H
#define TRACER_LEXICAL_H

#define MAX_ROOTS 64

static const char *roots[MAX_ROOTS];   /* absolute, normalized */
static size_t root_len[MAX_ROOTS];
static int n_roots;

/* Each includer uses some of these. */
#define LEXICAL static __attribute__((unused))

LEXICAL size_t slen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

LEXICAL int starts(const char *s, const char *prefix) {
    while (*prefix) if (*s++ != *prefix++) return 0;
    return 1;
}

LEXICAL int same(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

/* The next component of the path at *p ('/'s skipped): its start, its length in *n, and
 * *p moved past it; 0 at the end. */
LEXICAL const char *next_part(const char **p, size_t *n) {
    const char *s = *p;
    while (*s == '/') s++;
    if (!*s) return 0;
    const char *e = s;
    while (*e && *e != '/') e++;
    *n = (size_t)(e - s);
    *p = e;
    return s;
}

LEXICAL int is_dot(const char *part, size_t n) { return n == 1 && part[0] == '.'; }
LEXICAL int is_dotdot(const char *part, size_t n) { return n == 2 && part[0] == '.' && part[1] == '.'; }

/* Collapse '//', '.' and '..' of an absolute path, as the supervisor does (lexically).
 * Returns 0 if it does not fit. */
LEXICAL int normalize(const char *in, char *out, size_t cap) {
    size_t o = 0, n;
    const char *rest = in, *part;
    while ((part = next_part(&rest, &n))) {
        if (is_dot(part, n)) {
            /* nothing */
        } else if (is_dotdot(part, n)) {
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--;
        } else {
            if (o + 1 + n + 1 > cap) return 0;
            out[o++] = '/';
            for (size_t i = 0; i < n; i++) out[o++] = part[i];
        }
    }
    if (o == 0) out[o++] = '/';
    out[o] = 0;
    return 1;
}

LEXICAL int under_root(const char *path) {
    for (int i = 0; i < n_roots; i++) {
        size_t n = root_len[i];
        if (starts(path, roots[i]) && (path[n] == 0 || path[n] == '/')) return 1;
    }
    return 0;
}

/* The k-th component of root i (0-based): its start and length; 0 if it has fewer. */
LEXICAL int root_part(int i, size_t k, const char **at, size_t *len) {
    const char *rest = roots[i], *part;
    while ((part = next_part(&rest, len)))
        if (k-- == 0) {
            *at = part;
            return 1;
        }
    return 0;
}

/* Does a '..' of the absolute `path` step back from a name strictly below a root
 * (/v/l/../../f)? Where it leads then depends on what that name is, not on its letters:
 * the supervisor walks it. objmount/paths.py's pops_below_root. Kept in a few bytes per
 * root, not a path buffer: the preloaded library may run on a small signal stack. */
LEXICAL int pops_below_root(const char *path) {
    unsigned short matched[MAX_ROOTS];   /* leading components of the prefix that are root i's */
    unsigned short parts[MAX_ROOTS];     /* how many root i has */
    size_t depth = 0;
    for (int i = 0; i < n_roots; i++) {
        const char *rest = roots[i];
        size_t len;
        matched[i] = 0;
        parts[i] = 0;
        while (next_part(&rest, &len)) parts[i]++;
    }
    const char *rest = path, *p;
    size_t n;
    while ((p = next_part(&rest, &n))) {
        if (is_dotdot(p, n)) {
            if (depth > 0) {
                for (int i = 0; i < n_roots; i++)
                    if (matched[i] == parts[i] && depth > parts[i]) return 1;
                depth--;
                for (int i = 0; i < n_roots; i++)
                    if (matched[i] > depth) matched[i] = (unsigned short)depth;
            }
        } else if (!is_dot(p, n)) {
            for (int i = 0; i < n_roots; i++) {
                const char *at;
                size_t len;
                if (matched[i] == depth && root_part(i, matched[i], &at, &len) && len == n) {
                    size_t k = 0;
                    while (k < n && at[k] == p[k]) k++;
                    if (k == n) matched[i]++;
                }
            }
            if (depth < 0xFFFF) depth++;
        }
    }
    return 0;
}

/* Lexical normalization could change what the path names ('//', '.', '..')? */
LEXICAL int needs_normalizing(const char *path) {
    for (const char *c = path; *c; c++)
        if (c[0] == '/' && (c[1] == '/' || c[1] == '.')) return 1;
    return 0;
}

/* A name that leads to a descriptor (checked on the path as given and normalized):
 * /proc/..., /dev/fd/..., and /dev/stdin, /dev/stdout, /dev/stderr (links to
 * /proc/self/fd/0-2). The supervisor decides those: a virtual descriptor's must reopen
 * the object, not the bare cache file. */
LEXICAL int std_link(const char *path) {
    return same(path, "/dev/stdin") || same(path, "/dev/stdout") || same(path, "/dev/stderr");
}

LEXICAL int fd_link_name(const char *path) {
    return starts(path, "/proc/") || starts(path, "/dev/fd/") || std_link(path);
}

#endif
