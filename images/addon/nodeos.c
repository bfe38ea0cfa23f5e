// The system calls NodeOS's init needs and Node.js does not offer. One
// Node-API module, built with plain cc against the headers in the node wheel
// (no node-gyp). Every failing call throws an Error whose `code` is the errno
// name (e.g. "EBUSY") and whose message names the call and its argument.
#define _GNU_SOURCE
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/reboot.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define CHECK(call)                                                            \
  do {                                                                         \
    if ((call) != napi_ok) return NULL;                                        \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *call,
                              const char *arg) {
  char message[512];
  const char *name = strerrorname_np(err);
  snprintf(message, sizeof message, "%s(%s) failed: %s (%s)", call,
           arg ? arg : "", strerror(err), name ? name : "E?");
  napi_value code, msg, error;
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_value errno_value;
  napi_create_int32(env, err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_value syscall_name;
  napi_create_string_utf8(env, call, NAPI_AUTO_LENGTH, &syscall_name);
  napi_set_named_property(env, error, "syscall", syscall_name);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "EINVAL", message);
  return NULL;
}

// Copies a string argument into a caller-owned buffer; NULL when the argument
// is missing or null (callers decide whether that is allowed).
static char *string_arg(napi_env env, napi_value value) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) return NULL;
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  char *buffer = malloc(length + 1);
  if (!buffer) return NULL;
  napi_get_value_string_utf8(env, value, buffer, length + 1, &length);
  return buffer;
}

static int64_t int_arg(napi_env env, napi_value value, int64_t fallback) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return fallback;
  int64_t result;
  napi_get_value_int64(env, value, &result);
  return result;
}

// Fetches `count` arguments; missing ones read as undefined, which
// string_arg and int_arg treat as absent.
static bool get_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv) {
  size_t argc = count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  for (size_t i = argc; i < count; i++) napi_get_undefined(env, &argv[i]);
  return true;
}

#define ARGS(n)                                                                \
  napi_value argv[n];                                                          \
  if (!get_args(env, info, n, argv)) return NULL

static napi_value undefined(napi_env env) {
  napi_value result;
  napi_get_undefined(env, &result);
  return result;
}

// mount(source, target, fstype, flags, data)
static napi_value js_mount(napi_env env, napi_callback_info info) {
  ARGS(5);
  char *source = string_arg(env, argv[0]);
  char *target = string_arg(env, argv[1]);
  char *fstype = string_arg(env, argv[2]);
  unsigned long flags = (unsigned long)int_arg(env, argv[3], 0);
  char *data = string_arg(env, argv[4]);
  napi_value result = undefined(env);
  if (!target) {
    result = throw_type(env, "mount(source, target, fstype, flags[, data]): target must be a string");
  } else if (mount(source, target, fstype, flags, data) != 0) {
    result = throw_errno(env, errno, "mount", target);
  }
  free(source); free(target); free(fstype); free(data);
  return result;
}

// umount(target, flags)
static napi_value js_umount(napi_env env, napi_callback_info info) {
  ARGS(2);
  char *target = string_arg(env, argv[0]);
  if (!target) return throw_type(env, "umount(target[, flags])");
  int flags = (int)int_arg(env, argv[1], 0);
  napi_value result = undefined(env);
  if (umount2(target, flags) != 0) result = throw_errno(env, errno, "umount", target);
  free(target);
  return result;
}

// reboot("poweroff" | "restart" | "halt")
static napi_value js_reboot(napi_env env, napi_callback_info info) {
  ARGS(1);
  char *how = string_arg(env, argv[0]);
  int cmd;
  if (how && strcmp(how, "poweroff") == 0) cmd = RB_POWER_OFF;
  else if (how && strcmp(how, "restart") == 0) cmd = RB_AUTOBOOT;
  else if (how && strcmp(how, "halt") == 0) cmd = RB_HALT_SYSTEM;
  else { free(how); return throw_type(env, "reboot(\"poweroff\"|\"restart\"|\"halt\")"); }
  napi_value result = undefined(env);
  if (reboot(cmd) != 0) result = throw_errno(env, errno, "reboot", how);
  free(how);
  return result;
}

static napi_value js_sethostname(napi_env env, napi_callback_info info) {
  ARGS(1);
  char *name = string_arg(env, argv[0]);
  if (!name) return throw_type(env, "sethostname(name)");
  napi_value result = undefined(env);
  if (sethostname(name, strlen(name)) != 0) result = throw_errno(env, errno, "sethostname", name);
  free(name);
  return result;
}

static napi_value js_sync(napi_env env, napi_callback_info info) {
  (void)info;
  sync();
  return undefined(env);
}

