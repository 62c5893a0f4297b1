/*
 * test_lead_queue.c — the per-lead queue: order per lead, leads independent, hash collisions,
 * release of the last, a table sized for the in-flight bound.
 */
#include "fn_test.h"
#include "funneld/common.h"
#include "funneld/lead_queue.h"

#define N 8

/* One script step: push node i, or release node i and expect node `next` (-1: none). */
typedef struct {
    char op; /* 'p' push, 'r' release */
    int node;
    int expect; /* push: 1 head / 0 waits; release: the next node or -1 */
} op_t;

typedef struct {
    const char *name;
    fn_hash128_t lead[N]; /* the lead of each node */
    op_t ops[16];
    int nops;
} case_t;

/* Same lo (same bucket), different hi: a collision between different leads. */
#define A                                                                                          \
    {                                                                                              \
        1, 5                                                                                       \
    }
#define B                                                                                          \
    {                                                                                              \
        2, 5                                                                                       \
    }
#define C                                                                                          \
    {                                                                                              \
        3, 6                                                                                       \
    }

static const case_t cases[] = {
    {"one lead in order",
     {A, A, A},
     {{'p', 0, 1}, {'p', 1, 0}, {'p', 2, 0}, {'r', 0, 1}, {'r', 1, 2}, {'r', 2, -1}},
     6},
    {"different leads independent",
     {A, C, A, C},
     {{'p', 0, 1},
      {'p', 1, 1},
      {'p', 2, 0},
      {'p', 3, 0},
      {'r', 1, 3},
      {'r', 0, 2},
      {'r', 3, -1},
      {'r', 2, -1}},
     8},
    {"collision, different ids",
     {A, B, A, B},
     {{'p', 0, 1},
      {'p', 1, 1},
      {'p', 2, 0},
      {'p', 3, 0},
      {'r', 1, 3},
      {'r', 3, -1},
      {'r', 0, 2},
      {'r', 2, -1}},
     8},
    {"release of the last, then a new chain",
     {A, A},
     {{'p', 0, 1}, {'r', 0, -1}, {'p', 1, 1}, {'r', 1, -1}},
     4},
    {"release of a non-head is ignored",
     {A, A},
     {{'p', 0, 1}, {'r', 1, -1}, {'p', 1, 0}, {'r', 0, 1}, {'r', 1, -1}},
     5},
    {"tail kept across releases",
     {A, A, A, A},
     {{'p', 0, 1},
      {'p', 1, 0},
      {'r', 0, 1},
      {'p', 2, 0},
      {'p', 3, 0},
      {'r', 1, 2},
      {'r', 2, 3},
      {'r', 3, -1}},
     8},
};

static void run_case(const case_t *c)
{
    fn_lead_queue_t q;
    CHECK_INT(fn_lead_queue_init(&q, 10), FN_OK);
    fn_lead_node_t nodes[N] = {0};
    for (int i = 0; i < c->nops; i++) {
        const op_t *o = &c->ops[i];
        if (o->op == 'p') {
            bool head = fn_lead_queue_push(&q, &nodes[o->node], c->lead[o->node]);
            if ((int)head != o->expect)
                fprintf(stderr, "%s: op %d\n", c->name, i);
            CHECK_INT(head, o->expect);
        } else {
            fn_lead_node_t *next = fn_lead_queue_release(&q, &nodes[o->node]);
            int got = next ? (int)(next - nodes) : -1;
            if (got != o->expect)
                fprintf(stderr, "%s: op %d\n", c->name, i);
            CHECK_INT(got, o->expect);
        }
    }
    for (size_t i = 0; i <= q.mask; i++)
        CHECK(q.table[i] == NULL); /* every chain released */
    fn_lead_queue_free(&q);
    fn_lead_queue_free(&q); /* safe twice */
}

static void test_sizing(void)
{
    fn_lead_queue_t q;
    CHECK_INT(fn_lead_queue_init(&q, 1), FN_OK);
    CHECK_INT(q.mask + 1, 1024);
    fn_lead_queue_free(&q);
    CHECK_INT(fn_lead_queue_init(&q, 1000), FN_OK);
    CHECK_INT(q.mask + 1, 2048);
    fn_lead_queue_free(&q);
}

/* Many leads over a small table: every lead's events come out in push order. */
static void test_many(void)
{
    enum { LEADS = 3000, PER = 4 };
    static fn_lead_node_t nodes[LEADS * PER];
    fn_lead_queue_t q;
    CHECK_INT(fn_lead_queue_init(&q, 1), FN_OK);
    int heads = 0;
    for (int k = 0; k < PER; k++)
        for (int l = 0; l < LEADS; l++)
            heads += fn_lead_queue_push(&q, &nodes[l * PER + k],
                                        (fn_hash128_t){(uint64_t)l, (uint64_t)l * 7});
    CHECK_INT(heads, LEADS);
    int bad = 0;
    for (int l = 0; l < LEADS; l++)
        for (int k = 0; k < PER; k++) {
            fn_lead_node_t *next = fn_lead_queue_release(&q, &nodes[l * PER + k]);
            if (next != (k + 1 < PER ? &nodes[l * PER + k + 1] : NULL))
                bad++;
        }
    CHECK_INT(bad, 0);
    fn_lead_queue_free(&q);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_case(&cases[i]);
    test_sizing();
    test_many();
    return fn_test_result("test_lead_queue");
}
