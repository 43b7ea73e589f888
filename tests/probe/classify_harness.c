/* The fast path's path classification on its own, for tests/test_paths.py: prefilter.c's
 * lexical_class and joined_local with the roots of argv[1] ("/a:/b/c"), answering one
 * line of stdin at a time with one digit:
 *     L<TAB>path          -> lexical_class(path)   (objmount/paths.py Lexical numbers)
 *     J<TAB>base<TAB>path -> joined_local(base, path): 1 when outside every root
 * No libc headers: prefilter.c declares its own types and the functions libc would. */
#include "../../tracer/prefilter/prefilter.c"

long read(int fd, void *buf, unsigned long n);
long write(int fd, const void *buf, unsigned long n);

static char input[1 << 20];

int main(int argc, char **argv) {
    if (argc != 2 || !copy_env(argv[1], roots_buf, sizeof roots_buf)) return 2;
    for (char *p = roots_buf; *p && n_roots < MAX_ROOTS;) {
        char *q = p;
        while (*q && *q != ':') q++;
        int more = *q == ':';
        *q = 0;
        roots[n_roots] = p;
        root_len[n_roots++] = (size_t)(q - p);
        p = more ? q + 1 : q;
    }
    size_t len = 0;
    long n;
    while ((n = read(0, input + len, sizeof input - 1 - len)) > 0) len += (size_t)n;
    input[len] = 0;
    for (char *line = input; *line;) {
        char *end = line;
        while (*end && *end != '\n') end++;
        char *next = *end ? end + 1 : end;
        *end = 0;
        char *a = line + 2, *b = a;
        char answer = '?';
        if (line[0] == 'L') {
            answer = (char)('0' + lexical_class(a));
        } else if (line[0] == 'J') {
            while (*b && *b != '\t') b++;
            if (*b) *b++ = 0;
            char buf[SMALL_PATH];
            if (!copy_env(a, buf, sizeof buf)) return 2;
            answer = (char)('0' + joined_local(buf, b));
        }
        char out[2] = {answer, '\n'};
        write(1, out, 2);
        line = next;
    }
    return 0;
}
