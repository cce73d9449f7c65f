/* gap.c: calls an empty Go function (bench/cgogap) from C with a busy
 * pause of G µs between calls and reports the process's CPU time per call
 * beyond the pause itself: the cost of the Go runtime between calls. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
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

int main(int argc, char **argv)
{
  static const int gaps[] = { 0, 5, 20, 60, 200 };
  void *h = dlopen(argc > 1 ? argv[1] : "./libcgogap.so", RTLD_NOW);
  int (*empty)(void);
  int g, i, n = 50000;

  if (!h || !(empty = (int (*)(void))dlsym(h, "empty")))
    {
      fprintf(stderr, "gap: %s\n", dlerror());
      return 1;
    }
  for (g = 0; g < 5; g++)
    {
      double c0 = cpu(), s;
      for (i = 0; i < n; i++)
	{
	  empty();
	  s = now();
	  while (now() - s < gaps[g] * 1000.0)
	    ;
	}
      printf("pause %3d us between calls: %5.1f us of CPU per call beyond the pause\n", gaps[g],
	     (cpu() - c0 - (double)n * gaps[g] * 1000.0) / n / 1000.0);
    }
  return 0;
}
