/*
 * thr_state DIR [N] -- a multi-threaded process for thread restore.
 *
 * Without N: the leader and 4 threads, each waiting differently across the checkpoint:
 *   0 "thr-spin"  spins in user code,
 *   1 "thr-cond"  blocks in pthread_cond_wait (futex),
 *   2 "thr-sleep" blocks in a long nanosleep (woken by SIGUSR2, handled on its own altstack),
 *   3 "thr-read"  blocks in read() on a pipe.
 * With "all": those 4 and 5 more:
 *   4 "thr-mutex"   blocks in pthread_mutex_lock on a mutex the leader holds,
 *   5 "thr-join"    blocks in pthread_join of thr-mutex,
 *   6 "thr-nsleep"  sleeps in nanosleep(1 s, &rem) over and over, and
 *   7 "thr-csleep"  in clock_nanosleep(CLOCK_MONOTONIC, relative 1 s, &rem): a restored sleep must go on
 *                   for its remaining time, never fail with EINTR (no signal handler interrupted it),
 *   8 "thr-handler" sits inside its SIGXCPU handler, blocked in read() on a pipe; after the handler
 *                   returns, the interrupted code goes on and the mask is the thread's again,
 *   9 "thr-epoll"   blocks in epoll_wait (no timeout) on its own epoll fd watching its own pipe,
 *  10 "thr-epwait"  in epoll_pwait with a 200 ms timeout and its own mask as the sigmask argument.
 *                   Both must get the EPOLLIN (with their data tag) of a byte the leader writes after
 *                   SIGUSR1. The kernel never restarts epoll_wait: a stop (SIGSTOP, or a ptrace interrupt
 *                   such as crisp's seize) makes it fail with EINTR even without a handler (signal(7)), so
 *                   they loop on EINTR and on timeouts, as real programs do; the counts go to DIR/epoll.
 * With N: N threads of kinds cond/sleep/read in turn (no spinners), named "thr-I".
 * Every thread has its own name (pthread_setname_np), TLS value, blocked mask (SIGRTMIN+I%8 and
 * SIGUSR1) and sigaltstack. The leader ("thr-main") writes DIR/ready ("ready PID TID...") and waits in
 * sigsuspend() for SIGUSR1 (blocked outside it, so a SIGUSR1 sent at any moment wakes it; a pause() loop
 * loses one that lands between its flag check and the call); it then wakes every thread (flag, condvar broadcast, pipe bytes, SIGUSR2),
 * each thread checks its own state, the leader joins them all (pthread_join needs the kernel to clear
 * each thread's tid word: clear_child_tid) and checks its own. Verdict in DIR/verdict: "PASS" or
 * "FAIL: ..." lines; exit 0 on pass, 1 on fail, 2 on setup error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAXT 256
#define ALT 16384

enum kind { SPIN, COND, SLEEP, READ, MUTEX, JOIN, NSLEEP, CSLEEP, HANDLER, EPOLL, EPWAIT, NKINDS };

struct thr {
    pthread_t handle;
    int index;
    enum kind kind;
    volatile pid_t tid;
    char name[16];
    char alt[ALT];
    volatile int on_alt;   /* SIGUSR2 handler ran on this thread's altstack */
    int ep, epipe[2];      /* EPOLL/EPWAIT: its epoll fd and the pipe it watches */
    int eintr, timeouts;   /* EPOLL/EPWAIT: how often the wait failed with EINTR / timed out */
    char fail[256];
};

static struct thr thr[MAXT];
static int nthreads;
static __thread long tls_value;
static __thread struct thr *self;
static volatile int go, started, got_usr1;
static volatile unsigned long spins;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int pipefd[2], handler_pipe[2];
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static volatile int handler_done;

#define TFAIL(...) do { size_t l = strlen(t->fail); snprintf(t->fail + l, sizeof t->fail - l, __VA_ARGS__); } while (0)

static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

static void on_usr2(int sig)
{
    (void)sig;
    char here;
    if (self && &here >= self->alt && &here < self->alt + ALT)
        self->on_alt = 1;
}

/* SIGXCPU: runs on thr-handler and blocks in read() until the leader writes handler_pipe. */
static void on_xcpu(int sig)
{
    (void)sig;
    struct thr *t = self;
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    if (!sigismember(&now, SIGXCPU) || !sigismember(&now, SIGPWR))
        TFAIL(" mask inside the handler;");
    t->on_alt = 1;   /* in the handler now */
    char c;
    ssize_t n;
    while ((n = read(handler_pipe[0], &c, 1)) < 0 && errno == EINTR)
        ;
    if (n != 1)
        TFAIL(" handler read %zd errno %d;", n, errno);
    handler_done = 1;
}

static sigset_t mask_for(int index)
{
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGRTMIN + index % 8);
    if (index % 2)
        sigaddset(&m, SIGWINCH);
    return m;
}

