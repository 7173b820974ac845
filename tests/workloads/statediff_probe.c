/*
 * statediff_probe DIR -- a process the state-diff checker's own tests change between two snapshots.
 *
 * Starts a second thread, writes DIR/ready ("ready PID TID") and waits in sigsuspend. On SIGUSR1 the leader
 * maps 3 PROT_NONE pages at 0x200000000 (MAP_FIXED_NOREPLACE: far from everything, so the mapping merges
 * with none) and has the second thread block SIGUSR2 in its own mask; then it writes DIR/stepped and waits
 * again. Exits on SIGTERM (default action) or when killed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "workload.h"

static int to_thread[2], from_thread[2];
static volatile pid_t thread_tid;
static volatile int stepped;

static void on_usr1(int s) { (void)s; stepped = 1; }

static void *second(void *arg)
{
    (void)arg;
    thread_tid = (pid_t)syscall(SYS_gettid);
    char c;
    if (read(to_thread[0], &c, 1) != 1)
        return NULL;
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    if (write(from_thread[1], &c, 1) != 1)
        return NULL;
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    if (argc < 2 || pipe(to_thread) || pipe(from_thread))
        return 2;
    sigset_t wait_mask;
    usr1_only_in_sigsuspend(on_usr1, &wait_mask);   /* the thread inherits SIGUSR1 blocked: the leader takes it */
    pthread_t t;
    if (pthread_create(&t, NULL, second, NULL))
        return 2;
    while (!thread_tid)
        usleep(1000);
    char line[64];
    snprintf(line, sizeof line, "ready %d %d\n", getpid(), thread_tid);
    write_file(argv[1], "ready", line);
    while (!stepped)
        sigsuspend(&wait_mask);
    if (mmap((void *)0x200000000UL, 3 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED)
        return 2;
    char c = 'x';
    if (write(to_thread[1], &c, 1) != 1 || read(from_thread[0], &c, 1) != 1)
        return 2;
    write_file(argv[1], "stepped", "stepped\n");
    for (;;)
        sigsuspend(&wait_mask);
}
