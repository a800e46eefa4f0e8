/*
 * cfnet-cni, compiled: cfnet's CNI plugin entry point (docs/cni.md, "How a call runs").
 *
 * The same contract as the POSIX sh shim bin/cfnet-cni, without its three process starts (sh, cat,
 * nc): read stdin once, hand the invocation (CNI_* environment + stdin) to the warm CNI executor on
 * its unix socket, relay the answer as stdout and exit status. Only when the executor cannot be
 * reached (socket missing, connection refused: nothing was sent) does it exec the same library in
 * a one-off Node process, feeding it the stdin it read, so ADD never depends on a daemon being up.
 *
 * Protocol: POST /v1/cni, body = stdin, every non-empty CNI_* variable as a URL query parameter
 * (percent-encoded, so any value travels, control characters included: no second transport is
 * needed), X-CNI-Caller-Pid = this process (the executor compares its network namespace with
 * ours). 200 = stdout + exit 0; any other status with a body = that body + exit 1; an answer
 * without a body, a cut or missing answer = CNI error code 11 ("try again": the executor may have
 * done part of the work, so the fallback never runs after a request went out).
 *
 * Environment (all optional), as the sh shim's:
 *   CFNET_CNI_SOCKET    executor socket; default: the config's "executor_socket", else
 *                       /var/vcap/data/cfnet/cni.sock
 *   CFNET_HOME          install dir (dist/, node_modules/); default: the parent of this binary's
 *                       directory (/proc/self/exe: symlinks resolved)
 *   CFNET_NODE          node for the fallback; default: $CFNET_HOME/node/bin/node, else node on PATH
 *   CFNET_CNI_FALLBACK  fallback script; default: $CFNET_HOME/dist/cni/fallback.js
 *   CFNET_CNI_TIMEOUT   seconds to wait for the executor's answer (default 300)
 *   CFNET_CNI_ENV       a file of NAME='value' lines applied to the environment first (the BOSH
 *                       cni job's config/shim.env); the BOSH package compiles its path in as the
 *                       default (-DCFNET_ENV_FILE=...)
 * CFNET_CNI_TRANSPORT, CFNET_CURL and CFNET_NC are the sh shim's and mean nothing here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ABOUT                                                                                      \
  "CNI cfnet-cni plugin (cfnet; docs/cni.md)\n"                                                   \
  "CNI protocol versions supported: 0.3.1, 0.4.0, 1.0.0, 1.1.0\n"
#define DEFAULT_SOCKET "/var/vcap/data/cfnet/cni.sock"

static const char *const CNI_VARS[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS",
                                       "CNI_IFNAME",  "CNI_ARGS",        "CNI_PATH"};

/* A growable byte buffer; allocation failure ends the process (code 11 below). */
struct buf {
  char *p;
  size_t len, cap;
};

static void cni_error(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

static void buf_add(struct buf *b, const void *data, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (b->len + n + 1 > cap) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) cni_error(11, "cfnet-cni: out of memory");
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The CNI error JSON on stdout, exit 1; the message loses quotes, backslashes and control
 * characters (as the sh shim's `tr`), so it is always valid JSON. */
static void cni_error(int code, const char *fmt, ...) {
  char msg[2048], clean[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t j = 0;
  for (size_t i = 0; msg[i] && j + 1 < sizeof clean; i++) {
    unsigned char c = (unsigned char)msg[i];
    if (c == '"' || c == '\\' || c < 0x20) continue;
    clean[j++] = (char)c;
  }
  clean[j] = '\0';
  char out[2200];
  int n = snprintf(out, sizeof out, "{\"cniVersion\":\"1.0.0\",\"code\":%d,\"msg\":\"%s\"}\n", code, clean);
  if (n > 0) write_all(1, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1);
  exit(1);
}

static const char *env_or(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return v && *v ? v : dflt;
}

/* The BOSH job's shim.env: `NAME='value'` or `NAME=value` lines (comments, `export` lines and
 * anything else skipped). Values overwrite the environment, as the sh shim's `. shim.env` does. */
static void apply_env_file(void) {
#ifdef CFNET_ENV_FILE
  const char *path = env_or("CFNET_CNI_ENV", CFNET_ENV_FILE);
#else
  const char *path = env_or("CFNET_CNI_ENV", NULL);
#endif
  if (!path) return;
  FILE *f = fopen(path, "re");
  if (!f) return;
  char line[8192];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *eq = strchr(line, '=');
    if (!eq || eq == line) continue;
    int name_ok = 1;
    for (char *c = line; c < eq; c++) {
      if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || *c == '_' ||
            (c > line && *c >= '0' && *c <= '9')))
        name_ok = 0;
    }
    if (!name_ok) continue;
    *eq = '\0';
    char *v = eq + 1;
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '\'' && v[n - 1] == '\'') {
      v[n - 1] = '\0';
      v++;
    }
    if (strchr(v, '\'')) continue; /* not a value this format can hold */
    setenv(line, v, 1);
  }
  fclose(f);
}

