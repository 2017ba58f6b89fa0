/* fs: small file-system helpers shared by the modules that keep files of their own. */
#ifndef GD_FS_H
#define GD_FS_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p dir: each missing level is made with mode (levels that exist are left as they are).
 * 0, or -1 with errno set and, when failed is given, the level that could not be made in it. */
int fs_mkdirs(const char *dir, mode_t mode, char *failed, size_t failedlen);

#endif
