/*
 * bench_decode.c — what decoding one message costs the daemon, by reader: the tree-free
 * scanner funneld uses for the usual message (fn_event_decode) against the jansson reference
 * (fn_event_decode_tree), on the same lines, in one run.
 *
 * Reads a JSON-lines file of touchpoints (funneld-loadgen --out), keeps it in memory, and
 * decodes every line ROUNDS times with each reader in turn (tree, scanner, tree, scanner …, so
 * a drift of the machine shows in both), against the config funneld runs with. Also runs the
 * rules' match for every funnel on each accepted event, as the pipeline does next, since
 * that is where props are read again; then decodes with the scanner again and builds each
 * accepted event's Lua step command (fn_step_build), the daemon's next work per event.
 * Reports CPU nanoseconds per line of each reader and of the command, the
 * share of accepted lines the scanner read itself, and checks that both readers accepted the
 * same lines (a benchmark that measured a broken reader would be worthless).
 *
 * Output: a human summary on stderr, and one line on stdout for scripts:
 *   RESULT decode lines=N rounds=R tree_ns=T scanner_ns=S build_ns=B scanned=F
 *
 * Usage: bench_decode -c CONFIG -i EVENTS.jsonl [-r ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "funneld/common.h"
#include "funneld/config.h"
#include "funneld/event.h"
#include "funneld/rules.h"
#include "funneld/step.h"
#include "cli.h"

#define TOOL "bench_decode"

typedef fn_reject_t (*decode_fn)(const char *, size_t, const fn_config_t *, int64_t, fn_event_t *,
                                 char *, size_t);

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One pass over every line; returns the accepted count, adds the scanned ones to *scanned.
 * Each accepted event then has its funnels matched (counted in *matches), or, given cmd, its
 * Lua step command built as the store does (fn_step_build; the bytes counted in *matches, so
 * that the work cannot be left out). */
static size_t pass(decode_fn decode, const fn_config_t *cfg, char **lines, size_t *lens, size_t n,
                   int64_t now, size_t *scanned, unsigned *matches, fn_buf_t *cmd)
{
    size_t ok = 0;
    char reason[256];
    for (size_t i = 0; i < n; i++) {
        fn_event_t ev;
        if (decode(lines[i], lens[i], cfg, now, &ev, reason, sizeof reason) != FN_REJ_NONE)
            continue;
        ok++;
        *scanned += ev.mem != NULL;
        if (cmd && ev.kind != FN_EV_IGNORED) { /* the pipeline steps no ignored event */
            fn_hash128_t h = fn_step_lead_hash(ev.lead_id.p, ev.lead_id.len);
            const fn_step_call_t call = {"FCALL", fn_lua_step_lib_name};
            if (fn_step_build(cfg, &call, "bench:1", &ev, h, now, ev.ts_ms, "touchpoints",
                              (int32_t)(i % 6), cmd) == FN_OK)
                *matches += (unsigned)cmd->len;
        }
        for (size_t f = 0; !cmd && f < cfg->n_funnels; f++)
            *matches += (unsigned)(fn_rules_match(&cfg->funnels[f], &ev).stage + 1);
        fn_event_clear(&ev);
    }
    return ok;
}

int main(int argc, char **argv)
{
    const char *cfg_path = NULL, *events_path = NULL;
    int rounds = 5, opt, rc = 1;
    while ((opt = getopt(argc, argv, "c:i:r:")) != -1) {
        if (opt == 'c')
            cfg_path = optarg;
        else if (opt == 'i')
            events_path = optarg;
        else if (opt == 'r')
            rounds = atoi(optarg);
        else
            goto usage;
    }
    if (!cfg_path || !events_path || rounds < 1)
        goto usage;
    fn_config_t *cfg = fn_cli_config(TOOL, cfg_path, NULL);
    FILE *in = fopen(events_path, "r");
    char **lines = NULL, *line = NULL;
    size_t *lens = NULL, n = 0, cap = 0, linecap = 0;
    if (!cfg || !in) {
        if (!in)
            perror(events_path);
        goto out;
    }
    ssize_t len;
    while ((len = getline(&line, &linecap, in)) > 0) {
        if (line[len - 1] == '\n')
            len--;
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            char **nl = realloc(lines, cap * sizeof *nl);
            size_t *nn = nl ? realloc(lens, cap * sizeof *nn) : NULL;
            if (nl)
                lines = nl;
            if (!nn)
                goto out;
            lens = nn;
        }
        lines[n] = malloc((size_t)len);
        if (!lines[n])
            goto out;
        memcpy(lines[n], line, (size_t)len);
        lens[n++] = (size_t)len;
    }
    if (n == 0) {
        fprintf(stderr, TOOL ": no line in %s\n", events_path);
        goto out;
    }
    int64_t now = fn_now_ms();
    double t_tree = 0, t_scan = 0, t_build = 0;
    unsigned built = 0;
    fn_buf_t cmd = {0};
    size_t ok_tree = 0, ok_scan = 0, scanned = 0, none = 0;
    unsigned m_tree = 0, m_scan = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = cpu_s();
        ok_tree = pass(fn_event_decode_tree, cfg, lines, lens, n, now, &none, &m_tree, NULL);
        double t1 = cpu_s();
        scanned = 0;
        ok_scan = pass(fn_event_decode, cfg, lines, lens, n, now, &scanned, &m_scan, NULL);
        double t2 = cpu_s();
        size_t again = 0;
        built = 0;
        (void)pass(fn_event_decode, cfg, lines, lens, n, now, &again, &built, &cmd);
        t_build += cpu_s() - t2;
        t_scan += t2 - t1;
        t_tree += t1 - t0;
    }
    fn_buf_free(&cmd);
    if (built == 0) {
        fprintf(stderr, TOOL ": no step command was built\n");
        goto out;
    }
    if (ok_tree != ok_scan || m_tree != m_scan || none != 0) {
        fprintf(stderr, TOOL ": the readers disagree: %zu and %zu accepted, matches %u and %u\n",
                ok_tree, ok_scan, m_tree, m_scan);
        goto out;
    }
    double per = 1e9 / ((double)n * rounds);
    fprintf(stderr,
            TOOL ": %zu line(s), %zu accepted, %d round(s): jansson tree %.0f ns per line, "
                 "scanner %.0f ns per line, step command %.0f ns more per line; the scanner "
                 "read %.1f %% of the accepted lines\n",
            n, ok_scan, rounds, t_tree * per, t_scan * per, (t_build - t_scan) * per,
            ok_scan ? 100.0 * (double)scanned / (double)ok_scan : 0.0);
    printf("RESULT decode lines=%zu rounds=%d tree_ns=%.0f scanner_ns=%.0f build_ns=%.0f "
           "scanned=%.4f\n",
           n, rounds, t_tree * per, t_scan * per, (t_build - t_scan) * per,
           ok_scan ? (double)scanned / (double)ok_scan : 0.0);
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    free(lens);
    free(line);
    if (in)
        fclose(in);
    fn_config_free(cfg);
    return rc;
usage:
    fprintf(stderr, "usage: " TOOL " -c CONFIG -i EVENTS.jsonl [-r ROUNDS]\n");
    return 2;
}
