/* fs: small file-system helpers shared by the modules that keep files of their own. */
#ifndef GD_FS_H
#define GD_FS_H

#include <stddef.h>
#include <stdbool.h>
#include <sys/types.h>

/* mkdir -p dir: each missing level is made with mode (levels that exist are left as they are).
 * 0, or -1 with errno set and, when failed is given, the level that could not be made in it. */
int fs_mkdirs(const char *dir, mode_t mode, char *failed, size_t failedlen);
/* Whether path is dir or inside it, as written (both absolute; a trailing slash of dir does not
 * count; "/" holds everything). Nothing is resolved: pass real paths where links matter. */
bool fs_inside(const char *path, const char *dir);

#endif