// waitpid(pid, nohang) -> {pid, status, signal} | null when nothing to reap.
// Only called with explicit pids: waiting on -1 would steal libuv's children.
static napi_value js_waitpid(napi_env env, napi_callback_info info) {
  ARGS(2);
  pid_t pid = (pid_t)int_arg(env, argv[0], -2);
  if (pid <= 0) return throw_type(env, "waitpid(pid > 0[, nohang])");
  bool nohang = true;
  napi_valuetype nohang_type;
  if (napi_typeof(env, argv[1], &nohang_type) == napi_ok && nohang_type == napi_boolean) napi_get_value_bool(env, argv[1], &nohang);
  int status = 0;
  pid_t got = waitpid(pid, &status, nohang ? WNOHANG : 0);
  if (got < 0) {
    char arg[16];
    snprintf(arg, sizeof arg, "%d", pid);
    return throw_errno(env, errno, "waitpid", arg);
  }
  napi_value result;
  if (got == 0) { napi_get_null(env, &result); return result; }
  napi_create_object(env, &result);
  napi_value v;
  napi_create_int32(env, got, &v);
  napi_set_named_property(env, result, "pid", v);
  if (WIFEXITED(status)) napi_create_int32(env, WEXITSTATUS(status), &v); else napi_get_null(env, &v);
  napi_set_named_property(env, result, "status", v);
  if (WIFSIGNALED(status)) napi_create_int32(env, WTERMSIG(status), &v); else napi_get_null(env, &v);
  napi_set_named_property(env, result, "signal", v);
  return result;
}

static napi_value js_setsid(napi_env env, napi_callback_info info) {
  (void)info;
  pid_t sid = setsid();
  if (sid < 0) return throw_errno(env, errno, "setsid", "");
  napi_value result;
  napi_create_int32(env, sid, &result);
  return result;
}

// setctty(fd): make the tty on fd the calling session's controlling terminal.
static napi_value js_setctty(napi_env env, napi_callback_info info) {
  ARGS(1);
  int fd = (int)int_arg(env, argv[0], -1);
  if (ioctl(fd, TIOCSCTTY, 1) != 0) return throw_errno(env, errno, "ioctl(TIOCSCTTY)", "");
  return undefined(env);
}

// execve(path, argv, envPairs): replaces this process. Returns only on error.
static napi_value js_execve(napi_env env, napi_callback_info info) {
  ARGS(3);
  char *path = string_arg(env, argv[0]);
  bool arrays = false, is_env_array = false;
  napi_is_array(env, argv[1], &arrays);
  napi_is_array(env, argv[2], &is_env_array);
  if (!path || !arrays || !is_env_array) { free(path); return throw_type(env, "execve(path, argv[], env[])"); }
  char **lists[2] = {NULL, NULL};
  for (int which = 0; which < 2; which++) {
    uint32_t length = 0;
    napi_get_array_length(env, argv[1 + which], &length);
    lists[which] = calloc(length + 1, sizeof(char *));
    for (uint32_t i = 0; i < length; i++) {
      napi_value element;
      napi_get_element(env, argv[1 + which], i, &element);
      lists[which][i] = string_arg(env, element);
    }
  }
  execve(path, lists[0], lists[1]);
  int err = errno;
  napi_value result = throw_errno(env, err, "execve", path);
  for (int which = 0; which < 2; which++) {
    for (char **p = lists[which]; p && *p; p++) free(*p);
    free(lists[which]);
  }
  free(path);
  return result;
}

static int set_address(int sock, const char *ifname, unsigned long request,
                       const char *address) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
  sin->sin_family = AF_INET;
  if (inet_pton(AF_INET, address, &sin->sin_addr) != 1) { errno = EINVAL; return -1; }
  return ioctl(sock, request, &ifr);
}

