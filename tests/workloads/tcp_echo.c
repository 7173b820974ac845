/*
 * tcp_echo -- a TCP echo server on 127.0.0.1 with one client, for established-connection checkpoints.
 *
 * Prints "ready PID PORT\n" on stdout, accepts one connection (fd 4; the listener is fd 3) and answers
 * each line "X\n" with "echo:X\n". The line "hold N\n" is answered "ok\n" followed by N bytes of a
 * pattern (byte i = i % 251), written without blocking as far as the kernel takes them, and prints
 * "held\n" on stdout; then the server waits for SIGUSR1 (leaving what the client sends meanwhile unread) before writing the rest of
 * the pattern and going on. On end of stream it exits 0; on an error it prints it on stderr and exits 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "workload.h"

static volatile sig_atomic_t go;
static void on_usr1(int sig) { (void)sig; go = 1; }
#define DIE(what) do { fprintf(stderr, "tcp_echo: %s: %s\n", what, strerror(errno)); exit(1); } while (0)

static void send_all(int fd, const char *p, size_t n, int flags)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, flags | MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            DIE("send");
        p += w;
        n -= (size_t)w;
    }
}

int main(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (l != 3 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4) || getsockname(l, (struct sockaddr *)&a, &al))
        DIE("listen");
    sigset_t old;
    usr1_only_in_sigsuspend(on_usr1, &old);
    printf("ready %d %d\n", getpid(), ntohs(a.sin_port));
    fflush(stdout);
    int c = accept(l, NULL, NULL);
    if (c != 4)
        DIE("accept");

    char line[256];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(c, line + have, 1, 0);    /* a byte at a time: nothing beyond a line is consumed */
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            DIE("recv");
        if (n == 0)
            return 0;
        if (line[have] != '\n') {
            if (++have == sizeof line - 1)
                DIE("line too long");
            continue;
        }
        line[have] = 0;
        have = 0;
        long hold;
        if (sscanf(line, "hold %ld", &hold) == 1) {
            char *blob = malloc((size_t)hold);
            for (long i = 0; i < hold; i++)
                blob[i] = (char)(i % 251);
            send_all(c, "ok\n", 3, 0);
            long off = 0;
            while (off < hold) {
                ssize_t w = send(c, blob + off, (size_t)(hold - off), MSG_DONTWAIT | MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                off += w;
            }
            printf("held %ld\n", off);    /* the test dumps only once the send queue is full */
            fflush(stdout);
            while (!go)
                sigsuspend(&old);
            go = 0;
            send_all(c, blob + off, (size_t)(hold - off), 0);
            free(blob);
            continue;
        }
        char reply[300];
        int len = snprintf(reply, sizeof reply, "echo:%s\n", line);
        send_all(c, reply, (size_t)len, 0);
    }
}
