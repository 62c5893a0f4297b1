/*
 * reload.h — SIGHUP (core/reload.c): re-read the configuration file and apply its funnels,
 * keeping a replaced configuration while in-flight steps still hold it.
 */
#ifndef FUNNELD_RELOAD_H
#define FUNNELD_RELOAD_H

#include <stddef.h>
#include <stdint.h>

#include "funneld/config.h"
#include "funneld/host.h"
#include "funneld/msg.h"

typedef struct fn_reload fn_reload_t;

/* What replacing the running configuration needs from those that keep pointers into it (the
 * evaluations): registered by the spine, so that reload.c calls none of them by name. */
typedef struct fn_reload_hooks {
    void *priv;
    /* Whether the configuration may be replaced now (no evaluation in progress). */
    bool (*quiet)(void *priv);
    /* The running configuration is about to be replaced: let go of it. */
    void (*release)(void *priv);
    /* The new configuration is running: take it up. FN_ERR (out of memory) stops the daemon. */
    int (*adopt)(void *priv);
} fn_reload_hooks_t;

/* A reload context replacing *running (the slot host->cfg points at), logging and remapping
 * the per-funnel counters through host (copied); NULL when out of memory. Without hooks
 * (fn_reload_set_hooks) a configuration is applied at once. */
fn_reload_t *fn_reload_new(const fn_host_t *host, fn_config_t **running);
/* The configuration's generation: 1 at start, +1 per applied reload. */
int64_t fn_reload_generation(const fn_reload_t *r);
/* Registers hooks (copied). */
void fn_reload_set_hooks(fn_reload_t *r, const fn_reload_hooks_t *hooks);
/* The file SIGHUP re-reads (copied). FN_ERR when out of memory. */
int fn_reload_watch(fn_reload_t *r, const char *config_path);
/* Frees r, the accepted config not applied yet and the replaced ones (NULL is fine). */
void fn_reload_free(fn_reload_t *r);

/* Re-reads the config file: a valid one whose connection settings are unchanged is applied
 * (funnels and their rules); anything else is logged with the field and the old one stays. */
void fn_reload_request(fn_reload_t *r);
/* Takes cfg, accepted by a reload, to apply once no evaluation is in progress (now, if
 * none is); a later one replaces one still waiting. */
void fn_reload_accept(fn_reload_t *r, fn_config_t *cfg);
/* Called by the tick: applies an accepted config once no evaluation is in progress. */
void fn_reload_apply(fn_reload_t *r);
/* An accepted config waits to be applied. */
bool fn_reload_pending(const fn_reload_t *r);
/* Compares what a reload may not change (fn_config_fixed_diff); returns the first differing
 * field, or NULL. */
const char *fn_reload_immutable_diff(const fn_config_t *a, const fn_config_t *b);
/* m's step is being built with the running config: m holds it (m->cfg) until
 * fn_reload_let_go, so a reload meanwhile cannot free it. A rebuilt step lets go of the config
 * it held before. */
void fn_reload_hold(fn_reload_t *r, fn_msg_t *m);
/* m no longer needs the config its step was built with; a replaced config is freed when its
 * last holder lets go. Nothing to do when m holds none. */
void fn_reload_let_go(fn_reload_t *r, fn_msg_t *m);
/* Messages holding the running config. */
size_t fn_reload_users(const fn_reload_t *r);
/* Replaced configs still held by in-flight messages (the funneld_configs_retired gauge). */
size_t fn_reload_retired(const fn_reload_t *r);

#endif