static void read_stdin(struct buf *in) {
  char chunk[65536];
  for (;;) {
    ssize_t r = read(0, chunk, sizeof chunk);
    if (r < 0) {
      if (errno == EINTR) continue;
      cni_error(11, "cfnet-cni: reading stdin: %s", strerror(errno));
    }
    if (r == 0) break;
    buf_add(in, chunk, (size_t)r);
  }
  if (!in->p) buf_add(in, "", 0);
}

/* The socket: CFNET_CNI_SOCKET, else the config's "executor_socket" (the same textual lookup as the
 * sh shim: the first string after the key), else the default; a relative path is no path. */
static char *socket_path(const struct buf *in) {
  const char *s = getenv("CFNET_CNI_SOCKET");
  if (s && *s) return strdup(s);
  const char *key = memmem(in->p, in->len, "\"executor_socket\"", 17);
  if (key) {
    const char *end = in->p + in->len;
    const char *q = memchr(key + 17, '"', (size_t)(end - (key + 17)));
    if (q) {
      const char *q2 = memchr(q + 1, '"', (size_t)(end - (q + 1)));
      if (q2 && q[1] == '/') return strndup(q + 1, (size_t)(q2 - q - 1));
    }
  }
  return strdup(DEFAULT_SOCKET);
}

static void url_encode(struct buf *b, const char *v) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
    if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
        *c == '_' || *c == '.' || *c == '~') {
      buf_add(b, c, 1);
    } else {
      char e[3] = {'%', hex[*c >> 4], hex[*c & 15]};
      buf_add(b, e, 3);
    }
  }
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Returns the connected socket, or -1 when the executor is not reachable (nothing was sent). */
static int connect_executor(const char *sock) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(sock) >= sizeof addr.sun_path)
    cni_error(11, "cfnet-cni: executor socket path too long: %s", sock);
  strcpy(addr.sun_path, sock);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) cni_error(11, "cfnet-cni: socket(): %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) return fd;
  int e = errno;
  close(fd);
  if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR) return -1;
  cni_error(11, "cfnet-cni: the executor at %s did not answer: connect: %s", sock, strerror(e));
}

