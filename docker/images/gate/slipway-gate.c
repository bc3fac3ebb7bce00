/*
 * slipway-gate: the door of a workspace app. Listens on a published port, lets a connection
 * through to the app (on 127.0.0.1 inside the container) only when its first request carries
 * `X-Slipway-Gate: <secret>`, the per-container secret the edge nginx adds to every request it
 * proxies. Anything else gets 403 and is closed, so reaching the published port directly (from the
 * Docker host or the agent host's network) gives nothing without the edge.
 *
 * Usage: slipway-gate LISTEN_PORT APP_PORT   (secret in SLIPWAY_GATE_SECRET, at least 16 bytes)
 *
 * The edge opens one upstream connection per request (no upstream keepalive), so every request
 * is checked; after the check the connection is relayed byte for byte in both directions, which
 * is what carries WebSocket upgrades. The header is removed before the request reaches the app.
 * One process per connection (fork), no threads, no allocation after start: small on purpose.
 * Built static (`gcc -O2 -static`) so it runs in any image, busybox ones included.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEAD_MAX 65536
#define MAX_CHILDREN 128  /* connections at once: whoever floods the port cannot use up the pids limit */
#define HEADER "x-slipway-gate"
#define HEADER_LEN (sizeof(HEADER) - 1)

static const char *secret;
static size_t secret_len;
static int app_port;
static volatile sig_atomic_t children;

static void reap(int sig) {
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) children--;
    errno = saved;
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Every answer of the gate's own says so (`X-Slipway-Gate: closed`): the agent checks for it. */
static void answer(int fd, const char *status, const char *body) {
    char out[512];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\nCache-Control: no-store\r\nX-Slipway-Gate: closed\r\n\r\n%s",
                     status, strlen(body), body);
    if (n > 0) write_all(fd, out, (size_t)n);
}

/* Constant time for a given length: the secret is not guessed byte by byte. */
static int secret_matches(const char *value, size_t len) {
    unsigned char diff = (unsigned char)(len != secret_len);
    for (size_t i = 0; i < secret_len; i++)
        diff |= (unsigned char)(secret[i] ^ (i < len ? value[i] : 0));
    return diff == 0;
}

/* Index just past the blank line ending the head, or 0 while it is incomplete. */
static size_t head_end(const char *buf, size_t len) {
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] != '\n') continue;
        if (buf[i + 1] == '\n') return i + 2;
        if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n') return i + 3;
    }
    return 0;
}

/*
 * Copy the head into `out` without the gate header lines; return its length, or -1 unless
 * there is exactly one gate header and it holds the secret.
 */
static long filter_head(const char *head, size_t len, char *out) {
    size_t kept = 0, pos = 0;
    int seen = 0, ok = 1, first = 1;
    while (pos < len) {
        const char *line = head + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) + 1 : len - pos;
        pos += line_len;
        if (!first && line_len > HEADER_LEN && strncasecmp(line, HEADER, HEADER_LEN) == 0
            && (line[HEADER_LEN] == ':' || line[HEADER_LEN] == ' ' || line[HEADER_LEN] == '\t')) {
            const char *v = line + HEADER_LEN;
            const char *end = line + line_len;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            if (v < end && *v == ':') v++; else ok = 0;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            while (end > v && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            seen++;
            ok &= secret_matches(v, (size_t)(end - v));
            continue;
        }
        first = 0;
        memcpy(out + kept, line, line_len);
        kept += line_len;
    }
    return (seen == 1 && ok) ? (long)kept : -1;
}

static int connect_app(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {0};
    if (fd < 0) return -1;
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)app_port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Relay both ways until either side ends the connection. */
static void relay(int client, int app) {
    static char buf[65536];
    struct pollfd fds[2] = {{client, POLLIN, 0}, {app, POLLIN, 0}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        for (int i = 0; i < 2; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0 || write_all(fds[1 - i].fd, buf, (size_t)n) < 0) return;
        }
    }
}

static void serve(int client) {
    static char head[HEAD_MAX], forward[HEAD_MAX];
    size_t len = 0, end = 0;
    struct timeval limit = {10, 0};  /* the edge sends the head at once; the relay itself has no limit */
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    while (!(end = head_end(head, len))) {
        if (len == sizeof head) {
            answer(client, "431 Request Header Fields Too Large", "request head too large\n");
            return;
        }
        ssize_t n = read(client, head + len, sizeof head - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        len += (size_t)n;
    }
    long kept = filter_head(head, end, forward);
    if (kept < 0) {
        answer(client, "403 Forbidden", "This port answers only the Slipway edge.\n");
        return;
    }
    int app = connect_app();
    if (app < 0) {
        answer(client, "502 Bad Gateway", "The workspace app is not answering yet.\n");
        return;
    }
    struct timeval none = {0, 0};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    int one = 1;
    setsockopt(app, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (write_all(app, forward, (size_t)kept) == 0 && write_all(app, head + end, len - end) == 0)
        relay(client, app);
    close(app);
}

static int port_arg(const char *text) {
    char *rest;
    long value = strtol(text, &rest, 10);
    return (*text && !*rest && value >= 1 && value <= 65535) ? (int)value : 0;
}

int main(int argc, char **argv) {
    int listen_port = argc == 3 ? port_arg(argv[1]) : 0;
    app_port = argc == 3 ? port_arg(argv[2]) : 0;
    secret = getenv("SLIPWAY_GATE_SECRET");
    if (!listen_port || !app_port) {
        fprintf(stderr, "usage: slipway-gate LISTEN_PORT APP_PORT (secret in SLIPWAY_GATE_SECRET)\n");
        return 2;
    }
    if (!secret || (secret_len = strlen(secret)) < 16) {
        /* Fail closed: without a secret nothing may listen on the published port. */
        fprintf(stderr, "slipway-gate: SLIPWAY_GATE_SECRET is missing or shorter than 16 bytes\n");
        return 1;
    }
    struct sigaction on_child = {0};
    on_child.sa_handler = reap;
    on_child.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &on_child, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    int server = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)listen_port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (server < 0 || bind(server, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(server, 256) < 0) {
        perror("slipway-gate: listen");
        return 1;
    }
    for (;;) {
        int client = accept(server, NULL, NULL);
        if (client < 0) {
            if (errno != EINTR) usleep(10000);  /* out of descriptors: do not spin */
            continue;
        }
        if (children >= MAX_CHILDREN) {
            answer(client, "503 Service Unavailable", "Too many connections.\n");
            close(client);
            continue;
        }
        sigprocmask(SIG_BLOCK, &chld, NULL);  /* count the child before it can be reaped */
        pid_t pid = fork();
        if (pid == 0) {
            sigprocmask(SIG_UNBLOCK, &chld, NULL);
            close(server);
            serve(client);
            close(client);
            _exit(0);
        }
        if (pid > 0) children++;
        sigprocmask(SIG_UNBLOCK, &chld, NULL);
        close(client);
    }
}
