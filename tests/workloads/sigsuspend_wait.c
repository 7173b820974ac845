// Keeps SIGUSR1 blocked except inside sigsuspend (the race-free wait), prints "ready PID", and exits 0
// once the handler ran. A checkpoint that records sigsuspend's temporary mask instead of the program's
// own would leave SIGUSR1 unblocked outside the call, and a signal arriving just before the re-issued
// sigsuspend would be handled and then waited for again, for ever.
#include <signal.h>
#include <stdio.h>

static volatile sig_atomic_t got;
static void on_usr1(int s) { (void)s; got = 1; }

int main(void)
{
    sigset_t usr1, none;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigemptyset(&none);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    signal(SIGUSR1, on_usr1);
    printf("ready\n");
    fflush(stdout);
    while (!got)
        sigsuspend(&none);
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    if (!sigismember(&now, SIGUSR1)) {
        printf("FAIL: SIGUSR1 no longer blocked after sigsuspend\n");
        return 1;
    }
    printf("woke\n");
    return 0;
}
