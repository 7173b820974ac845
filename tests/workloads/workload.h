/*
 * Helpers shared by the test workloads (each workload stays one C file; gcc finds this header beside it,
 * and Support/Workloads.Build hashes it with the source).
 */
#ifndef CRISP_WORKLOAD_H
#define CRISP_WORKLOAD_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* DIR/NAME := TEXT (ready lines, verdicts). */
static inline void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* SIGUSR1 runs HANDLER but stays blocked except inside sigsuspend(WAIT_MASK): one sent at any moment
 * (while the task is dumped or restored, or before it reaches its wait) stays pending instead of being
 * lost between a flag check and a pause(). */
static inline void usr1_only_in_sigsuspend(void (*handler)(int), sigset_t *wait_mask)
{
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, wait_mask);
    sigdelset(wait_mask, SIGUSR1);
    signal(SIGUSR1, handler);
}

/* The start checked workloads share: no fd past stderr (a shell may pass some, CI passes none), stdout
 * unbuffered for the ready line, SIGUSR1 running HANDLER only inside sigsuspend(WAIT_MASK). */
static inline void workload_begin(void (*handler)(int), sigset_t *wait_mask)
{
    syscall(SYS_close_range, 3, ~0U, 0);
    setvbuf(stdout, NULL, _IONBF, 0);
    usr1_only_in_sigsuspend(handler, wait_mask);
}

/* FD (just made by WHAT; exit 2 if that failed) moved to the number WANT. */
static inline void workload_fd_at(int want, int fd, const char *what)
{
    if (fd < 0) {
        perror(what);
        exit(2);
    }
    if (fd != want && (dup2(fd, want) != want || close(fd))) {
        perror("dup2");
        exit(2);
    }
}

/* Check macros for workloads that count their failures in an int `failures` and report on stderr
 * (define WORKLOAD_COUNTED_CHECKS before the include). */
#ifdef WORKLOAD_COUNTED_CHECKS
#define FAIL(name, ...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "FAIL: %s: ", name);                                                       \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        failures++;                                                                                \
    } while (0)
#define CHECK(name, cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FAIL(name, __VA_ARGS__);                                                               \
    } while (0)
#endif

#endif
