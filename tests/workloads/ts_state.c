/*
 * ts_state -- per-task state for the Signals/Rlimits/TaskState/Rseq/Creds resources.
 *
 * Sets up: a SIGUSR2 handler (SA_SIGINFO|SA_RESTART|SA_ONSTACK, mask {SIGINT}), SIGPIPE ignored,
 * a blocked mask {SIGTERM, SIGHUP, SIGRTMIN+3, SIGUSR1} in the main thread, pending signals: private
 * SIGTERM (tgkill), shared SIGHUP (kill) and shared SIGRTMIN+3 (sigqueue, value 42); an alternate
 * signal stack; RLIMIT_NOFILE 123/456 and RLIMIT_CORE 0/789; PR_SET_PDEATHSIG SIGWINCH; child
 * subreaper. A second thread blocks the same plus SIGQUIT, has its own altstack and a private
 * pending SIGQUIT.
 * Prints "ready ROBUST_HEAD ROBUST_LEN ALTSTACK THREAD_TID THREAD_ALTSTACK\n", waits for SIGUSR1
 * (sigwaitinfo), then checks everything (pending signals are dequeued only now, with their siginfo)
 * and prints PASS (exit 0) or FAIL lines on stderr (exit 1).
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static int failures;
#define CHECK(name, cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL: " name ": " __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)

static char main_alt[65536], thread_alt[65536];
static volatile pid_t thread_tid;
static volatile int thread_ok = -1, stop_thread;

/* The raw call: glibc's sigtimedwait reports SI_TKILL as SI_USER. */
static int take(int sig, siginfo_t *si)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    struct timespec zero = { 0, 0 };
    return syscall(SYS_rt_sigtimedwait, &one, si, &zero, 8);
}

static void on_usr2(int sig, siginfo_t *si, void *uc) { (void)sig; (void)si; (void)uc; }

static sigset_t base_mask(void)
{
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGTERM);
    sigaddset(&m, SIGHUP);
    sigaddset(&m, SIGRTMIN + 3);
    sigaddset(&m, SIGUSR1);
    return m;
}

static void *thread_main(void *arg)
{
    (void)arg;
    sigset_t m = base_mask();
    sigaddset(&m, SIGQUIT);
    pthread_sigmask(SIG_SETMASK, &m, NULL);
    stack_t ss = { .ss_sp = thread_alt, .ss_size = sizeof thread_alt };
    sigaltstack(&ss, NULL);
    thread_tid = syscall(SYS_gettid);
    syscall(SYS_tgkill, getpid(), thread_tid, SIGQUIT);
    while (!stop_thread)
        usleep(1000);
    /* After restore: still the same mask, altstack and pending SIGQUIT (private). */
    sigset_t now, pend;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    stack_t cur;
    sigaltstack(NULL, &cur);
    sigpending(&pend);
    int ok = sigismember(&now, SIGQUIT) && cur.ss_sp == thread_alt && cur.ss_size == sizeof thread_alt
        && sigismember(&pend, SIGQUIT);
    siginfo_t si;
    ok = ok && take(SIGQUIT, &si) == SIGQUIT && si.si_code == SI_TKILL;
    thread_ok = ok;
    return NULL;
}

