/*
 * reply_arena.h — hiredis replies built in one arena per reply.
 *
 * hiredis's reader allocates every element of a reply on its own (the object, then its
 * string) and frees them one by one; a step's reply is a dozen objects, so the daemon spent
 * more on malloc and free for replies than on reading them. A reader given these functions
 * builds a reply and all its elements in one block (more blocks only for a large reply),
 * freed at once when hiredis frees the reply after its callback.
 *
 * Such a reply must be freed by the reader's own free function (hiredis does this for an
 * async context's replies), never by freeReplyObject: a reply kept past its callback is
 * copied (fn_store_reply_copy), as it was before.
 */
#ifndef FUNNELD_REPLY_ARENA_H
#define FUNNELD_REPLY_ARENA_H

#include <hiredis/read.h>
#include <stdbool.h>

/* Makes reader r build its replies in arenas. Returns false, leaving r as it was, when the
 * hiredis this was built against has another reader interface (only 0.14's is known). */
bool fn_reply_arena_use(redisReader *r);

#endif
