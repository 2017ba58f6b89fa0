#include "config/yamldoc.h"

#include <string.h>

/* The parser's problem, where it is and, when libyaml says it, in what context. */
static void problem(const yaml_parser_t *p, const char *path, char *why, size_t whylen)
{
    const char *what = p->problem ? p->problem : "invalid YAML";
    size_t line = p->problem_mark.line + 1;
    if (path)
        snprintf(why, whylen, "%s:%zu: %s%s%s", path, line, what, p->context ? " " : "",
                 p->context ? p->context : "");
    else
        snprintf(why, whylen, "line %zu: %s%s%s", line, what, p->context ? " " : "",
                 p->context ? p->context : "");
}

bool yamldoc_file(yaml_document_t *doc, FILE *f, const char *path, char *why, size_t whylen)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        snprintf(why, whylen, "%s: out of memory", path);
        return false;
    }
    yaml_parser_set_input_file(&p, f);
    bool ok = yaml_parser_load(&p, doc);
    if (!ok) problem(&p, path, why, whylen);
    yaml_parser_delete(&p);
    return ok;
}

bool yamldoc_text(yaml_document_t *doc, const char *text, size_t len, char *why, size_t whylen)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    bool ok = yaml_parser_load(&p, doc);
    if (!ok) problem(&p, NULL, why, whylen);
    yaml_parser_delete(&p);
    return ok;
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