/* One request, the whole answer back (until the executor closes: it answers Connection: close). */
static void exchange(int fd, const char *sock, const struct buf *in, struct buf *resp) {
  struct buf req = {0};
  buf_str(&req, "POST /v1/cni");
  char sep = '?';
  for (size_t i = 0; i < sizeof CNI_VARS / sizeof *CNI_VARS; i++) {
    const char *v = getenv(CNI_VARS[i]);
    if (!v || !*v) continue;
    buf_add(&req, &sep, 1);
    buf_str(&req, CNI_VARS[i]);
    buf_str(&req, "=");
    url_encode(&req, v);
    sep = '&';
  }
  char head[256];
  snprintf(head, sizeof head,
           " HTTP/1.1\r\nHost: cfnet\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
           "Connection: close\r\nX-CNI-Caller-Pid: %ld\r\n\r\n",
           in->len, (long)getpid());
  buf_str(&req, head);
  buf_add(&req, in->p, in->len);

  long timeout_s = strtol(env_or("CFNET_CNI_TIMEOUT", "300"), NULL, 10);
  if (timeout_s <= 0) timeout_s = 300;
  double deadline = now_ms() + (double)timeout_s * 1000.0;
  /* the executor may answer (and close) before reading all of a large body: a failed write is not
   * yet an error, the answer decides */
  int write_failed = write_all(fd, req.p, req.len) != 0;
  /* no shutdown(SHUT_WR): Node's HTTP server takes a half-close as the client going away and would
   * drop the answer */
  free(req.p);
  char chunk[65536];
  for (;;) {
    double left = deadline - now_ms();
    if (left <= 0) cni_error(11, "cfnet-cni: the executor at %s did not answer within %lds", sock, timeout_s);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int pr = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left + 1);
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) cni_error(11, "cfnet-cni: the executor at %s did not answer: poll: %s", sock, strerror(errno));
    if (pr == 0) continue;
    ssize_t r = read(fd, chunk, sizeof chunk);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      if (resp->len == 0)
        cni_error(11, "cfnet-cni: the executor at %s did not answer: %s", sock, strerror(errno));
      break;
    }
    if (r == 0) break;
    buf_add(resp, chunk, (size_t)r);
  }
  if (resp->len == 0)
    cni_error(11, "cfnet-cni: the executor at %s did not answer%s", sock,
              write_failed ? " (it closed the connection while the request was sent)" : "");
}

/* Decodes a chunked body in place (the executor sends Content-Length; an HTTP server in front of
 * it, or a stand-in, may not). 0 when complete up to the last chunk. */
static int dechunk(char *body, size_t *len) {
  char *in = body, *end = body + *len, *out = body;
  for (;;) {
    char *eol = memmem(in, (size_t)(end - in), "\r\n", 2);
    if (!eol) return -1;
    char *after;
    unsigned long n = strtoul(in, &after, 16);
    if (after == in) return -1;
    in = eol + 2;
    if (n == 0) break;
    if ((size_t)(end - in) < n + 2) return -1;
    memmove(out, in, n);
    out += n;
    in += n + 2;
  }
  *len = (size_t)(out - body);
  return 0;
}

/* Relays the executor's answer: 200 → body, exit 0; another status with a body → body, exit 1. */
static void relay(const char *sock, struct buf *resp) {
  int status = 0;
  if (resp->len < 12 || strncmp(resp->p, "HTTP/1.", 7) != 0 || sscanf(resp->p + 9, "%3d", &status) != 1)
    cni_error(11, "cfnet-cni: the executor at %s did not answer: %.200s", sock, resp->p);
  char *sep = memmem(resp->p, resp->len, "\r\n\r\n", 4);
  if (!sep) cni_error(11, "cfnet-cni: the executor at %s did not answer (no end of headers)", sock);
  char *body = sep + 4;
  size_t body_len = resp->len - (size_t)(body - resp->p);
  /* a body shorter than announced: the executor died while answering */
  *sep = '\0';
  for (char *h = strstr(resp->p, "\r\n"); h; h = strstr(h + 2, "\r\n")) {
    if (strncasecmp(h + 2, "transfer-encoding:", 18) == 0 && strcasestr(h + 20, "chunked")) {
      if (dechunk(body, &body_len) != 0)
        cni_error(11, "cfnet-cni: the executor at %s did not answer (a cut chunked body)", sock);
    }
    if (strncasecmp(h + 2, "content-length:", 15) == 0) {
      unsigned long want = strtoul(h + 17, NULL, 10);
      if (body_len < want)
        cni_error(11, "cfnet-cni: the executor at %s did not answer (cut after %zu of %lu bytes)", sock,
                  body_len, want);
      if (body_len > want) body_len = want;
    }
  }
  if (status == 200) {
    if (write_all(1, body, body_len) != 0) exit(1);
    exit(0);
  }
  if (body_len > 0) {
    write_all(1, body, body_len);
    exit(1);
  }
  char *eol = strstr(resp->p, "\r\n");
  if (eol) *eol = '\0';
  cni_error(11, "cfnet-cni: the executor at %s failed without an answer (%s)", sock, resp->p);
}

