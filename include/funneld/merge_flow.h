/*
 * merge_flow.h — identity merges and the erasure of merged people, driven for one message
 * through merge.lua's steps (core/merge_flow.c; the steps are listed in merge.lua and
 * README, "Identity merges"). Part of the spine, beside pipeline.c: it sends through the
 * store and produces through the pipeline.
 */
#ifndef FUNNELD_MERGE_FLOW_H
#define FUNNELD_MERGE_FLOW_H

#include <hiredis/hiredis.h>

#include "funneld/msg.h"

/* An accepted identify: merges props.previous_id's lead into lead_id's. */
void fn_merge_identify(fn_daemon_t *d, fn_msg_t *m);
/* An accepted erase: deletes the ids merged into the lead, then runs its step. */
void fn_merge_erase(fn_daemon_t *d, fn_msg_t *m);
/* A merge step of m answered (m->phase is not FN_PHASE_STEP; reply valid during the call). */
void fn_merge_on_reply(fn_daemon_t *d, fn_msg_t *m, const redisReply *reply);
/* A step of m failed for good (reason: the store's or the flow's). A merge past its DETACH
 * is retried later instead (true: m was taken so); anything else is the caller's to
 * dead-letter (false). */
bool fn_merge_failed(fn_daemon_t *d, fn_msg_t *m, const char *reason);
/* Writes the command of m's current merge step (the store's merge_build hook). */
int fn_merge_build_cmd(fn_daemon_t *d, fn_msg_t *m, const char *sha, const char *token,
                       fn_buf_t *out);
/* Points m's event at lead id (len bytes), copied into m: its later steps and outputs are
 * that lead's. FN_OK, or FN_ERR (out of memory). */
int fn_merge_retarget(fn_msg_t *m, const char *id, size_t len);
/* Frees what m's merge holds (with its record). */
void fn_merge_free(fn_msg_t *m);

#endif
