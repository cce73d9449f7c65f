/* Bench-only experiment (bench/RESULTS.md, "Calling Go against looking
   up"): an LD_PRELOAD shim that, when dnsmasq dlopen()s libblockcache,
   copies the 2 MB-aligned part of its text into anonymous memory backed
   by transparent huge pages and moves it over the original, to see
   whether iTLB misses are the cost of calling Go. It did not pay, and is
   kept only to repeat the measurement:
     cc -O2 -shared -fPIC -o /tmp/hugetext.so bench/hugetext/hugetext.c -ldl
     go build -buildmode=c-shared -ldflags='-extldflags=-Wl,-z,max-page-size=0x200000,-z,common-page-size=0x200000' \
       -o build/libblockcache.so ./libblockcache/capi    # text 2 MB-aligned
     MODE=cpu QPS=16000 ROUNDS=7 ORDER="stock patched patched-env-LD_PRELOAD=/tmp/hugetext.so" bench/forward-qps.sh 1000000 6
   (then `make lib` again). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE (2UL << 20)

static void hugify(const char *file)
{
  FILE *m = fopen("/proc/self/maps", "r");
  char line[512], perms[8], path[400];
  unsigned long s, e, off;
  const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
  if (!m)
    return;
  while (fgets(line, sizeof line, m))
    {
      path[0] = 0;
      if (sscanf(line, "%lx-%lx %7s %lx %*s %*s %399s", &s, &e, perms, &off, path) < 4)
	continue;
      if (strcmp(perms, "r-xp") || !strstr(path, base))
	continue;
      unsigned long hs = (s + HUGE - 1) & ~(HUGE - 1), he = e & ~(HUGE - 1);
      fprintf(stderr, "hugetext: %s text %lx-%lx (%lu KiB), huge part %lx-%lx (%lu KiB)\n", base, s, e, (e - s) >> 10, hs, he, he > hs ? (he - hs) >> 10 : 0);
      if (he <= hs)
	break;
      size_t len = he - hs;
      char *tmp = mmap(NULL, len + HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (tmp == MAP_FAILED)
	break;
      char *a = (char *)(((uintptr_t)tmp + HUGE - 1) & ~(HUGE - 1));
      if (madvise(a, len, MADV_HUGEPAGE))
	perror("hugetext: madvise");
      memcpy(a, (void *)hs, len);
      if (mprotect(a, len, PROT_READ | PROT_EXEC))
	perror("hugetext: mprotect");
      if (mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)hs) == MAP_FAILED)
	perror("hugetext: mremap");
      break;
    }
  fclose(m);
}

void *dlopen(const char *file, int mode)
{
  static void *(*real)(const char *, int);
  void *h;
  if (!real)
    real = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
  h = real(file, mode);
  if (h && file && strstr(file, "libblockcache"))
    hugify(file);
  return h;
}