static void check_self(struct thr *t)
{
    char name[32] = "", path[64], comm[32] = "";
    if (syscall(SYS_gettid) != t->tid)
        TFAIL(" tid %ld != %d;", (long)syscall(SYS_gettid), t->tid);
    if (tls_value != 1000 + t->index)
        TFAIL(" tls %ld;", tls_value);
    if (self != t)
        TFAIL(" tls self;");
    prctl(PR_GET_NAME, name);
    if (strcmp(name, t->name) != 0)
        TFAIL(" name '%s';", name);
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", t->tid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(comm, sizeof comm, f) || strncmp(comm, t->name, strlen(t->name)) != 0)
        TFAIL(" comm '%s';", comm);
    if (f)
        fclose(f);
    sigset_t now, want = mask_for(t->index);
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    for (int s = 1; s < 65; s++)
        if (sigismember(&now, s) != sigismember(&want, s))
            TFAIL(" mask bit %d;", s);
    stack_t ss;
    sigaltstack(NULL, &ss);
    if (ss.ss_sp != t->alt || ss.ss_size != ALT)
        TFAIL(" altstack %p/%zu;", ss.ss_sp, ss.ss_size);
    if (t->kind == SLEEP && !t->on_alt)
        TFAIL(" SIGUSR2 not handled on the altstack;");
    if (t->kind == HANDLER && !handler_done)
        TFAIL(" the handler did not finish;");
}

