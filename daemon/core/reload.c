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
 * everything else (timers, metrics, the producer) reads d->cfg when it runs, never keeping a
 * pointer into it.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/daemon.h"

/* The option tables own which settings are fixed at start (config.c's reloadable flag). */
const char *fn_reload_immutable_diff(const fn_config_t *a, const fn_config_t *b)
{
    return fn_config_fixed_diff(a, b);
}

void fn_reload_request(fn_daemon_t *d)
{
    char err[512];
    if (!d->config_path) {
        fn_log(&d->log, FN_LOG_WARN, "reload", "SIGHUP: no config file to re-read");
        return;
    }
    fn_config_t *cfg = fn_config_load(d->config_path, err, sizeof err);
    if (!cfg) {
        d->stats.reloads_rejected++;
        fn_log(&d->log, FN_LOG_ERROR, "reload",
               "SIGHUP: %s: %s; keeping the running configuration (generation %lld)",
               d->config_path, err, (long long)d->config_generation);
        return;
    }
    const char *field = fn_reload_immutable_diff(d->cfg, cfg);
    if (field) {
        d->stats.reloads_rejected++;
        fn_log(&d->log, FN_LOG_ERROR, "reload",
               "SIGHUP: %s: %s: cannot change on a reload (restart to change it); keeping the "
               "running configuration (generation %lld)",
               d->config_path, field, (long long)d->config_generation);
        fn_config_free(cfg);
        return;
    }
    fn_config_free(d->pending_cfg); /* two quick SIGHUPs: the later file wins */
    d->pending_cfg = cfg;
    fn_reload_apply(d);
}

/* Per-funnel counters follow their funnel by name; new funnels start at 0. */
static int remap_stats(fn_daemon_t *d, const fn_config_t *old, const fn_config_t *cfg)
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
        memcpy(trans[i], d->stats.trans_by_funnel[j], sizeof trans[i]);
        trig[i][0] = d->stats.trig_by_funnel[j][0];
        for (size_t r = 0; r < cfg->funnels[i].n_retarget; r++)
            for (size_t q = 0; q < was->n_retarget; q++)
                if (strcmp(cfg->funnels[i].retarget[r].name, was->retarget[q].name) == 0)
                    trig[i][1 + r] = d->stats.trig_by_funnel[j][1 + q];
    }
    free(d->stats.trans_by_funnel);
    free(d->stats.trig_by_funnel);
    d->stats.trans_by_funnel = trans;
    d->stats.trig_by_funnel = trig;
    return FN_OK;
}

void fn_reload_apply(fn_daemon_t *d)
{
    if (!d->pending_cfg || !fn_eval_idle(d))
        return;
    for (size_t i = 0; d->evals && i < d->cfg->n_funnels; i++)
        if (d->evals[i].busy || d->evals[i].announcing)
            return;
    fn_retired_cfg_t *r = NULL;
    if (d->cfg_users && !(r = malloc(sizeof *r)))
        return; /* tried again on the next tick */
    fn_config_t *old = d->cfg, *cfg = d->pending_cfg;
    if (remap_stats(d, old, cfg)) {
        free(r);
        return;
    }
    fn_eval_free(d);
    d->cfg = cfg;
    d->pending_cfg = NULL;
    if (r) {
        r->cfg = old;
        r->users = d->cfg_users;
        r->next = d->retired;
        d->retired = r;
    } else {
        fn_config_free(old); /* no step was built with it and still in flight */
    }
    d->cfg_users = 0;
    if (fn_eval_start(d)) {
        fn_log(&d->log, FN_LOG_ERROR, "reload", "out of memory; stopping");
        fn_daemon_stop(d, 1);
        return;
    }
    d->config_generation++;
    fn_log(&d->log, FN_LOG_INFO, "reload", "configuration generation %lld applied: %zu funnel(s)",
           (long long)d->config_generation, cfg->n_funnels);
}

void fn_reload_hold(fn_daemon_t *d, fn_msg_t *m)
{
    fn_reload_let_go(d, m);
    m->cfg = d->cfg;
    d->cfg_users++;
}

void fn_reload_let_go(fn_daemon_t *d, fn_msg_t *m)
{
    if (!m->cfg)
        return;
    if (m->cfg == d->cfg) {
        assert(d->cfg_users > 0);
        d->cfg_users--;
    } else {
        fn_retired_cfg_t **at = &d->retired;
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

size_t fn_reload_retired(const fn_daemon_t *d)
{
    size_t n = 0;
    for (const fn_retired_cfg_t *r = d->retired; r; r = r->next)
        n++;
    return n;
}

void fn_reload_free(fn_daemon_t *d)
{
    fn_config_free(d->pending_cfg);
    d->pending_cfg = NULL;
    while (d->retired) {
        fn_retired_cfg_t *r = d->retired;
        d->retired = r->next;
        fn_config_free(r->cfg);
        free(r);
    }
    free(d->config_path);
    d->config_path = NULL;
}