// ifup(name[, address, netmask, gateway]): bring an interface up, optionally
// with a static IPv4 address and a default route.
static napi_value js_ifup(napi_env env, napi_callback_info info) {
  ARGS(4);
  char *name = string_arg(env, argv[0]);
  char *address = string_arg(env, argv[1]);
  char *netmask = string_arg(env, argv[2]);
  char *gateway = string_arg(env, argv[3]);
  napi_value result = undefined(env);
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const char *step = "socket";
  if (!name) { result = throw_type(env, "ifup(name[, address, netmask, gateway])"); goto done; }
  if (sock < 0) goto fail;
  if (address) {
    step = "ioctl(SIOCSIFADDR)";
    if (set_address(sock, name, SIOCSIFADDR, address) != 0) goto fail;
    step = "ioctl(SIOCSIFNETMASK)";
    if (netmask && set_address(sock, name, SIOCSIFNETMASK, netmask) != 0) goto fail;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  step = "ioctl(SIOCGIFFLAGS)";
  if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) goto fail;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  step = "ioctl(SIOCSIFFLAGS)";
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) goto fail;
  if (gateway) {
    struct rtentry route;
    memset(&route, 0, sizeof route);
    struct sockaddr_in *gw = (struct sockaddr_in *)&route.rt_gateway;
    gw->sin_family = AF_INET;
    step = "inet_pton(gateway)";
    if (inet_pton(AF_INET, gateway, &gw->sin_addr) != 1) { errno = EINVAL; goto fail; }
    ((struct sockaddr_in *)&route.rt_dst)->sin_family = AF_INET;
    ((struct sockaddr_in *)&route.rt_genmask)->sin_family = AF_INET;
    route.rt_flags = RTF_UP | RTF_GATEWAY;
    route.rt_dev = name;
    step = "ioctl(SIOCADDRT)";
    if (ioctl(sock, SIOCADDRT, &route) != 0 && errno != EEXIST) goto fail;
  }
  goto done;
fail:
  result = throw_errno(env, errno, step, name);
done:
  if (sock >= 0) close(sock);
  free(name); free(address); free(netmask); free(gateway);
  return result;
}

// Every record in the kernel's log buffer, oldest first, as /dev/kmsg gives
// them ("6,312,301220,-;text"). One call instead of one fs.readSync per
// record: init reads ~200 records at boot, and each trip through readSync's
// JavaScript cost ~0.15 ms under TCG (readKmsg 50-100 ms -> see init.js).
//
// readKmsg() opens /dev/kmsg for the call; readKmsg(fd) reads what an open
// descriptor has not read yet and leaves it open and blocking as it was, so
// a reader can take the backlog in one call and then wait for new records.
static napi_value js_read_kmsg(napi_env env, napi_callback_info info) {
  ARGS(1);
  int given = (int)int_arg(env, argv[0], -1);
  int fd = given;
  int saved_flags = -1;
  if (given < 0) {
    fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return throw_errno(env, errno, "open", "/dev/kmsg");
  } else {
    saved_flags = fcntl(fd, F_GETFL);
    if (saved_flags < 0 || fcntl(fd, F_SETFL, saved_flags | O_NONBLOCK) != 0) return throw_errno(env, errno, "fcntl", "/dev/kmsg");
  }
  napi_value records = NULL;
  int err = 0;
  if (napi_create_array(env, &records) != napi_ok) { records = NULL; goto done; }
  char buffer[8192];
  uint32_t count = 0;
  // The buffer holds at most a few thousand records; the bound only guards
  // against a log that grows as fast as it is read.
  for (int i = 0; i < 16384; i++) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EPIPE || errno == EINTR)) continue;  // EPIPE: overwritten while reading
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) { err = errno; break; }
    if (n == 0) break;
    napi_value record;
    if (napi_create_string_utf8(env, buffer, (size_t)n, &record) != napi_ok ||
        napi_set_element(env, records, count++, record) != napi_ok) { records = NULL; goto done; }
  }
done:
  if (given < 0) close(fd);
  else fcntl(fd, F_SETFL, saved_flags);
  if (err) return throw_errno(env, err, "read", "/dev/kmsg");
  return records;
}

// --- SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) -------------------------
// init seals its console lines with an HMAC (images/PROTOCOL.md). Loading
// node's crypto module costs tens of milliseconds under TCG on the boot path;
// these ~80 lines cost nothing until called.

typedef struct {
  uint32_t h[8];
  uint64_t bytes;
  uint8_t block[64];
  size_t used;
} sha256_ctx;

static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = k + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[i] + w[i];
    uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

static void sha256_init(sha256_ctx *ctx) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(ctx->h, iv, sizeof iv);
  ctx->bytes = 0;
  ctx->used = 0;
}

static void sha256_update(sha256_ctx *ctx, const uint8_t *data, size_t n) {
  ctx->bytes += n;
  while (n > 0) {
    size_t take = 64 - ctx->used < n ? 64 - ctx->used : n;
    memcpy(ctx->block + ctx->used, data, take);
    ctx->used += take; data += take; n -= take;
    if (ctx->used == 64) { sha256_block(ctx->h, ctx->block); ctx->used = 0; }
  }
}

