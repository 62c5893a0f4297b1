/*
 * bench_hiccup.c — how long the machine itself keeps a runnable process from running, measured
 * beside funneld in the benchmark's fixed-rate mode.
 *
 * It asks to sleep 1 ms, over and over, and records by how much each wake-up came late. A
 * process that does nothing cannot be slowed by its own work, so its late wake-ups are the
 * stalls every process on the machine can meet (CPU contention, a hypervisor taking the vCPU,
 * page faults served slowly). When funneld's latency tail is no longer than these, the tail is
 * the machine's, not funneld's.
 *
 * Runs until SIGINT or SIGTERM, then prints one line on stdout for scripts:
 *   RESULT hiccup samples=N p50_ms=.. p99_ms=.. p999_ms=.. max_ms=.. over10=.. over25=..
 *          stalled_ms=..
 * where over10 / over25 count wake-ups 10 / 25 ms or more late and stalled_ms is the sum of
 * all lateness (the kernel's timer slack included). Its own wake-ups, one a millisecond, are a
 * small load on the machine it measures.
 *
 * Usage: bench_hiccup
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define PERIOD_NS 1000000LL
#define BUCKET_US 10   /* histogram resolution */
#define BUCKETS 100000 /* 10 us .. 1 s; later wake-ups land in the last bucket */

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The lateness below which a share q of the samples lie, in ms (bucket upper bound). */
static double quantile(const uint64_t *hist, uint64_t n, double q)
{
    if (n == 0)
        return 0.0;
    uint64_t want = (uint64_t)(q * (double)n), seen = 0;
    for (int i = 0; i < BUCKETS; i++) {
        seen += hist[i];
        if (seen > want)
            return (double)(i + 1) * BUCKET_US / 1000.0;
    }
    return (double)BUCKETS * BUCKET_US / 1000.0;
}

int main(void)
{
    uint64_t *hist = calloc(BUCKETS, sizeof *hist);
    if (!hist) {
        fprintf(stderr, "bench_hiccup: out of memory\n");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    uint64_t n = 0, over10 = 0, over25 = 0;
    int64_t max_ns = 0, stalled_ns = 0;
    while (!stop_flag) {
        int64_t t0 = now_ns();
        struct timespec req = {0, PERIOD_NS};
        if (nanosleep(&req, NULL) != 0)
            continue; /* interrupted: that wake-up says nothing about lateness */
        int64_t late = now_ns() - t0 - PERIOD_NS;
        if (late < 0)
            late = 0;
        size_t b = (size_t)(late / 1000 / BUCKET_US);
        hist[b < BUCKETS ? b : BUCKETS - 1]++;
        n++;
        over10 += late >= 10000000LL;
        over25 += late >= 25000000LL;
        stalled_ns += late;
        if (late > max_ns)
            max_ns = late;
    }
    printf("RESULT hiccup samples=%llu p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.1f "
           "over10=%llu over25=%llu stalled_ms=%.0f\n",
           (unsigned long long)n, quantile(hist, n, 0.5), quantile(hist, n, 0.99),
           quantile(hist, n, 0.999), (double)max_ns / 1e6, (unsigned long long)over10,
           (unsigned long long)over25, (double)stalled_ns / 1e6);
    free(hist);
    return 0;
}
