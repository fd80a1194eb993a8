/* repx offline toolchain: the launcher put in place of every dynamic ELF program of a
 * relocated Debian tree (see docs/offline.md, "Relocated Debian trees").
 *
 * A tree enters the Nix store as a fixed-output path, so nothing in it may name its own
 * store path: the programs keep Debian's PT_INTERP (/lib64/ld-linux-x86-64.so.2, absent in
 * the Nix sandbox and under bwrap) and find their libraries through $ORIGIN RPATHs. This
 * launcher, at DIR/NAME, runs the real program DIR/.NAME-real with the tree's own dynamic
 * loader, found through the relative link DIR/.repx-ld.so:
 *
 *     DIR/.repx-ld.so --argv0 ARGV0 --inhibit-cache DIR/.NAME-real ARGS...
 *
 * It is linked statically without libc (no PT_INTERP, a few KB) so it starts anywhere. Its
 * own location comes from /proc/self/exe (symlinks resolved), or from AT_EXECFN when /proc is
 * not mounted. argv[0] is passed on unchanged: Python and gcc locate their prefix from it.
 *
 * Packages link to a tree's launchers. A copy that dereferenced those links (`cp -rL`,
 * `rsync -rL`, a file system without symlinks) holds a plain copy of the launcher, with no
 * loader beside it: then DIR/.NAME.repx-origin, a one-line file the package writes beside
 * each link, names the launcher in the tree (an absolute store path) and is used instead.
 */
typedef unsigned long size_t;
typedef long ssize_t;

#define SYS_write 1
#define SYS_execve 59
#define SYS_exit 60
#define SYS_readlink 89
#define SYS_read 0
#define SYS_open 2
#define SYS_close 3
#define SYS_access 21
#define AT_EXECFN 31
#define PATH_MAX 4096

static long syscall3(long n, long a, long b, long c) {
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return ret;
}

static size_t len(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

static void say(const char *s) { syscall3(SYS_write, 2, (long)s, (long)len(s)); }

static void die(const char *what, const char *path) {
  say("repx launcher: ");
  say(what);
  say(path);
  say("\n");
  syscall3(SYS_exit, 127, 0, 0);
  for (;;) {
  }
}

/* dst = a + b (PATH_MAX bytes) */
static void join(char *dst, const char *a, size_t alen, const char *b) {
  size_t bl = len(b), i;
  if (alen + bl + 1 > PATH_MAX) die("path too long: ", a);
  for (i = 0; i < alen; i++) dst[i] = a[i];
  for (i = 0; i <= bl; i++) dst[alen + i] = b[i];
}

/* Follow symlinks of the last component of `path` (in place). */
static void resolve(char *path) {
  char target[PATH_MAX], tmp[PATH_MAX];
  int hops;
  for (hops = 0; hops < 40; hops++) {
    ssize_t n = syscall3(SYS_readlink, (long)path, (long)target, PATH_MAX - 1);
    size_t dirlen;
    if (n < 0) return; /* not a symlink (or unreadable): use as is */
    target[n] = 0;
    if (target[0] == '/') {
      join(tmp, "", 0, target);
    } else {
      dirlen = len(path);
      while (dirlen > 0 && path[dirlen - 1] != '/') dirlen--;
      join(tmp, path, dirlen, target);
    }
    join(path, "", 0, tmp);
  }
}

__attribute__((used)) void repx_main(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  char **envp = argv + argc + 1;
  char **e = envp;
  long *aux;
  char self[PATH_MAX], real[PATH_MAX], ldso[PATH_MAX];
  const char *execfn = 0;
  ssize_t n;
  size_t dirlen, i;
  char *args[argc + 6];
  long k = 0;

  while (*e) e++;
  for (aux = (long *)(e + 1); aux[0] != 0; aux += 2)
    if (aux[0] == AT_EXECFN) execfn = (const char *)aux[1];

  n = syscall3(SYS_readlink, (long)"/proc/self/exe", (long)self, PATH_MAX - 1);
  if (n > 0) {
    self[n] = 0;
  } else {
    if (!execfn) die("cannot find myself (no /proc and no AT_EXECFN)", "");
    join(self, "", 0, execfn);
    resolve(self);
  }
  dirlen = len(self);
  while (dirlen > 0 && self[dirlen - 1] != '/') dirlen--;
  join(ldso, self, dirlen, ".repx-ld.so");
  if (syscall3(SYS_access, (long)ldso, 0, 0) != 0) {
    /* a dereferenced copy: DIR/.NAME.repx-origin names the launcher in the tree */
    char origin[PATH_MAX];
    long fd;
    join(origin, self, dirlen, ".");
    join(origin, origin, len(origin), self + dirlen);
    join(origin, origin, len(origin), ".repx-origin");
    fd = syscall3(SYS_open, (long)origin, 0, 0);
    if (fd < 0) die("no loader beside me and no ", origin);
    n = syscall3(SYS_read, fd, (long)self, PATH_MAX - 1);
    syscall3(SYS_close, fd, 0, 0);
    if (n <= 0) die("cannot read ", origin);
    while (n > 0 && (self[n - 1] == '\n' || self[n - 1] == ' ')) n--;
    self[n] = 0;
    dirlen = len(self);
    while (dirlen > 0 && self[dirlen - 1] != '/') dirlen--;
  }
  /* real = DIR/.NAME-real */
  join(real, self, dirlen, ".");
  join(real, real, len(real), self + dirlen);
  join(real, real, len(real), "-real");
  join(ldso, self, dirlen, ".repx-ld.so");

  args[k++] = ldso;
  args[k++] = "--argv0";
  args[k++] = argc > 0 ? argv[0] : self;
  args[k++] = "--inhibit-cache";
  args[k++] = real;
  for (i = 1; i < (size_t)argc; i++) args[k++] = argv[i];
  args[k] = 0;
  n = syscall3(SYS_execve, (long)ldso, (long)args, (long)envp);
  die("cannot execute ", ldso);
}

__asm__(
    ".text\n"
    ".global _start\n"
    "_start:\n"
    "  xor %rbp, %rbp\n"
    "  mov %rsp, %rdi\n"
    "  and $-16, %rsp\n"
    "  call repx_main\n"
    "  hlt\n");
