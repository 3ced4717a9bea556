/*
 * The native CNI launcher: the same client as agent/cni/thin.py, in C, because a Python
 * interpreter alone takes about 8 ms to start, half of the reference plugins' whole ADD.
 * agent/cni/install.py prepends the #defines CALICC_PYTHON, CALICC_IDLE, CALICC_MAX_STDIN and
 * CALICC_SOURCE_ID and compiles it once per machine with the node's C compiler when there is one;
 * the same binary serves every root and both plugins. Where it runs from says the rest: it is
 * <root>/opt/cni/<dir>/<name>, so the root is its path less four parts, the plugin kind is
 * "ipam" for calicc-ipam and "plugin" otherwise, and the socket and the start lock live under
 * <root>/var/run/calicc/.
 *
 * Wire format (see thin.py): request = kind NL, KEY=VALUE NL per CNI_* variable (backslash and
 * newline escaped as \\ and \n), NL, stdin (at most CALICC_MAX_STDIN + 1 bytes of it); then the
 * sending side is shut down. Answer = exit status NL, then stdout bytes.
 * No agent listening: start the CNI server on demand (agent/cni/server.py, exits after CALICC_IDLE
 * idle seconds) unless CALICC_IDLE is "0", and send the request to it once it answers. Only the
 * launcher that takes the flock on the start lock starts one; the server inherits that lock
 * as descriptor 3 and holds it for life, so the others wait for its socket. When no server
 * comes up, exec the full plugin in the project's Python with stdin untouched.
 * A connection that breaks mid-request is not retried: error 11, try again later.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static const char source_id[] __attribute__((used)) = "calicc-launcher-source:" CALICC_SOURCE_ID;

#define RUN_DIR "/var/run/calicc"
static char root[4096];             /* "" for "/" */
static char run_dir[sizeof(root) + sizeof(RUN_DIR)];
static char sock_path[sizeof(run_dir) + 16];
static char start_lock[sizeof(run_dir) + 24];
static const char *kind = "plugin";

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
    setenv("CALICC_ROOT", root[0] ? root : "/", 1);
    execl(CALICC_PYTHON, CALICC_PYTHON, "-I", "-m", "calicc.agent.cni.main", kind, (char *)NULL);
    fail(11, "no calicc agent answers and " CALICC_PYTHON
             " cannot run the plugin standalone; start the agent or reinstall the plugins");
}

/* Set root, kind and the paths under root from where this executable is. */
static int where_am_i(void) {
    ssize_t n = readlink("/proc/self/exe", root, sizeof(root) - 1);
    char *name;
    if (n <= 0)
        return -1;
    root[n] = '\0';
    name = strrchr(root, '/');
    if (name != NULL && strcmp(name + 1, "calicc-ipam") == 0)
        kind = "ipam";
    for (int part = 0; part < 4; part++) { /* <root>/opt/cni/<dir>/<name> */
        char *slash = strrchr(root, '/');
        if (slash == NULL)
            return -1;
        *slash = '\0';
    }
    snprintf(run_dir, sizeof(run_dir), "%s" RUN_DIR, root);
    snprintf(sock_path, sizeof(sock_path), "%s/cni.sock", run_dir);
    snprintf(start_lock, sizeof(start_lock), "%s/cni-server.lock", run_dir);
    return 0;
}

static int connect_agent(void);

/* Fork the on-demand server holding `lock` (as descriptor 3), detached from the runtime's
 * session and stdio; return its pid, or -1. */
static pid_t spawn_server(int lock) {
    const char *path = getenv("PATH");
    char *env[2] = {NULL, NULL};
    pid_t pid;
    if (asprintf(&env[0], "PATH=%s", path ? path : "/usr/sbin:/usr/bin:/sbin:/bin") < 0)
        return -1;
    pid = fork();
    if (pid != 0) {
        free(env[0]);
        return pid;
    }
    int null = open("/dev/null", O_RDWR);
    /* dup2 onto itself (lock == 3) keeps close-on-exec: clear it either way */
    if (null < 0 || setsid() < 0 || chdir("/") != 0 || dup2(lock, 3) < 0 ||
        fcntl(3, F_SETFD, 0) < 0)
        _exit(127);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    close_range(4, ~0U, 0);
    execle(CALICC_PYTHON, CALICC_PYTHON, "-I", "-m", "calicc.agent.cni.server", "--root",
           root[0] ? root : "/", "--idle", CALICC_IDLE, (char *)NULL, env);
    _exit(127);
}

/* Connect to a server started on demand (by this launcher or a concurrent one); -1 when none
 * answers within 10 s or the one this launcher started failed. */
static int connect_on_demand(void) {
    struct timespec pause = {.tv_nsec = 2000000};
    pid_t child = -1;
    int status, fd = -1;
    char dir[sizeof(run_dir)];
    memcpy(dir, run_dir, sizeof(dir));
    for (char *slash = strchr(dir + strlen(root) + 1, '/'); ; slash = strchr(slash + 1, '/')) {
        if (slash != NULL)
            *slash = '\0'; /* mkdir -p below the root; the server fixes the mode */
        mkdir(dir, 0700);
        if (slash == NULL)
            break;
        *slash = '/';
    }
    signal(SIGCHLD, SIG_DFL); /* an inherited SIG_IGN would reap the child before waitpid */
    for (int waited = 0; waited < 5000; waited++) {
        if ((fd = connect_agent()) >= 0)
            return fd;
        if (child < 0) {
            int lock = open(start_lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            if (lock < 0)
                return -1;
            if (flock(lock, LOCK_EX | LOCK_NB) == 0)
                child = spawn_server(lock);
            close(lock);
        } else if (waitpid(child, &status, WNOHANG) == child) {
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -1;
            child = -1; /* it found another server answering: connect to that one */
        }
        nanosleep(&pause, NULL);
    }
    return -1;
}

static int connect_agent(void) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct timeval limit = {.tv_sec = 120};
    int fd;
    if (strlen(sock_path) >= sizeof(addr.sun_path))
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
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
    if (write_all(fd, kind, strlen(kind)) != 0 || write_all(fd, "\n", 1) != 0)
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
    int fd;
    char *answer;
    if (where_am_i() != 0)
        fail(11, "the calicc launcher cannot read /proc/self/exe to find its root");
    fd = connect_agent();
    if (fd < 0 && strcmp(CALICC_IDLE, "0") != 0)
        fd = connect_on_demand();
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
