#include "config/yamldoc.h"

#include <string.h>

/* Loads the document from p (its input set) and frees p; on failure why says where (path, or
 * a line of text when path is NULL) and what, with libyaml's context when it gives one. */
static bool load(yaml_parser_t *p, yaml_document_t *doc, const char *path, char *why, size_t whylen)
{
    bool ok = yaml_parser_load(p, doc);
    if (!ok) {
        char where[4200];
        size_t line = p->problem_mark.line + 1;
        if (path)
            snprintf(where, sizeof where, "%s:%zu", path, line);
        else
            snprintf(where, sizeof where, "line %zu", line);
        snprintf(why, whylen, "%s: %s%s%s", where, p->problem ? p->problem : "invalid YAML",
                 p->context ? " " : "", p->context ? p->context : "");
    }
    yaml_parser_delete(p);
    return ok;
}

bool yamldoc_file(yaml_document_t *doc, FILE *f, const char *path, char *why, size_t whylen)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        snprintf(why, whylen, "%s: out of memory", path);
        return false;
    }
    yaml_parser_set_input_file(&p, f);
    return load(&p, doc, path, why, whylen);
}

bool yamldoc_text(yaml_document_t *doc, const char *text, size_t len, char *why, size_t whylen)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    return load(&p, doc, NULL, why, whylen);
}

yaml_node_t *yamldoc_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    yaml_node_t *v = NULL;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(doc, pr->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key))
            v = yaml_document_get_node(doc, pr->value);
    }
    return v;
}
