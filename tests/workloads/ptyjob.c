/*
 * ptyjob SLAVE LOG PROG ARGS... -- a tiny job-control shell on a terminal the test holds the master of.
 * Starts a session on SLAVE (its controlling terminal), forks PROG into a process group of its own, puts
 * that group in the terminal's foreground and waits for it. PROG's stdin is the terminal; its stdout and
 * stderr too, or the file LOG unless LOG is "-". Exits with PROG's status (128 + signal if killed).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    if (setsid() < 0) {
        perror("setsid");
        return 2;
    }
    int tty = open(argv[1], O_RDWR | O_NOCTTY);
    if (tty < 0 || ioctl(tty, TIOCSCTTY, 0)) {
        perror(argv[1]);
        return 2;
    }
    signal(SIGTTOU, SIG_IGN);
    pid_t child = fork();
    if (child < 0)
        return 2;
    if (child == 0) {
        setpgid(0, 0);
        tcsetpgrp(tty, getpid());
        signal(SIGTTOU, SIG_DFL);
        dup2(tty, 0);
        if (strcmp(argv[2], "-") == 0) {
            dup2(tty, 1);
            dup2(tty, 2);
        } else {
            int log = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
            dup2(log, 1);
            dup2(log, 2);
            close(log);
        }
        close(tty);
        execvp(argv[3], argv + 3);
        perror(argv[3]);
        _exit(127);
    }
    setpgid(child, child);
    tcsetpgrp(tty, child);
    int status;
    while (waitpid(child, &status, 0) < 0)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
