/* developer/call: the life of a developer extension's call, whichever tool it is for: linked
 * into its extension's list of calls while it runs, ended on the loop thread (directly, posted,
 * or after a pool worker), and freed with the extension's reference it holds. A tool with state
 * of its own (the shell) frees it through c->release. */
#include <stdlib.h>

#include "core/loop.h"
#include "core/pool.h"
#include "extensions/developer/dev.h"
#include "extensions/sandbox.h"

static void dev_free(developer *d)
{
    dev_undo_free(&d->undo);
    pthread_mutex_destroy(&d->undo.mu);
    json_decref(d->tools);
    sandbox_env_free(d->env);
    sandbox_env_free(d->protected_dirs);
    free(d);
}

void dev_unref(developer *d)
{
    if (--d->refs == 0) dev_free(d);
}

void dev_call_unlink(dev_call *c)
{
    developer *d = c->d;
    if (c->prev)
        c->prev->next = c->next;
    else if (d->calls == c)
        d->calls = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

void dev_call_free(dev_call *c)
{
    developer *d = c->d;
    if (!c->orphan) dev_call_unlink(c);
    if (c->release) c->release(c);
    json_decref(c->args);
    free(c->out.text);
    free(c);
    dev_unref(d);
}

void dev_call_end(dev_call *c)
{
    if (!c->orphan) {
        dev_call_unlink(c);
        c->orphan = true; /* unlinked: dev_call_free must not do it again */
        ext_result res = c->out.text ? ext_text_result(c->out.text, c->out.is_error)
                                     : ext_text_result("out of memory", true);
        c->done(c->ud, &res); /* res.content is the callee's now */
    }
    dev_call_free(c);
}

static void posted_end(void *arg)
{
    dev_call_end(arg);
}

gd_err dev_call_post(dev_call *c)
{
    return loop_post(c->d->host.l, posted_end, c);
}

gd_err dev_submit(dev_call *c, pool_fn fn)
{
    gd_err e = pool_submit(c->d->host.workers, fn, c);
    if (e == GD_OK || e == GD_ENOMEM) return e;
    dev_fail(&c->out, e,
             e == GD_AGAIN ? "too many tool calls are running; try again"
                           : "the tool was not run: goosed is shutting down");
    return dev_call_post(c);
}
