/*
 * ext_unix PATH DIR [stream] -- a socket connected to a unix socket outside the dumped tree (like a
 * syslog client's /dev/log).
 *
 * Connects a datagram (or, with "stream", a stream) socket to PATH, sends "before", writes DIR/ready
 * ("ready PID\n") and waits for SIGUSR1 (blocked outside sigsuspend). Then its peer must still be PATH
 * (getpeername) and "after" must go out on the same fd. Verdict in DIR/verdict: "PASS" or "FAIL: ..."
 * lines; exit 0 on pass, 1 on fail, 2 on setup error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "workload.h"

static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int stream = argc > 3 && strcmp(argv[3], "stream") == 0;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[1]);
    int s = socket(AF_UNIX, stream ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0 || send(s, "before", 6, 0) != 6)
        return 2;

    sigset_t old;
    usr1_only_in_sigsuspend(on_usr1, &old);
    char ready[64];
    snprintf(ready, sizeof ready, "ready %d\n", getpid());
    write_file(argv[2], "ready", ready);
    while (!go)
        sigsuspend(&old);

    char verdict[512] = "";
    struct sockaddr_un peer = { 0 };
    socklen_t len = sizeof peer;
    if (getpeername(s, (struct sockaddr *)&peer, &len) != 0)
        snprintf(verdict, sizeof verdict, "FAIL: getpeername: %s\n", strerror(errno));
    else if (strcmp(peer.sun_path, argv[1]) != 0)
        snprintf(verdict, sizeof verdict, "FAIL: peer '%s', want '%s'\n", peer.sun_path, argv[1]);
    else if (send(s, "after", 5, 0) != 5)
        snprintf(verdict, sizeof verdict, "FAIL: send after: %s\n", strerror(errno));
    if (!verdict[0])
        strcpy(verdict, "PASS\n");
    write_file(argv[2], "verdict", verdict);
    return strcmp(verdict, "PASS\n") == 0 ? 0 : 1;
}
