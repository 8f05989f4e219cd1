// benches/wake_probe.c — what closes the gap between a timerfd wake-up and
// its deadline on this machine (issue 17, item 4). One thread, one absolute
// timerfd in epoll, the same random 0.2–3 ms intervals as benches/deadline.rs;
// lateness = clock_gettime after the wake-up minus the deadline.
//   wake_probe MODE N SEED
// MODE: slack50 | slack1 | fifo (slack 1 + SCHED_FIFO 1) | spinUS (slack 1,
// the timerfd armed US early, then clock_gettime until the deadline) |
// fifospinUS (both).
// Prints: WAKE mode n p50 p99 max (us) cpu% (of one CPU, wall clock).
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}
static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void) {
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dULL;
}
int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: wake_probe MODE N SEED\n"); return 2; }
    const char *mode = argv[1];
    int n = atoi(argv[2]);
    if (n < 1 || n > 1000000) return 2;
    rng ^= strtoull(argv[3], 0, 10) * 0x100000001b3ULL;
    int64_t spin_ns = 0;
    long slack = 1;
    if (!strcmp(mode, "slack50")) slack = 50000;
    if (strstr(mode, "spin")) spin_ns = atol(strstr(mode, "spin") + 4) * 1000LL;
    prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0);
    if (!strncmp(mode, "fifo", 4)) {
        struct sched_param sp = {.sched_priority = 1};
        if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) { perror("SCHED_FIFO"); return 3; }
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = tfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    int64_t *late = malloc(sizeof *late * n);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    int64_t t0 = now_ns();
    for (int i = 0; i < n; i++) {
        int64_t deadline = now_ns() + (int64_t)(200 + next() % 2801) * 1000;
        int64_t wake = deadline - spin_ns;
        struct itimerspec its = {0};
        its.it_value.tv_sec = wake / 1000000000LL;
        its.it_value.tv_nsec = wake % 1000000000LL;
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, 0);
        struct epoll_event out;
        while (epoll_wait(ep, &out, 1, -1) < 1) {}
        uint64_t c; (void)!read(tfd, &c, 8);
        int64_t t;
        while ((t = now_ns()) < deadline && spin_ns) {}
        late[i] = now_ns() - deadline;
        if (late[i] < 0) late[i] = 0;
    }
    int64_t wall = now_ns() - t0;
    getrusage(RUSAGE_SELF, &r1);
    double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1e9
               + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) * 1e3;
    qsort(late, n, sizeof *late, cmp64);
    printf("WAKE %s n=%d p50=%.1f p99=%.1f max=%.1f cpu=%.1f%%\n", mode, n, late[n / 2] / 1e3,
           late[(int)(n * 0.99)] / 1e3, late[n - 1] / 1e3, cpu / wall * 100);
    return 0;
}