int main(int argc, char **argv)
{
    (void)argc; (void)argv;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr2;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaction(SIGUSR2, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGQUIT, SIG_DFL);   /* may come ignored from a shell; an ignored signal is never queued */

    sigset_t m = base_mask();
    sigprocmask(SIG_SETMASK, &m, NULL);
    stack_t ss = { .ss_sp = main_alt, .ss_size = sizeof main_alt };
    sigaltstack(&ss, NULL);

    struct rlimit nofile = { 123, 456 }, core = { 0, 789 };
    if (setrlimit(RLIMIT_NOFILE, &nofile) || setrlimit(RLIMIT_CORE, &core)) { perror("setrlimit"); return 2; }
    prctl(PR_SET_PDEATHSIG, SIGWINCH);
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    while (!thread_tid)
        usleep(1000);

    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGTERM);
    kill(getpid(), SIGHUP);
    union sigval v = { .sival_int = 42 };
    sigqueue(getpid(), SIGRTMIN + 3, v);

    struct robust_list_head *head;
    size_t len;
    syscall(SYS_get_robust_list, 0, &head, &len);
    printf("ready %lu %zu %lu %d %lu\n", (unsigned long)head, len, (unsigned long)main_alt, (int)thread_tid,
           (unsigned long)thread_alt);
    fflush(stdout);

    sigset_t wait_usr1;
    sigemptyset(&wait_usr1);
    sigaddset(&wait_usr1, SIGUSR1);
    siginfo_t si;
    while (sigwaitinfo(&wait_usr1, &si) != SIGUSR1) {}

    struct sigaction now;
    sigaction(SIGUSR2, NULL, &now);
    CHECK("sigaction", now.sa_sigaction == on_usr2 && (now.sa_flags & (SA_SIGINFO | SA_RESTART | SA_ONSTACK)) == (SA_SIGINFO | SA_RESTART | SA_ONSTACK)
          && sigismember(&now.sa_mask, SIGINT), "SIGUSR2 handler %p flags %x", (void *)now.sa_sigaction, now.sa_flags);
    sigaction(SIGPIPE, NULL, &now);
    CHECK("sigign", now.sa_handler == SIG_IGN, "SIGPIPE not ignored");
    sigset_t cur;
    sigprocmask(SIG_SETMASK, NULL, &cur);
    CHECK("sigmask", sigismember(&cur, SIGTERM) && sigismember(&cur, SIGHUP) && sigismember(&cur, SIGRTMIN + 3)
          && !sigismember(&cur, SIGQUIT), "mask changed");
    stack_t cs;
    sigaltstack(NULL, &cs);
    CHECK("sigaltstack", cs.ss_sp == main_alt && cs.ss_size == sizeof main_alt && cs.ss_flags == 0,
          "%p/%zu/%d", cs.ss_sp, cs.ss_size, cs.ss_flags);
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    CHECK("rlimit_nofile", r.rlim_cur == 123 && r.rlim_max == 456, "%lu/%lu", (unsigned long)r.rlim_cur, (unsigned long)r.rlim_max);
    getrlimit(RLIMIT_CORE, &r);
    CHECK("rlimit_core", r.rlim_cur == 0 && r.rlim_max == 789, "%lu/%lu", (unsigned long)r.rlim_cur, (unsigned long)r.rlim_max);
    int pd = 0, sub = 0;
    prctl(PR_GET_PDEATHSIG, &pd);
    prctl(PR_GET_CHILD_SUBREAPER, &sub);
    CHECK("pdeathsig", pd == SIGWINCH, "%d", pd);
    CHECK("subreaper", sub == 1, "%d", sub);
    struct robust_list_head *h2;
    size_t l2;
    syscall(SYS_get_robust_list, 0, &h2, &l2);
    CHECK("robust_list", h2 == head && l2 == len, "%p/%zu", (void *)h2, l2);

    sigset_t pend;
    sigpending(&pend);
    CHECK("sigpending", sigismember(&pend, SIGTERM) && sigismember(&pend, SIGHUP) && sigismember(&pend, SIGRTMIN + 3),
          "pending signals lost");
    int got = take(SIGRTMIN + 3, &si);
    CHECK("sigqueue_info", got == SIGRTMIN + 3 && si.si_code == SI_QUEUE && si.si_value.sival_int == 42 && si.si_pid == getpid(),
          "sig %d code %d value %d pid %d", got, si.si_code, si.si_value.sival_int, si.si_pid);
    got = take(SIGHUP, &si);
    CHECK("shared_hup", got == SIGHUP && si.si_code == SI_USER && si.si_pid == getpid(), "sig %d code %d", got, si.si_code);
    got = take(SIGTERM, &si);
    CHECK("private_term", got == SIGTERM && si.si_code == SI_TKILL, "sig %d code %d", got, si.si_code);

    stop_thread = 1;
    pthread_join(t, NULL);
    CHECK("thread", thread_ok == 1, "thread state changed (%d)", thread_ok);
    if (failures)
        return 1;
    printf("PASS\n");
    fflush(stdout);
    return 0;
}
