/*
 * The native CNI launcher: the same client as agent/cni/thin.py, in C, because a Python
 * interpreter alone takes about 8 ms to start, half of the reference plugins' whole ADD.
 * agent/cni/install.py prepends the #defines CALICC_KIND, CALICC_SOCKET, CALICC_PYTHON,
 * CALICC_ROOT and CALICC_SOURCE_ID and compiles it with the node's C compiler when there is one.
 *
 * Wire format (see thin.py): request = kind NL, KEY=VALUE NL per CNI_* variable (backslash and
 * newline escaped as \\ and \n), NL, stdin (at most CALICC_MAX_STDIN + 1 bytes of it); then the
 * sending side is shut down. Answer = exit status NL, then stdout bytes.
 * No agent listening: exec the full plugin in the project's Python with stdin untouched.
 * A connection that breaks mid-request is not retried: error 11, try again later.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;
static const char source_id[] __attribute__((used)) = "calicc-launcher-source:" CALICC_SOURCE_ID;

static void fail(int code, const char *what) {
    printf("{\"cniVersion\": \"1.0.0\", \"code\": %d, \"msg\": \"%s\"}\n", code, what);
    exit(code);
}

static int write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t done = write(fd, data, len);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            return -1;
        data += done;
        len -= (size_t)done;
    }
    return 0;
}

static void standalone(void) {
    setenv("CALICC_ROOT", CALICC_ROOT, 1);
    execl(CALICC_PYTHON, CALICC_PYTHON, "-I", "-m", "calicc.agent.cni.main", CALICC_KIND, (char *)NULL);
    fail(11, "no calicc agent answers on " CALICC_SOCKET " and " CALICC_PYTHON
             " cannot run the plugin standalone; start the agent or reinstall the plugins");
}

static int connect_agent(void) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct timeval limit = {.tv_sec = 120};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sizeof(CALICC_SOCKET) > sizeof(addr.sun_path))
        return -1;
    memcpy(addr.sun_path, CALICC_SOCKET, sizeof(CALICC_SOCKET));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
    return fd;
}

/* One header line: the variable with its backslashes and newlines escaped. */
static int write_variable(int fd, const char *entry) {
    const char *run = entry;
    for (const char *c = entry; *c; c++) {
        if (*c != '\\' && *c != '\n')
            continue;
        if (write_all(fd, run, (size_t)(c - run)) != 0 ||
            write_all(fd, *c == '\n' ? "\\n" : "\\\\", 2) != 0)
            return -1;
        run = c + 1;
    }
    return write_all(fd, run, strlen(run)) != 0 ? -1 : write_all(fd, "\n", 1);
}

static int send_request(int fd) {
    char buf[65536];
    ssize_t got;
    size_t left = CALICC_MAX_STDIN + 1;
    if (write_all(fd, CALICC_KIND "\n", sizeof(CALICC_KIND)) != 0)
        return -1;
    for (char **env = environ; *env; env++) {
        if (strncmp(*env, "CNI_", 4) == 0 && write_variable(fd, *env) != 0)
            return -1;
    }
    if (write_all(fd, "\n", 1) != 0)
        return -1;
    while (left > 0 && (got = read(0, buf, left < sizeof(buf) ? left : sizeof(buf))) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 || write_all(fd, buf, (size_t)got) != 0)
            return -1;
        left -= (size_t)got;
    }
    return shutdown(fd, SHUT_WR);
}

static char *read_answer(int fd, size_t *len) {
    size_t cap = 65536;
    char *answer = malloc(cap);
    ssize_t got;
    *len = 0;
    while (answer != NULL) {
        got = read(fd, answer + *len, cap - *len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free(answer);
            return NULL;
        }
        if (got == 0)
            return answer;
        *len += (size_t)got;
        if (*len == cap)
            answer = realloc(answer, cap *= 2);
    }
    return NULL;
}

int main(void) {
    size_t len = 0, head = 0;
    int fd = connect_agent();
    char *answer;
    if (fd < 0)
        standalone();
    signal(SIGPIPE, SIG_IGN); /* an agent gone mid-request is error 11, not a killed runtime */
    answer = send_request(fd) == 0 ? read_answer(fd, &len) : NULL;
    while (answer != NULL && head < len && isdigit((unsigned char)answer[head]))
        head++;
    if (answer == NULL || head == 0 || head >= len || answer[head] != '\n')
        fail(11, "the calicc agent closed the connection mid-request; try again");
    answer[head] = '\0';
    if (write_all(1, answer + head + 1, len - head - 1) != 0)
        return 5;
    return atoi(answer);
}
