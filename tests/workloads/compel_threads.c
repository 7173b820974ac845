/* N threads counting; thread 0 installs a seccomp filter making getpid fail with EPERM.
 * "churn" adds a thread that creates and joins short-lived threads all the time.
 * Writes 'R' when all run; on a byte (or EOF) on stdin checks every counter still advances: exit 0. */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAXT 16
static volatile unsigned long counters[MAXT];
static volatile int started;

static int filter_getpid(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getpid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof f / sizeof f[0], f };
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

static void *worker(void *arg)
{
    long i = (long)arg;
    if (i == 0 && filter_getpid() != 0)
        exit(7);
    __sync_fetch_and_add(&started, 1);
    for (;;) {
        counters[i]++;
        usleep(1000);
    }
    return NULL;
}

static void *nothing(void *arg) { return arg; }

static void *churn(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_t t;
        if (pthread_create(&t, NULL, nothing, NULL) == 0)
            pthread_join(t, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 4;
    if (n < 1 || n > MAXT)
        return 2;
    pthread_t t;
    for (long i = 0; i < n; i++)
        if (pthread_create(&t, NULL, worker, (void *)i) != 0)
            return 2;
    if (argc > 2 && strcmp(argv[2], "churn") == 0 && pthread_create(&t, NULL, churn, NULL) != 0)
        return 2;
    while (started < n)
        usleep(1000);
    if (write(1, "R", 1) != 1)
        return 2;
    char c;
    (void)!read(0, &c, 1);
    unsigned long before[MAXT];
    for (int i = 0; i < n; i++)
        before[i] = counters[i];
    usleep(100000);
    for (int i = 0; i < n; i++)
        if (counters[i] == before[i])
            return 3;
    return 0;
}
