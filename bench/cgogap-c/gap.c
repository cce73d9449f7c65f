/* gap.c: calls an empty Go function (bench/cgogap) from C with a pause of
 * G µs between calls, and reports the process's CPU time per call beyond
 * the pause itself: what the Go runtime costs between calls. The pause is
 * either busy (a loop on the clock, like a loaded dnsmasq that has other
 * work between lookups) or asleep (nanosleep, like a quiet dnsmasq waiting
 * in poll()). Each row compares the plain function with the one that goes
 * through cgopace (db-yield-ms=8), which yields to Go's scheduler every
 * 8 ms while calls keep coming. The same loop calling a C function is the
 * baseline, subtracted (it matters for the sleeping pause, whose syscall
 * and wake-up cost CPU of their own). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

static double now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

static double cpu(void)
{
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e9 + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) * 1e3;
}

static int noop(void)
{
  return 0;
}

/* CPU per call beyond the pause, in µs, over calls lasting about 2 s. */
static double run(int (*fn)(void), int gap_us, int sleep)
{
  int i, n = gap_us ? 2000000 / gap_us : 1000000;
  double c0, c1, pause = 0, s;
  struct timespec ts = { 0, gap_us * 1000L };

  if (n > 200000)
    n = 200000;
  c0 = cpu();
  for (i = 0; i < n; i++)
    {
      fn();
      if (!gap_us)
	continue;
      s = now();
      if (sleep)
	nanosleep(&ts, NULL);
      else
	while (now() - s < gap_us * 1000.0)
	  ;
      if (!sleep)
	pause += now() - s;
    }
  c1 = cpu();
  return (c1 - c0 - pause) / n / 1000.0;
}

int main(int argc, char **argv)
{
  static const int gaps[] = { 0, 20, 60, 200, 1000, 3000, 8000 };
  void *h = dlopen(argc > 1 ? argv[1] : "./libcgogap.so", RTLD_NOW);
  int (*plain)(void), (*paced)(void);
  unsigned g;
  int sleep;

  if (!h || !(plain = (int (*)(void))dlsym(h, "empty")) || !(paced = (int (*)(void))dlsym(h, "paced")))
    {
      fprintf(stderr, "gap: %s\n", dlerror());
      return 1;
    }
  printf("# us of CPU per call beyond what the same loop costs calling a C function\n");
  for (sleep = 0; sleep <= 1; sleep++)
    for (g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++)
      {
	double a, b, c;
	if (sleep && !gaps[g])
	  continue;
	c = run(noop, gaps[g], sleep);
	a = run(plain, gaps[g], sleep);
	b = run(paced, gaps[g], sleep);
	printf("%-6s pause %5d us: plain %6.1f  paced %6.1f\n", sleep ? "asleep" : "busy", gaps[g], a - c, b - c);
	fflush(stdout);
      }
  return 0;
}
