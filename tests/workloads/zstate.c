/*
 * zstate DIR -- a parent with zombie and stopped children, for zombie / stopped-task restore.
 *
 * The parent ("zs-parent") forks:
 *   A "zs-exit"  exits with code 42            -> a zombie until the parent reaps it,
 *   B "zs-kill"  dies by SIGTERM (default)     -> a zombie whose status is WTERMSIG 15,
 *   C "zs-stop"  two threads; the main thread stops the group with raise(SIGSTOP) while its second
 *                thread ("zs-stopthr") counts in a loop of short sleeps -> State T, both threads.
 * It never reaps before the check. Once A and B are zombies and C is stopped it writes DIR/ready
 * ("ready PARENT A B C") and waits for SIGUSR1. Then it checks: A and B are still zombies ("Z" in
 * /proc/PID/stat, their names), C is stopped; waitpid(A) gives exit 42, waitpid(B) gives SIGTERM; after
 * SIGCONT, C's thread counts on and C exits 7 (8 if its thread did not run on). Verdict in DIR/verdict:
 * "PASS" or "FAIL: ..." lines; exit 0 on pass, 1 on fail.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char fails[4096];
static volatile sig_atomic_t got_usr1;
static volatile unsigned long counter;

static void fail(const char *what, long a, long b)
{
    size_t n = strlen(fails);
    snprintf(fails + n, sizeof fails - n, "FAIL: %s (%ld, %ld)\n", what, a, b);
}

static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

/* State letter and name of PID from /proc/PID/stat; '?' if unreadable. */
static char state_of(pid_t pid, char *comm)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *open = strchr(buf, '('), *close = strrchr(buf, ')');
    if (!open || !close || close[1] == 0)
        return '?';
    if (comm) {
        memcpy(comm, open + 1, close - open - 1);
        comm[close - open - 1] = 0;
    }
    return close[2];
}

static void *stop_thread(void *arg)
{
    (void)arg;
    prctl(PR_SET_NAME, "zs-stopthr");
    for (;;) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
        counter++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *dir = argv[1];
    prctl(PR_SET_NAME, "zs-parent");
    signal(SIGUSR1, on_usr1);

    pid_t a = fork();
    if (a == 0) {
        prctl(PR_SET_NAME, "zs-exit");
        _exit(42);
    }
    pid_t b = fork();
    if (b == 0) {
        prctl(PR_SET_NAME, "zs-kill");
        signal(SIGTERM, SIG_DFL);
        raise(SIGTERM);
        _exit(3);
    }
    pid_t c = fork();
    if (c == 0) {
        prctl(PR_SET_NAME, "zs-stop");
        pthread_t t;
        if (pthread_create(&t, NULL, stop_thread, NULL) != 0)
            _exit(9);
        while (counter < 3) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        raise(SIGSTOP);
        /* Continued: the other thread must count on. */
        unsigned long before = counter;
        for (int i = 0; i < 500 && counter < before + 3; i++) {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        _exit(counter >= before + 3 ? 7 : 8);
    }

    /* Wait (without reaping) until A and B are zombies and C is stopped. */
    for (int i = 0; i < 10000; i++) {
        if (state_of(a, NULL) == 'Z' && state_of(b, NULL) == 'Z' && state_of(c, NULL) == 'T')
            break;
        usleep(1000);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/ready", dir);
    FILE *r = fopen(path, "w");
    if (!r)
        return 2;
    fprintf(r, "ready %d %d %d %d\n", getpid(), a, b, c);
    fclose(r);

    sigset_t none;
    sigemptyset(&none);
    while (!got_usr1)
        sigsuspend(&none);

    char comm[64];
    if (state_of(a, comm) != 'Z')
        fail("A is not a zombie", a, state_of(a, NULL));
    else if (strcmp(comm, "zs-exit") != 0)
        fail("A lost its name", a, 0);
    if (state_of(b, comm) != 'Z')
        fail("B is not a zombie", b, state_of(b, NULL));
    else if (strcmp(comm, "zs-kill") != 0)
        fail("B lost its name", b, 0);
    if (state_of(c, NULL) != 'T')
        fail("C is not stopped", c, state_of(c, NULL));

    int st = 0;
    pid_t w = waitpid(a, &st, 0);
    if (w != a || !WIFEXITED(st) || WEXITSTATUS(st) != 42)
        fail("waitpid(A) is not exit 42", w, st);
    w = waitpid(b, &st, 0);
    if (w != b || !WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
        fail("waitpid(B) is not SIGTERM", w, st);
    kill(c, SIGCONT);
    w = waitpid(c, &st, 0);
    if (w != c || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
        fail("waitpid(C) is not exit 7 (its thread must count on after SIGCONT)", w, st);

    snprintf(path, sizeof path, "%s/verdict", dir);
    FILE *v = fopen(path, "w");
    if (!v)
        return 2;
    fputs(fails[0] ? fails : "PASS\n", v);
    fclose(v);
    return fails[0] ? 1 : 0;
}
