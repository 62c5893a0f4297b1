/*
 * cli.h — what the command-line tools (funneld-loadgen) and the benchmark's drivers
 * (tests/bench/bench_*.c) share: short options read from a table, numbers checked against a
 * range, a monotonic clock, librdkafka settings whose errors name them, and the funneld
 * config a driver works against. Every error is printed on stderr as "<tool>: <what>: <why>".
 */
#ifndef FUNNELD_CLI_H
#define FUNNELD_CLI_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdio.h>

#include "funneld/config.h"

typedef enum { FN_CLI_STR, FN_CLI_INT } fn_cli_kind_t;

/* One short option that takes a value. dst is a `const char **` (FN_CLI_STR: the value
 * itself, pointing into argv) or a `long long *` (FN_CLI_INT: checked to lie in lo..hi). */
typedef struct fn_cli_opt {
    char name;
    fn_cli_kind_t kind;
    void *dst;
    long long lo, hi;
} fn_cli_opt_t;

/* Reads argv's options by the n entries of opts, plus -h, which prints usage on stdout.
 * Returns -1 when the caller goes on, else the exit status to return: 0 after -h, 2 after an
 * unknown option, a bad value or a left-over operand (usage printed on stderr). */
int fn_cli_parse(int argc, char **argv, const char *tool, const fn_cli_opt_t *opts, size_t n,
                 void (*usage)(FILE *));

/* Parses s as an integer (or a number) in lo..hi into *out; 0, or -1 after printing
 * "<tool>: <opt> <s>: expected ...". */
int fn_cli_int(const char *tool, const char *opt, const char *s, long long lo, long long hi,
               long long *out);
int fn_cli_num(const char *tool, const char *opt, const char *s, double lo, double hi, double *out);

/* Seconds on the monotonic clock, for rates and durations. */
double fn_cli_mono_s(void);

/* rd_kafka_conf_set that prints "<tool>: key=value: <why>" on failure; 0 or -1. */
int fn_cli_kafka_set(const char *tool, rd_kafka_conf_t *conf, const char *key, const char *value);

/* Loads the funneld config at path; a non-NULL key_prefix replaces the config's. NULL after
 * printing why. The caller frees it with fn_config_free(). */
fn_config_t *fn_cli_config(const char *tool, const char *path, const char *key_prefix);

#endif
