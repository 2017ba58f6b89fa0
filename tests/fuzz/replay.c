/* replay: a main for the fuzz harnesses without libFuzzer (gcc, the ASan build): runs
 * LLVMFuzzerTestOneInput once on each file named on the command line, or on each file of each
 * directory named (not recursive), in name order. Exits 1 when a path cannot be read or holds no
 * input at all, so a corpus that went missing fails the test instead of passing empty. */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Runs the harness on the file at path; false when it cannot be read. */
static bool run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return false;
    }
    size_t cap = 4096, len = 0;
    uint8_t *data = malloc(cap);
    size_t n;
    while (data && (n = fread(data + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *grown = realloc(data, cap *= 2);
            if (!grown) free(data);
            data = grown;
        }
    }
    bool ok = data && !ferror(f);
    fclose(f);
    if (!ok) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        free(data);
        return false;
    }
    /* an exact-size copy, so that ASan sees a read past the input */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(data);
        return false;
    }
    memcpy(exact, data, len);
    free(data);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return true;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    size_t runs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (!run_file(argv[i])) return 1;
            runs++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, NULL, by_name);
        if (n < 0) {
            fprintf(stderr, "replay: cannot list %s\n", argv[i]);
            return 1;
        }
        bool ok = true;
        for (int k = 0; k < n; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
            if (ok && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                ok = run_file(path);
                runs++;
            }
            free(names[k]);
        }
        free(names);
        if (!ok) return 1;
    }
    if (!runs) {
        fprintf(stderr, "replay: no input to run\n");
        return 1;
    }
    printf("replay: %zu inputs, no crash\n", runs);
    return 0;
}
