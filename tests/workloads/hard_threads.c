/*
 * hard_threads  -- run under `hardened --no-second -- hard_threads`: three threads sharing the
 * allowlist filter; thread 1 stacks a LOG-flagged filter of its own (getpriority -> ERRNO(133)),
 * so the threads of one task have different chains with a shared prefix. Every thread sleeps in
 * 100 ms steps forever; /proc/PID/task/TID/status shows each one's Seccomp_filters (1, 2, 1).
 */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void *worker(void *arg)
{
    if ((long)arg == 1) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getpriority, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 133),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {sizeof f / sizeof f[0], f};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, &prog) != 0)
            exit(7);
    }
    for (;;) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(void)
{
    pthread_t t;
    for (long i = 1; i <= 2; i++)
        if (pthread_create(&t, NULL, worker, (void *)i) != 0)
            return 2;
    worker(0);
    return 0;
}
