/* yamldoc: a YAML document read whole (libyaml's document API), as every YAML file of goosed is
 * read: config.yaml, secrets.yaml, permission.yaml, the extensions and the allowlist. One place
 * says how a document that does not parse is reported. */
#ifndef GD_YAMLDOC_H
#define GD_YAMLDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <yaml.h>

/* Loads the first document of f into doc (the caller frees it with yaml_document_delete). false
 * when it does not parse, with "PATH:LINE: problem" in why (path names f in the message). An
 * empty file is an empty document (no root node). */
bool yamldoc_file(yaml_document_t *doc, FILE *f, const char *path, char *why, size_t whylen);
/* The same for text (len bytes), with "line LINE: problem" in why. */
bool yamldoc_text(yaml_document_t *doc, const char *text, size_t len, char *why, size_t whylen);
/* The value of key in map, when map is a mapping that has key as a scalar key (the last one, when
 * it has key twice, as YAML readers mostly take it); else NULL. */
yaml_node_t *yamldoc_get(yaml_document_t *doc, yaml_node_t *map, const char *key);

#endif
