/*
 * reload.c — SIGHUP: re-read the configuration and apply its funnels without a restart
 * (SPEC §6, §7).
 *
 * Only funnels (stages, rules, caps, bottleneck settings) change on a reload; connection,
 * topic, key-layout and engine settings are fixed at start (the option tables in config.c
 * mark which), and a file that changes any of them is refused with the field named (restart
 * to change those). An invalid file is
 * refused with the path of the offending field; either way the running config stays.
 *
 * In-flight work is never lost: each message's step is parsed with the config it was built
 * with (fn_msg_t.cfg), so a replaced config is kept (retired) while messages hold it, and
 * freed when the last of them lets go (fn_reload_let_go, when the message's record is
 * released): a daemon reloaded every few minutes for months keeps only the configs its
 * in-flight steps need. Messages are the only holders: the new config is applied between two
 * evaluations, when no analytics request or announcement refers to the old funnels, and
 * everything else (timers, metrics, the producer) reads the running config when it runs, never
 * keeping a pointer into it.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/reload.h"

/* A configuration replaced by a reload, kept while steps built with it are in flight. */
typedef struct fn_retired_cfg {
    fn_config_t *cfg;
    size_t users; /* messages holding it (fn_msg_t.cfg); freed when the last lets go */
    struct fn_retired_cfg *next;
} fn_retired_cfg_t;

struct fn_reload {
    fn_host_t host;           /* log, counters (remapped on a swap), the stop */
    fn_config_t **running;    /* the slot of the running config, which a swap replaces */
    int64_t generation;       /* 1 at start, +1 per applied reload */
    char *config_path;        /* owned; re-read on SIGHUP */
    fn_config_t *pending_cfg; /* accepted by a reload, applied once analytics are idle */
    size_t cfg_users;         /* messages holding *running (fn_msg_t.cfg) */
    fn_retired_cfg_t *retired;
    fn_reload_hooks_t hooks; /* the evaluations' part in a swap (reload.h) */
};

fn_reload_t *fn_reload_new(const fn_host_t *host, fn_config_t **running)
{
    fn_reload_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->host = *host;
    r->running = running;
    r->generation = 1;
    return r;
}

int64_t fn_reload_generation(const fn_reload_t *r)
{
    return r->generation;
}

void fn_reload_set_hooks(fn_reload_t *r, const fn_reload_hooks_t *hooks)
{
    r->hooks = *hooks;
}

int fn_reload_watch(fn_reload_t *r, const char *config_path)
{
    char *copy = strdup(config_path);
    if (!copy)
        return FN_ERR;
    free(r->config_path);
    r->config_path = copy;
    return FN_OK;
}

/* The option tables own which settings are fixed at start (config.c's reloadable flag). */
const char *fn_reload_immutable_diff(const fn_config_t *a, const fn_config_t *b)
{
    return fn_config_fixed_diff(a, b);
}

void fn_reload_request(fn_reload_t *r)
{
    char err[512];
    if (!r->config_path) {
        fn_log(r->host.log, FN_LOG_WARN, "reload", "SIGHUP: no config file to re-read");
        return;
    }
    fn_config_t *cfg = fn_config_load(r->config_path, err, sizeof err);
    if (!cfg) {
        fn_log(r->host.log, FN_LOG_ERROR, "reload",
               "SIGHUP: %s: %s; keeping the running configuration (generation %lld)",
               r->config_path, err, (long long)r->generation);
        return;
    }
    const char *field = fn_reload_immutable_diff(*r->running, cfg);
    if (field) {
        fn_log(r->host.log, FN_LOG_ERROR, "reload",
               "SIGHUP: %s: %s: cannot change on a reload (restart to change it); keeping the "
               "running configuration (generation %lld)",
               r->config_path, field, (long long)r->generation);
        fn_config_free(cfg);
        return;
    }
    fn_reload_accept(r, cfg);
}

void fn_reload_accept(fn_reload_t *r, fn_config_t *cfg)
{
    fn_config_free(r->pending_cfg); /* two quick SIGHUPs: the later file wins */
    r->pending_cfg = cfg;
    fn_reload_apply(r);
}

bool fn_reload_pending(const fn_reload_t *r)
{
    return r->pending_cfg != NULL;
}

size_t fn_reload_users(const fn_reload_t *r)
{
    return r->cfg_users;
}