static void sha256_final(sha256_ctx *ctx, uint8_t out[32]) {
  uint64_t bits = ctx->bytes * 8;
  static const uint8_t pad[64] = {0x80};
  sha256_update(ctx, pad, ctx->used < 56 ? 56 - ctx->used : 120 - ctx->used);
  uint8_t length[8];
  for (int i = 0; i < 8; i++) length[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha256_update(ctx, length, 8);
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(ctx->h[i] >> (24 - 8 * j));
}

static void hmac_sha256(const uint8_t *key, size_t key_length, const uint8_t *data, size_t length, uint8_t out[32]) {
  uint8_t k[64] = {0}, pad[64];
  sha256_ctx ctx;
  if (key_length > 64) {  // RFC 2104: a key longer than a block is hashed first
    sha256_init(&ctx); sha256_update(&ctx, key, key_length); sha256_final(&ctx, k);
  } else {
    memcpy(k, key, key_length);
  }
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
  sha256_init(&ctx); sha256_update(&ctx, pad, 64); sha256_update(&ctx, data, length); sha256_final(&ctx, out);
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
  sha256_init(&ctx); sha256_update(&ctx, pad, 64); sha256_update(&ctx, out, 32); sha256_final(&ctx, out);
}

// The bytes of a Buffer (borrowed) or of a string in UTF-8 (malloc'ed into
// *owned); false when the value is neither.
static bool bytes_arg(napi_env env, napi_value value, const uint8_t **data, size_t *length, char **owned) {
  bool is_buffer = false;
  *owned = NULL;
  if (napi_is_buffer(env, value, &is_buffer) == napi_ok && is_buffer) {
    void *p;
    if (napi_get_buffer_info(env, value, &p, length) != napi_ok) return false;
    *data = p;
    return true;
  }
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) return false;
  if (napi_get_value_string_utf8(env, value, NULL, 0, length) != napi_ok) return false;
  *owned = malloc(*length + 1);
  if (!*owned) return false;
  napi_get_value_string_utf8(env, value, *owned, *length + 1, length);
  *data = (const uint8_t *)*owned;
  return true;
}

static napi_value hex_string(napi_env env, const uint8_t *bytes, size_t n) {
  char hex[2 * 64 + 1];
  for (size_t i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  napi_value result;
  napi_create_string_utf8(env, hex, 2 * n, &result);
  return result;
}

// sha256Hex(data) -> 64 lowercase hex digits; data is a Buffer or a string (UTF-8).
static napi_value js_sha256_hex(napi_env env, napi_callback_info info) {
  ARGS(1);
  const uint8_t *data; size_t length; char *owned;
  if (!bytes_arg(env, argv[0], &data, &length, &owned)) return throw_type(env, "sha256Hex(Buffer|string)");
  sha256_ctx ctx;
  uint8_t digest[32];
  sha256_init(&ctx); sha256_update(&ctx, data, length); sha256_final(&ctx, digest);
  free(owned);
  return hex_string(env, digest, 32);
}

// hmacSha256Hex(key, data) -> 64 lowercase hex digits; each a Buffer or a string (UTF-8).
static napi_value js_hmac_sha256_hex(napi_env env, napi_callback_info info) {
  ARGS(2);
  const uint8_t *key, *data; size_t key_length, length; char *owned_key, *owned_data = NULL;
  if (!bytes_arg(env, argv[0], &key, &key_length, &owned_key)) return throw_type(env, "hmacSha256Hex(key: Buffer|string, data: Buffer|string)");
  if (!bytes_arg(env, argv[1], &data, &length, &owned_data)) { free(owned_key); return throw_type(env, "hmacSha256Hex(key: Buffer|string, data: Buffer|string)"); }
  uint8_t mac[32];
  hmac_sha256(key, key_length, data, length, mac);
  free(owned_key); free(owned_data);
  return hex_string(env, mac, 32);
}

// --- opening files as a user ---------------------------------------------------

// Opens an absolute path one component at a time, never through a symbolic
// link: each directory with O_PATH (search permission is all a walk needs)
// and O_NOFOLLOW, the last component with O_NOFOLLOW. Only regular files
// open: a FIFO would block init until a writer came, and the last open is
// O_NONBLOCK for that reason. Returns the fd, or -1 with errno set;
// *not_regular tells a file of another type from an errno of open's own.
static int open_without_symlinks(const char *path, int flags, mode_t mode, bool *not_regular) {
  *not_regular = false;
  char *copy = strdup(path);
  if (!copy) return -1;
  int dir = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  int fd = -1, err = 0;
  if (dir < 0) { err = errno; goto done; }
  char *rest = copy, *name = NULL;
  for (;;) {
    char *part = strsep(&rest, "/");
    if (part == NULL) break;
    if (*part == '\0' || strcmp(part, ".") == 0) continue;
    if (name) {
      int next = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next < 0) {
        err = errno;
        struct stat st;
        // O_DIRECTORY meets a symbolic link as "not a directory": say what it was.
        if (err == ENOTDIR && fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) err = ELOOP;
        goto done;
      }
      close(dir);
      dir = next;
    }
    name = part;
  }
  if (!name) { err = EISDIR; goto done; }  // the path is "/"
  fd = openat(dir, name, flags | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, mode);
  if (fd < 0) { err = errno; goto done; }
  struct stat st;
  int status;
  if (fstat(fd, &st) != 0) err = errno;
  else if (S_ISDIR(st.st_mode)) err = EISDIR;
  else if (!S_ISREG(st.st_mode)) { err = EINVAL; *not_regular = true; }
  else if ((status = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, status & ~O_NONBLOCK) != 0) err = errno;
  if (err) { close(fd); fd = -1; }
done:
  if (dir >= 0) close(dir);
  free(copy);
  errno = err;
  return fd;
}

