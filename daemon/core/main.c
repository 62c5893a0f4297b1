/*
 * main.c — command line of the funneld daemon: load and validate the configuration, then
 * hand it to the daemon (daemon.c) and run the loop until a signal stops it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "funneld/daemon.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: funneld -c FILE [--check-config] [--log-level LEVEL]\n"
            "\n"
            "Real-time sales-funnel engine: consumes touchpoints from Kafka, keeps each lead's\n"
            "funnel state in Redis and emits transitions, retargeting triggers, bottlenecks,\n"
            "snapshots and dead letters back to Kafka.\n"
            "\n"
            "  -c, --config FILE     configuration file (JSON, see schemas/config.schema.json)\n"
            "      --check-config    validate the configuration and exit (0 valid, 2 invalid)\n"
            "      --log-level LEVEL debug, info (default), warn or error\n"
            "  -h, --help            this text\n"
            "  -V, --version         print the version\n"
            "\n"
            "Environment: FUNNELD_BROKERS, FUNNELD_REDIS_URL and FUNNELD_REDIS_CLUSTER override\n"
            "kafka.brokers, redis.url and redis.cluster.\n"
            "Signals: SIGTERM/SIGINT finish in-flight work, commit and exit 0; SIGHUP re-reads\n"
            "FILE and applies its funnels (a bad file is refused, logged).\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},    {"check-config", no_argument, NULL, 'k'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    bool check = false;
    fn_log_level_t level = FN_LOG_INFO;
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = true;
            break;
        case 'l':
            if (fn_log_level_parse(optarg, &level)) {
                fprintf(stderr, "funneld: --log-level: expected debug, info, warn or error\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("funneld %s\n", FN_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    char err[512];
    fn_config_t *cfg = fn_config_load(path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "funneld: %s: %s\n", path, err);
        return 2;
    }
    if (check) {
        printf("%s: valid, %zu funnel(s)\n", path, cfg->n_funnels);
        fn_config_free(cfg);
        return 0;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    fn_daemon_t *d = fn_daemon_new(&loop, cfg, level);
    if (!d || fn_reload_watch(d->reload, path)) { /* SIGHUP re-reads it */
        fprintf(stderr, "funneld: out of memory\n");
        if (d)
            fn_daemon_free(d); /* and cfg with it */
        else
            fn_config_free(cfg);
        return 1;
    }
    int rc = fn_daemon_run(d);
    fn_daemon_free(d);
    uv_loop_close(&loop);
    return rc;
}
