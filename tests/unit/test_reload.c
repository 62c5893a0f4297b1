/*
 * test_reload.c — a configuration replaced on SIGHUP lives exactly as long as the messages
 * whose steps were built with it (reload.c): a table of holds, let-gos and reloads, with the
 * number of replaced configs still kept after each. Under the ASan build (tests/run.sh,
 * detect_leaks=1) a replaced config that is dropped without being freed is a leak at exit,
 * and one freed while a message still holds it a use-after-free in the next step.
 */
#include <stdlib.h>
#include <string.h>

#include "fn_test.h"
#include "funneld/daemon.h"

static fn_config_t *config(const char *funnel)
{
    char text[512], err[256] = "";
    snprintf(
        text, sizeof text,
        "{\"funnels\":[{\"name\":\"%s\",\"stages\":[{\"name\":\"a\",\"on\":[{\"type\":\"t\"}]},"
        "{\"name\":\"b\",\"on\":[{\"type\":\"u\"}]}]}]}",
        funnel);
    json_t *root = json_loads(text, 0, NULL);
    fn_config_t *cfg = root ? fn_config_from_json(root, err, sizeof err) : NULL;
    json_decref(root);
    if (!cfg)
        fprintf(stderr, "test config: %s\n", err);
    return cfg;
}

enum { HOLD, LET_GO, RELOAD };

static void test_replaced_configs_live_while_held(void)
{
    static const struct {
        int op;
        int msg; /* HOLD, LET_GO: which message */
        size_t retired;
    } steps[] = {
        {HOLD, 0, 0},   {HOLD, 1, 0},   /* two steps built with config 1 */
        {RELOAD, 0, 1},                 /* 1 is kept for them */
        {HOLD, 2, 1},                   /* a step built with 2 */
        {LET_GO, 0, 1}, {RELOAD, 0, 2}, /* 1 (held by message 1) and 2 (message 2) kept */
        {LET_GO, 2, 1},                 /* 2 freed */
        {HOLD, 1, 0},                   /* message 1's step rebuilt with 3: 1 freed */
        {RELOAD, 0, 1}, {LET_GO, 1, 0}, /* 3 kept for message 1, then freed */
        {LET_GO, 1, 0},                 /* holds nothing: nothing happens */
        {RELOAD, 0, 0},                 /* nothing holds 4: freed at once */
        {HOLD, 0, 0},                   /* held by message 0 at exit: freed with the daemon */
    };
    fn_daemon_t *d = calloc(1, sizeof *d);
    if (!d)
        return;
    d->log.out = stderr;
    d->log.level = FN_LOG_ERROR;
    d->cfg = config("f1");
    CHECK(d->cfg != NULL);
    if (!d->cfg || fn_eval_start(d)) {
        free(d);
        return;
    }
    fn_msg_t msgs[3];
    memset(msgs, 0, sizeof msgs);
    int generation = 1;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        fn_msg_t *m = &msgs[steps[i].msg];
        switch (steps[i].op) {
        case HOLD:
            fn_reload_hold(d, m);
            CHECK(m->cfg == d->cfg);
            break;
        case LET_GO:
            fn_reload_let_go(d, m);
            CHECK(m->cfg == NULL);
            break;
        case RELOAD: {
            char name[8];
            snprintf(name, sizeof name, "f%d", ++generation);
            d->pending_cfg = config(name);
            fn_reload_apply(d);
            CHECK(d->pending_cfg == NULL);
            CHECK_STR(d->cfg->funnels[0].name, name);
            CHECK_INT(d->cfg_users, 0);
            break;
        }
        }
        if (fn_reload_retired(d) != steps[i].retired)
            fprintf(stderr, "step %zu\n", i);
        CHECK_INT(fn_reload_retired(d), steps[i].retired);
        /* every message still points at a live config: its first funnel is readable */
        for (size_t k = 0; k < 3; k++)
            CHECK(!msgs[k].cfg || msgs[k].cfg->funnels[0].name[0] == 'f');
    }
    CHECK_INT(d->cfg_users, 1);
    fn_eval_free(d);
    fn_reload_free(d);
    free(d->stats.trans_by_funnel);
    free(d->stats.trig_by_funnel);
    fn_config_free(d->cfg);
    free(d);
}

int main(void)
{
    test_replaced_configs_live_while_held();
    return fn_test_result("test_reload");
}
