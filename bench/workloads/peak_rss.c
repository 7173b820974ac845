// Runs a command and prints its peak resident memory in KiB (wait4's ru_maxrss) on stdout; exits with the
// command's status. The command is fork()ed from this small process, not posix_spawn()ed from the large
// benchmark: exec records the old address space's high-water mark in ru_maxrss, and a vfork-style spawn
// would hand over the benchmark's own.
// With -t, the line is "KiB MICROSECONDS": the command's wall time from fork to wait4, with nothing else's start-up in it.
// usage: peak_rss [-t] CMD [ARG...]
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int timed = argc > 1 && strcmp(argv[1], "-t") == 0;
    argv += timed;
    argc -= timed;
    if (argc < 2) return 2;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
        execv(argv[1], argv + 1);
        perror("execv");
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) { perror("wait4"); return 2; }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (timed)
        printf("%ld %ld\n", ru.ru_maxrss, (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000);
    else
        printf("%ld\n", ru.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