// openAs(path, flags, mode, uid, gid) -> fd of a regular file, opened with
// the file-system ids uid/gid (setfsuid/setfsgid: Linux keeps them per thread,
// so libuv's threads stay root) and without following any symbolic link.
// The ids in force before are restored before it returns, error or not.
static napi_value js_open_as(napi_env env, napi_callback_info info) {
  ARGS(5);
  char *path = string_arg(env, argv[0]);
  int64_t flags = int_arg(env, argv[1], -1), mode = int_arg(env, argv[2], 0);
  int64_t uid = int_arg(env, argv[3], -1), gid = int_arg(env, argv[4], -1);
  if (!path || path[0] != '/' || flags < 0 || flags > INT32_MAX || mode < 0 || mode > 07777 ||
      uid < 0 || uid >= UINT32_MAX || gid < 0 || gid >= UINT32_MAX) {
    free(path);
    return throw_type(env, "openAs(absolute path, flags, mode, uid, gid)");
  }
  int old_gid = setfsgid((gid_t)gid);
  int old_uid = setfsuid((uid_t)uid);
  int fd = -1, err;
  bool not_regular = false;
  // setfsuid reports no error; called with an invalid id it returns the one in force.
  if ((int64_t)setfsuid((uid_t)-1) != uid || (int64_t)setfsgid((gid_t)-1) != gid) {
    err = EPERM;
  } else {
    fd = open_without_symlinks(path, (int)flags, (mode_t)mode, &not_regular);
    err = errno;
  }
  setfsuid((uid_t)old_uid);
  setfsgid((gid_t)old_gid);
  napi_value result = NULL;
  if (fd >= 0) {
    napi_create_int32(env, fd, &result);
  } else if (not_regular) {
    char message[512];
    snprintf(message, sizeof message, "openAs(%s) failed: not a regular file (EINVAL)", path);
    napi_throw_error(env, "EINVAL", message);
  } else {
    throw_errno(env, err, "openAs", path);
  }
  free(path);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  struct { const char *name; napi_callback fn; } functions[] = {
      {"mount", js_mount},     {"umount", js_umount},   {"reboot", js_reboot},
      {"sethostname", js_sethostname}, {"sync", js_sync}, {"waitpid", js_waitpid},
      {"setsid", js_setsid},   {"setctty", js_setctty}, {"execve", js_execve},
      {"ifup", js_ifup},       {"readKmsg", js_read_kmsg}, {"sha256Hex", js_sha256_hex},
      {"hmacSha256Hex", js_hmac_sha256_hex}, {"openAs", js_open_as},
  };
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    CHECK(napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn));
    CHECK(napi_set_named_property(env, exports, functions[i].name, fn));
  }
  // Mount flags, so JavaScript need not hard-code numbers.
  struct { const char *name; int64_t value; } constants[] = {
      {"MS_RDONLY", MS_RDONLY}, {"MS_NOSUID", MS_NOSUID}, {"MS_NODEV", MS_NODEV},
      {"MS_NOEXEC", MS_NOEXEC}, {"MS_REMOUNT", MS_REMOUNT}, {"MS_BIND", MS_BIND},
      {"MS_NOATIME", MS_NOATIME}, {"MS_RELATIME", MS_RELATIME}, {"MNT_DETACH", MNT_DETACH},
      {"MNT_FORCE", MNT_FORCE},
  };
  for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
    napi_value v;
    CHECK(napi_create_int64(env, constants[i].value, &v));
    CHECK(napi_set_named_property(env, exports, constants[i].name, v));
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
