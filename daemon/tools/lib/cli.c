/*
 * cli.c — the command-line plumbing the tools and the benchmark's drivers share (cli.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int fn_cli_int(const char *tool, const char *opt, const char *s, long long lo, long long hi,
               long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: %s %s: expected an integer from %lld to %lld\n", tool, opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int fn_cli_num(const char *tool, const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "%s: %s %s: expected a number from %g to %g\n", tool, opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static const fn_cli_opt_t *find_opt(const fn_cli_opt_t *opts, size_t n, int name)
{
    for (size_t i = 0; i < n; i++)
        if (opts[i].name == name)
            return &opts[i];
    return NULL;
}

int fn_cli_parse(int argc, char **argv, const char *tool, const fn_cli_opt_t *opts, size_t n,
                 void (*usage)(FILE *))
{
    /* "h" plus "x:" per option: every table option takes a value. */
    char optstring[2 * 64 + 2];
    size_t len = 0;
    optstring[len++] = 'h';
    for (size_t i = 0; i < n && len + 2 < sizeof optstring; i++) {
        optstring[len++] = opts[i].name;
        optstring[len++] = ':';
    }
    optstring[len] = '\0';

    int c;
    while ((c = getopt(argc, argv, optstring)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        const fn_cli_opt_t *o = find_opt(opts, n, c);
        if (!o) {
            usage(stderr);
            return 2;
        }
        if (o->kind == FN_CLI_STR) {
            *(const char **)o->dst = optarg;
            continue;
        }
        char opt[3] = {'-', o->name, '\0'};
        if (fn_cli_int(tool, opt, optarg, o->lo, o->hi, o->dst))
            return 2;
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

double fn_cli_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int fn_cli_kafka_set(const char *tool, rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof err) == RD_KAFKA_CONF_OK)
        return 0;
    fprintf(stderr, "%s: %s=%s: %s\n", tool, key, value, err);
    return -1;
}

fn_config_t *fn_cli_config(const char *tool, const char *path, const char *key_prefix)
{
    char err[512];
    fn_config_t *cfg = fn_config_load(path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s: %s: %s\n", tool, path, err);
        return NULL;
    }
    if (key_prefix) {
        char *dup = strdup(key_prefix);
        if (!dup) {
            fprintf(stderr, "%s: out of memory\n", tool);
            fn_config_free(cfg);
            return NULL;
        }
        free(cfg->key_prefix);
        cfg->key_prefix = dup;
    }
    return cfg;
}
