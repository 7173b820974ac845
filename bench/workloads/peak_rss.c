// Runs a command and prints its peak resident memory in KiB (wait4's ru_maxrss) on stdout; exits with the
// command's status. The command is fork()ed from this small process, not posix_spawn()ed from the large
// benchmark: exec records the old address space's high-water mark in ru_maxrss, and a vfork-style spawn
// would hand over the benchmark's own.
// usage: peak_rss CMD [ARG...]
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
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
    printf("%ld\n", ru.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