/* Per-funnel counters follow their funnel by name; new funnels start at 0. */
static int remap_stats(fn_stats_t *st, const fn_config_t *old, const fn_config_t *cfg)
{
    uint64_t(*trans)[4] = calloc(cfg->n_funnels, sizeof *trans);
    uint64_t(*trig)[1 + FN_MAX_RULES] = calloc(cfg->n_funnels, sizeof *trig);
    if (!trans || !trig) {
        free(trans);
        free(trig);
        return FN_ERR;
    }
    for (size_t i = 0; i < cfg->n_funnels; i++) {
        const fn_funnel_t *was =
            fn_config_funnel(old, cfg->funnels[i].name, strlen(cfg->funnels[i].name));
        if (!was)
            continue;
        size_t j = (size_t)(was - old->funnels);
        memcpy(trans[i], st->trans_by_funnel[j], sizeof trans[i]);
        trig[i][0] = st->trig_by_funnel[j][0];
        for (size_t r = 0; r < cfg->funnels[i].n_retarget; r++)
            for (size_t q = 0; q < was->n_retarget; q++)
                if (strcmp(cfg->funnels[i].retarget[r].name, was->retarget[q].name) == 0)
                    trig[i][1 + r] = st->trig_by_funnel[j][1 + q];
    }
    free(st->trans_by_funnel);
    free(st->trig_by_funnel);
    st->trans_by_funnel = trans;
    st->trig_by_funnel = trig;
    return FN_OK;
}

void fn_reload_apply(fn_reload_t *rl)
{
    if (!rl->pending_cfg || (rl->hooks.quiet && !rl->hooks.quiet(rl->hooks.priv)))
        return;
    fn_retired_cfg_t *r = NULL;
    if (rl->cfg_users && !(r = malloc(sizeof *r)))
        return; /* tried again on the next tick */
    fn_config_t *old = *rl->running, *cfg = rl->pending_cfg;
    if (remap_stats(rl->host.stats, old, cfg)) {
        free(r);
        return;
    }
    if (rl->hooks.release)
        rl->hooks.release(rl->hooks.priv);
    *rl->running = cfg;
    rl->pending_cfg = NULL;
    if (r) {
        r->cfg = old;
        r->users = rl->cfg_users;
        r->next = rl->retired;
        rl->retired = r;
    } else {
        fn_config_free(old); /* no step was built with it and still in flight */
    }
    rl->cfg_users = 0;
    if (rl->hooks.adopt && rl->hooks.adopt(rl->hooks.priv)) {
        fn_log(rl->host.log, FN_LOG_ERROR, "reload", "out of memory; stopping");
        rl->host.stop(rl->host.data, 1);
        return;
    }
    rl->generation++;
    fn_log(rl->host.log, FN_LOG_INFO, "reload",
           "configuration generation %lld applied: %zu funnel(s)", (long long)rl->generation,
           cfg->n_funnels);
}

void fn_reload_hold(fn_reload_t *r, fn_msg_t *m)
{
    fn_reload_let_go(r, m);
    m->cfg = *r->running;
    r->cfg_users++;
}

void fn_reload_let_go(fn_reload_t *rl, fn_msg_t *m)
{
    if (!m->cfg)
        return;
    if (m->cfg == *rl->running) {
        assert(rl->cfg_users > 0);
        rl->cfg_users--;
    } else {
        fn_retired_cfg_t **at = &rl->retired;
        while (*at && (*at)->cfg != m->cfg)
            at = &(*at)->next;
        assert(*at && (*at)->users > 0); /* a message holds only a live config */
        fn_retired_cfg_t *r = *at;
        if (--r->users == 0) {
            *at = r->next;
            fn_config_free(r->cfg);
            free(r);
        }
    }
    m->cfg = NULL;
}

size_t fn_reload_retired(const fn_reload_t *rl)
{
    size_t n = 0;
    for (const fn_retired_cfg_t *r = rl->retired; r; r = r->next)
        n++;
    return n;
}

void fn_reload_free(fn_reload_t *rl)
{
    if (!rl)
        return;
    fn_config_free(rl->pending_cfg);
    while (rl->retired) {
        fn_retired_cfg_t *r = rl->retired;
        rl->retired = r->next;
        fn_config_free(r->cfg);
        free(r);
    }
    free(rl->config_path);
    free(rl);
}
