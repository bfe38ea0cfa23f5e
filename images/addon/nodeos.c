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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
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
static napi_value js_read_kmsg(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", "/dev/kmsg");
  napi_value records = NULL;
  if (napi_create_array(env, &records) != napi_ok) goto done;
  char buffer[8192];
  uint32_t count = 0;
  // The buffer holds at most a few thousand records; the bound only guards
  // against a log that grows as fast as it is read.
  for (int i = 0; i < 16384; i++) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EPIPE || errno == EINTR)) continue;  // EPIPE: overwritten while reading
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) { int err = errno; close(fd); return throw_errno(env, err, "read", "/dev/kmsg"); }
    if (n == 0) break;
    napi_value record;
    if (napi_create_string_utf8(env, buffer, (size_t)n, &record) != napi_ok ||
        napi_set_element(env, records, count++, record) != napi_ok) { records = NULL; goto done; }
  }
done:
  close(fd);
  return records;
}

static napi_value init(napi_env env, napi_value exports) {
  struct { const char *name; napi_callback fn; } functions[] = {
      {"mount", js_mount},     {"umount", js_umount},   {"reboot", js_reboot},
      {"sethostname", js_sethostname}, {"sync", js_sync}, {"waitpid", js_waitpid},
      {"setsid", js_setsid},   {"setctty", js_setctty}, {"execve", js_execve},
      {"ifup", js_ifup},       {"readKmsg", js_read_kmsg},
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
