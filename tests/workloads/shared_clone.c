/*
 * shared_clone DIR KIND -- a child made by clone() sharing one kind of task resource with its parent
 * without being its thread: KIND is files (CLONE_FILES), fs (CLONE_FS) or vm (CLONE_VM|CLONE_SIGHAND).
 * Writes "ready PID CHILD" to DIR/ready; on SIGUSR1 the parent checks that the child still lives and
 * still shares (an fd the child opens is seen by the parent; a chdir of the child moves the parent;
 * a word the child writes is read by the parent) and writes DIR/verdict.
 */
#define _GNU_SOURCE
#define WORKLOAD_COUNTED_CHECKS
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "workload.h"

static int failures;
static volatile int got_usr1, shared_word;
static int pipe_fds[2];
static char stack[64 * 1024] __attribute__((aligned(16)));

static void on_usr1(int s) { (void)s; got_usr1 = 1; }

/* Raw syscalls only: with CLONE_VM the child shares the parent's libc state. */
static int child(void *arg)
{
    (void)arg;
    char c;
    syscall(SYS_read, pipe_fds[0], &c, 1);   /* the parent's go, after the checkpoint */
    if (c == 'f')
        syscall(SYS_dup2, pipe_fds[0], 100);
    else if (c == 's')
        syscall(SYS_chdir, "/tmp");
    else
        shared_word = 42;
    for (;;)
        syscall(SYS_pause);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *dir = argv[1], *kind = argv[2];
    sigset_t wait_mask;
    usr1_only_in_sigsuspend(on_usr1, &wait_mask);
    if (pipe(pipe_fds) != 0)
        return 2;
    int flags = strcmp(kind, "files") == 0 ? CLONE_FILES : strcmp(kind, "fs") == 0 ? CLONE_FS : CLONE_VM | CLONE_SIGHAND;
    if (chdir("/") != 0)
        return 2;
    int pid = clone(child, stack + sizeof stack, flags | SIGCHLD, NULL);
    if (pid < 0) {
        perror("clone");
        return 2;
    }
    char ready[64];
    snprintf(ready, sizeof ready, "ready %d %d\n", getpid(), pid);
    write_file(dir, "ready", ready);
    while (!got_usr1)
        sigsuspend(&wait_mask);

    char go = strcmp(kind, "files") == 0 ? 'f' : strcmp(kind, "fs") == 0 ? 's' : 'v';
    if (write(pipe_fds[1], &go, 1) != 1)
        return 2;
    usleep(200000);
    CHECK("child alive", kill(pid, 0) == 0, "child %d gone", pid);
    if (go == 'f')
        CHECK("shared file table", fcntl(100, F_GETFD) >= 0, "fd 100 the child made is not here");
    else if (go == 's') {
        char cwd[64] = "";
        CHECK("shared fs", getcwd(cwd, sizeof cwd) && strcmp(cwd, "/tmp") == 0, "cwd %s", cwd);
    } else
        CHECK("shared vm", shared_word == 42, "word %d", shared_word);
    kill(pid, SIGKILL);
    write_file(dir, "verdict", failures ? "FAIL\n" : "PASS\n");
    return failures ? 1 : 0;
}
