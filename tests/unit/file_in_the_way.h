/* Unit tests' helper: a data directory that cannot be made, for stores that cannot open.
 * Include after <cmocka.h>. */
#ifndef GOOSED_TESTS_FILE_IN_THE_WAY_H
#define GOOSED_TESTS_FILE_IN_THE_WAY_H

#include <stdio.h>

/* Makes root/name a regular file and puts root/name/sessions in out: a directory under a file
 * (mkdir says ENOTDIR, "Not a directory"). */
static inline void dir_under_file(const char *root, const char *name, char *out, size_t outlen)
{
    char file[512];
    snprintf(file, sizeof file, "%s/%s", root, name);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(out, outlen, "%s/sessions", file);
}

#endif
