/*
 * test_offsets.c — the done-prefix offset tracker (offsets.h): a table of consumes,
 * completions in any order, revocations and a shutdown drop, with the commit point, the
 * messages released and the event clock expected after each step.
 */
#include <string.h>

#include "fn_test.h"
#include "funneld/offsets.h"

/* c: consume offset arg (an accepted event at time arg * 1000); r: consume offset arg,
 * rejected (no event time); d: message #arg (in consume order) is done, then the done prefix
 * advances; a: advance with nothing new; g: the partition is revoked and assigned again
 * (what kafka_in.c's mark_assigned does twice); x: drop what is in flight (shutdown). */
typedef struct step {
    char op;
    int arg;
    int64_t next_commit; /* after the step */
    int released;        /* messages released so far, in total */
    int64_t maxts_done;
} step_t;

typedef struct tcase {
    const char *name;
    step_t steps[12];
    int64_t clock_from; /* at the end: the first finished event time of the current assignment */
} tcase_t;

static const tcase_t cases[] = {
    {"in order",
     {{'c', 10, -1, 0, 0},
      {'c', 11, -1, 0, 0},
      {'d', 0, 11, 1, 10000},
      {'d', 1, 12, 2, 11000},
      {0}},
     10000},
    {"out of order: nothing moves until the head is done",
     {{'c', 10, -1, 0, 0},
      {'c', 11, -1, 0, 0},
      {'c', 12, -1, 0, 0},
      {'d', 2, -1, 0, 0},
      {'d', 1, -1, 0, 0},
      {'d', 0, 13, 3, 12000},
      {0}},
     10000},
    {"gaps between offsets (compaction, transaction markers)",
     {{'c', 10, -1, 0, 0},
      {'c', 15, -1, 0, 0},
      {'c', 20, -1, 0, 0},
      {'d', 1, -1, 0, 0},
      {'d', 0, 16, 2, 15000},
      {'d', 2, 21, 3, 20000},
      {0}},
     10000},
    {"a rejected message commits but keeps the clock",
     {{'c', 10, -1, 0, 0}, {'r', 11, -1, 0, 0}, {'d', 1, -1, 0, 0}, {'d', 0, 12, 2, 10000}, {0}},
     10000},
    {"revocation: the old generation's messages leave without moving the new commit",
     {{'c', 10, -1, 0, 0},
      {'c', 11, -1, 0, 0},
      {'g', 0, -1, 0, 0},
      {'c', 5, -1, 0, 0},
      {'c', 6, -1, 0, 0},
      {'d', 0, -1, 1, 0},
      {'d', 2, -1, 1, 0},
      {'d', 1, 6, 3, 5000},
      {'d', 3, 7, 4, 6000},
      {0}},
     5000},
    {"empty partition: nothing to release, nothing moves",
     {{'a', 0, -1, 0, 0}, {'c', 3, -1, 0, 0}, {'d', 0, 4, 1, 3000}, {'a', 0, 4, 1, 3000}, {0}},
     3000},
    {"never backwards within an assignment (a fetch position reset)",
     {{'c', 10, -1, 0, 0},
      {'d', 0, 11, 1, 10000},
      {'c', 5, 11, 1, 10000},
      {'d', 1, 11, 2, 10000},
      {'c', 11, 11, 2, 10000},
      {'d', 2, 12, 3, 11000},
      {0}},
     10000},
    {"shutdown drops what is in flight, done or not, without committing it",
     {{'c', 10, -1, 0, 0},
      {'c', 11, -1, 0, 0},
      {'c', 12, -1, 0, 0},
      {'d', 1, -1, 0, 0},
      {'x', 0, -1, 3, 0},
      {0}},
     0},
};

typedef struct released {
    int n;
    int64_t offsets[16];
} released_t;

static void release(fn_msg_t *m, void *data)
{
    released_t *r = data;
    if (r->n < 16)
        r->offsets[r->n] = m->offset;
    r->n++;
}

static void run(const tcase_t *c)
{
    fn_partition_t p;
    fn_msg_t msgs[12];
    released_t rel = {0};
    memset(&p, 0, sizeof p);
    memset(msgs, 0, sizeof msgs);
    p.next_commit = -1;
    int consumed = 0;
    for (const step_t *s = c->steps; s->op; s++) {
        switch (s->op) {
        case 'c':
        case 'r': {
            fn_msg_t *m = &msgs[consumed++];
            m->offset = s->arg;
            m->accepted = s->op == 'c';
            m->ev.ts_ms = m->accepted ? s->arg * 1000 : 0;
            fn_offsets_append(&p, m);
            CHECK(m->part == &p && m->generation == p.generation && p.tail == m);
            break;
        }
        case 'd':
            msgs[s->arg].state = FN_MSG_DONE;
            /* fall through */
        case 'a':
            fn_offsets_advance(&p, release, &rel);
            break;
        case 'g':
            p.generation += 2;
            p.next_commit = -1;
            p.maxts_done = 0;
            break;
        case 'x':
            fn_offsets_drop(&p, release, &rel);
            CHECK(p.head == NULL && p.tail == NULL);
            break;
        }
        if (p.next_commit != s->next_commit || rel.n != s->released ||
            p.maxts_done != s->maxts_done)
            fprintf(stderr, "%s: step %d ('%c' %d)\n", c->name, (int)(s - c->steps), s->op, s->arg);
        CHECK_INT(p.next_commit, s->next_commit);
        CHECK_INT(rel.n, s->released);
        CHECK_INT(p.maxts_done, s->maxts_done);
    }
    /* Released in offset-list order, each once: the consume order. */
    for (int i = 0; i < rel.n && i < consumed; i++)
        CHECK_INT(rel.offsets[i], msgs[i].offset);
    CHECK_INT(p.clock_from, c->clock_from);
    CHECK((p.head == NULL) == (p.tail == NULL));
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run(&cases[i]);
    return fn_test_result("test_offsets");
}