static int is_exec(const char *p) { return p && *p && access(p, X_OK) == 0; }

static char *node_on_path(void) {
  const char *path = getenv("PATH");
  if (!path) return NULL;
  char *copy = strdup(path), *save = NULL, *found = NULL;
  for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    char cand[PATH_MAX];
    snprintf(cand, sizeof cand, "%s/node", *d ? d : ".");
    if (is_exec(cand)) {
      found = strdup(cand);
      break;
    }
  }
  free(copy);
  return found;
}

/* The input as stdin of the process this one becomes: a memory file (any size, no writer needed),
 * else a pipe when it fits the pipe's buffer. */
static void stdin_from(const struct buf *in) {
  int fd = memfd_create("cfnet-cni-stdin", 0);
  if (fd >= 0) {
    if (write_all(fd, in->p, in->len) == 0 && lseek(fd, 0, SEEK_SET) == 0 && dup2(fd, 0) == 0) {
      close(fd);
      return;
    }
    close(fd);
  }
  int p[2];
  if (in->len <= 65536 && pipe(p) == 0) {
    if (write_all(p[1], in->p, in->len) == 0 && dup2(p[0], 0) == 0) {
      close(p[0]);
      close(p[1]);
      return;
    }
  }
  cni_error(11, "cfnet-cni: cannot pass stdin to the fallback: %s", strerror(errno));
}

/* The same library in a one-off Node process; this process becomes it. */
static void fallback(const char *sock, const struct buf *in) {
  char home[PATH_MAX];
  const char *h = getenv("CFNET_HOME");
  if (h && *h) {
    snprintf(home, sizeof home, "%s", h);
  } else {
    ssize_t n = readlink("/proc/self/exe", home, sizeof home - 1);
    home[n > 0 ? n : 0] = '\0';
    for (int up = 0; up < 2; up++) {
      char *slash = strrchr(home, '/');
      if (slash) *slash = '\0';
    }
  }
  char node_default[PATH_MAX + 16];
  snprintf(node_default, sizeof node_default, "%s/node/bin/node", home);
  const char *node = getenv("CFNET_NODE");
  if (!node || !*node) node = is_exec(node_default) ? node_default : node_on_path();
  if (!is_exec(node))
    cni_error(11, "cfnet-cni: no executor at %s and no node to run the fallback (set CFNET_NODE)", sock);
  char script_default[PATH_MAX + 32];
  snprintf(script_default, sizeof script_default, "%s/dist/cni/fallback.js", home);
  const char *script = env_or("CFNET_CNI_FALLBACK", script_default);
  if (access(script, F_OK) != 0)
    cni_error(11,
              "cfnet-cni: no executor at %s and no fallback script %s (set CFNET_HOME or CFNET_CNI_FALLBACK)",
              sock, script);
  stdin_from(in);
  char *argv[] = {(char *)node, (char *)script, NULL};
  execv(node, argv);
  cni_error(11, "cfnet-cni: cannot run the fallback %s %s: %s", node, script, strerror(errno));
}

int main(void) {
  apply_env_file();
  const char *command = getenv("CNI_COMMAND");
  /* As the reference plugins (skel): started by hand, print what it is and never wait on stdin.
   * The text is aboutText() in src/cni/version.ts (a test keeps them equal). */
  if (!command || !*command) {
    write_all(2, ABOUT, sizeof ABOUT - 1);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  struct buf in = {0};
  /* VERSION depends on CNI_COMMAND alone: its stdin is read only to find executor_socket, and never
   * from a terminal */
  if (strcmp(command, "VERSION") == 0 && isatty(0))
    buf_add(&in, "", 0);
  else
    read_stdin(&in);
  char *sock = socket_path(&in);
  int fd = connect_executor(sock);
  if (fd >= 0) {
    struct buf resp = {0};
    exchange(fd, sock, &in, &resp);
    relay(sock, &resp);
  }
  signal(SIGPIPE, SIG_DFL);
  fallback(sock, &in);
  return 1;
}