static void *thread_main(void *arg)
{
    struct thr *t = arg;
    self = t;
    tls_value = 1000 + t->index;
    t->tid = syscall(SYS_gettid);
    pthread_setname_np(pthread_self(), t->name);
    sigset_t m = mask_for(t->index);
    pthread_sigmask(SIG_SETMASK, &m, NULL);
    stack_t ss = { .ss_sp = t->alt, .ss_size = ALT };
    sigaltstack(&ss, NULL);
    __sync_fetch_and_add(&started, 1);
    switch (t->kind) {
    case SPIN:
        while (!go)
            spins++;
        break;
    case COND:
        pthread_mutex_lock(&mu);
        while (!go)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
        break;
    case SLEEP:
        while (!go || !t->on_alt) {
            struct timespec ts = { 3600, 0 };
            nanosleep(&ts, NULL);
        }
        break;
    case MUTEX:
        pthread_mutex_lock(&held);
        pthread_mutex_unlock(&held);
        break;
    case JOIN:
        if (pthread_join(thr[MUTEX].handle, NULL) != 0)
            TFAIL(" join;");
        break;
    case NSLEEP:
    case CSLEEP:
        while (!go) {
            struct timespec ts = { 1, 0 }, rem;
            int r = t->kind == NSLEEP ? (nanosleep(&ts, &rem) == 0 ? 0 : errno)
                                      : clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &rem);
            if (r != 0) {
                TFAIL(" sleep failed: %s;", strerror(r));
                break;
            }
        }
        break;
    case HANDLER:
        pthread_kill(pthread_self(), SIGXCPU);   /* handled right here, on the way out of the call */
        if (!handler_done)
            TFAIL(" came back from the handler without it finishing;");
        break;
    case EPOLL:
    case EPWAIT: {
        struct epoll_event ev = { 0 };
        int n;
        for (;;) {
            if (t->kind == EPOLL)
                n = epoll_wait(t->ep, &ev, 1, -1);
            else
                n = epoll_pwait(t->ep, &ev, 1, 200, &m);
            if (n < 0 && errno == EINTR)
                t->eintr++;
            else if (n == 0)
                t->timeouts++;
            else
                break;
        }
        char c;
        if (n != 1 || ev.data.u32 != 5000u + t->index || !(ev.events & EPOLLIN))
            TFAIL(" epoll gave %d (errno %d) tag %u events 0x%x;", n, n < 0 ? errno : 0, ev.data.u32, ev.events);
        else if (!go)
            TFAIL(" an epoll event before the leader wrote;");
        else if (read(t->epipe[0], &c, 1) != 1 || c != 'e')
            TFAIL(" no byte behind the epoll event;");
        break;
    }
    case NKINDS:
        break;
    case READ: {
        char c;
        ssize_t n;
        while ((n = read(pipefd[0], &c, 1)) < 0 && errno == EINTR)
            ;
        if (n != 1)
            TFAIL(" read %zd errno %d;", n, errno);
        break;
    }
    }
    check_self(t);
    return NULL;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        exit(2);
    fputs(text, f);
    fclose(f);
    rename(tmp, path);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *dir = argv[1];
    int all = argc > 2 && strcmp(argv[2], "all") == 0;
    int many = argc > 2 && !all;
    nthreads = many ? atoi(argv[2]) : all ? NKINDS : 4;
    if (nthreads < 1 || nthreads > MAXT)
        return 2;
    if (pipe(pipefd) != 0 || pipe(handler_pipe) != 0)
        return 2;
    struct sigaction sx = { .sa_handler = on_xcpu };
    sigemptyset(&sx.sa_mask);
    sigaddset(&sx.sa_mask, SIGPWR);
    sigaction(SIGXCPU, &sx, NULL);
    pthread_mutex_lock(&held);
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    struct sigaction sa2 = { .sa_handler = on_usr2, .sa_flags = SA_ONSTACK };
    sigaction(SIGUSR2, &sa2, NULL);
    prctl(PR_SET_NAME, "thr-main");
    tls_value = 999;

    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    for (int i = 0; i < nthreads; i++) {
        struct thr *t = &thr[i];
        t->index = i;
        t->kind = many ? (enum kind)(1 + i % 3) : (enum kind)i;
        if (many)
            snprintf(t->name, sizeof t->name, "thr-%d", i);
        else
            strcpy(t->name, (const char *[]){ "thr-spin", "thr-cond", "thr-sleep", "thr-read", "thr-mutex", "thr-join",
                                             "thr-nsleep", "thr-csleep", "thr-handler", "thr-epoll", "thr-epwait" }[i]);
        if (t->kind == EPOLL || t->kind == EPWAIT) {
            struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 5000u + i };
            if (pipe(t->epipe) != 0 || (t->ep = epoll_create1(0)) < 0 || epoll_ctl(t->ep, EPOLL_CTL_ADD, t->epipe[0], &ev) != 0)
                return 2;
        }
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        if (pthread_create(&t->handle, &attr, thread_main, t) != 0)
            return 2;
    }
    while (started < nthreads)
        usleep(1000);
    usleep(50000);   /* let every thread reach its wait */
    if (all)
        while (!thr[HANDLER].on_alt)
            usleep(1000);

    /* The leader's own mask: SIGRTMIN+7 and SIGUSR1 blocked; SIGUSR1 opens only inside sigsuspend (only the
     * leader takes it). While it waits, /proc and ptrace show sigsuspend's mask: a restore must put back
     * this one (the kernel's saved_sigmask), which the check below sees. */
    sigset_t lead, wait_mask;
    sigemptyset(&lead);
    sigaddset(&lead, SIGRTMIN + 7);
    sigaddset(&lead, SIGUSR1);
    pthread_sigmask(SIG_SETMASK, &lead, NULL);
    wait_mask = lead;
    sigdelset(&wait_mask, SIGUSR1);

    char ready[8192];
    int len = snprintf(ready, sizeof ready, "ready %d", getpid());
    for (int i = 0; i < nthreads && len < (int)sizeof ready - 16; i++)
        len += snprintf(ready + len, sizeof ready - len, " %d", thr[i].tid);
    snprintf(ready + len, sizeof ready - len, "\n");
    write_file(dir, "ready", ready);

    while (!got_usr1)
        sigsuspend(&wait_mask);

    pthread_mutex_unlock(&held);
    if (all && write(handler_pipe[1], "h", 1) != 1)
        return 2;
    pthread_mutex_lock(&mu);
    go = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nthreads; i++) {
        if (thr[i].kind == READ && write(pipefd[1], "x", 1) != 1)
            return 2;
        if ((thr[i].kind == EPOLL || thr[i].kind == EPWAIT) && write(thr[i].epipe[1], "e", 1) != 1)
            return 2;
    }
    /* SIGUSR2 until each sleeper has handled one (on its altstack). */
    for (int round = 0; round < 2000; round++) {
        int waiting = 0;
        for (int i = 0; i < nthreads; i++)
            if (thr[i].kind == SLEEP && !thr[i].on_alt) {
                pthread_kill(thr[i].handle, SIGUSR2);
                waiting = 1;
            }
        if (!waiting)
            break;
        usleep(1000);
    }

    static char verdict[MAXT * 300 + 1024];
    int vl = 0, failed = 0;
    for (int i = 0; i < nthreads; i++) {
        if (!(all && i == MUTEX))   /* thr-join joins that one */
            pthread_join(thr[i].handle, NULL);   /* needs clear_child_tid back */
        if (thr[i].fail[0]) {
            vl += snprintf(verdict + vl, sizeof verdict - vl, "FAIL: thread %d (%s):%s\n", i, thr[i].name, thr[i].fail);
            failed = 1;
        }
    }
    char name[32] = "";
    prctl(PR_GET_NAME, name);
    if (strcmp(name, "thr-main") != 0) {
        vl += snprintf(verdict + vl, sizeof verdict - vl, "FAIL: leader name '%s'\n", name);
        failed = 1;
    }
    if (tls_value != 999) {
        vl += snprintf(verdict + vl, sizeof verdict - vl, "FAIL: leader tls %ld\n", tls_value);
        failed = 1;
    }
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    if (!sigismember(&now, SIGRTMIN + 7) || !sigismember(&now, SIGUSR1)) {
        vl += snprintf(verdict + vl, sizeof verdict - vl, "FAIL: leader mask\n");
        failed = 1;
    }
    if (!many && spins == 0) {
        vl += snprintf(verdict + vl, sizeof verdict - vl, "FAIL: the spinner never ran\n");
        failed = 1;
    }
    if (all) {
        char notes[256];
        snprintf(notes, sizeof notes, "epoll_wait eintr %d; epoll_pwait eintr %d timeouts %d\n",
                 thr[EPOLL].eintr, thr[EPWAIT].eintr, thr[EPWAIT].timeouts);
        write_file(dir, "epoll", notes);
    }
    if (!failed)
        snprintf(verdict + vl, sizeof verdict - vl, "PASS\n");
    write_file(dir, "verdict", verdict);
    return failed;
}
