/* harness.c: drives libblockcache.so through include/blockcache.h exactly
 * as dnsmasq does (dlopen, set options, db_init, one call per query) with a
 * Zipf-distributed stream of names, and reports per tier hit ratio,
 * latency percentiles and throughput for several tier configurations and
 * for a warm and a cold page cache. Each configuration runs in its own
 * forked process that loads the library after the fork, so no Go runtime
 * crosses a fork and every run starts from an empty in-process cache.
 *
 * The database must come from bench/gen.sh (names follow its scheme).
 * Run with --help for every knob. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "blockcache.h"

static struct {
  const char *lib, *db, *csv, *configs, *regimes;
  long rows, universe, queries, warmup;
  double zipf_s, listed, wild_frac, regex_frac, exact_frac;
  int valkey_port, regex_patterns, check, filter;
  const char *lru_size;
  long seed;
} opt = {
  .lib = "build/libblockcache.so", .db = NULL, .csv = NULL,
  .configs = "sqlite,valkey+sqlite,lru+sqlite,lru+valkey+sqlite,auto",
  .regimes = "warm,cold",
  .rows = 0, .universe = 1000000, .queries = 1000000, .warmup = -1,
  .zipf_s = 1.0, .listed = 0.2, .wild_frac = 0.6, .regex_frac = 0.1, .exact_frac = 0.3,
  .valkey_port = 0, .regex_patterns = 1000, .check = 1, .filter = 1, .lru_size = "1048576", .seed = 1,
};

static void usage(FILE *f)
{
  fprintf(f,
"usage: harness --db FILE --rows N [options]\n"
"\n"
"Drives libblockcache through its C ABI with a Zipf stream of names and\n"
"reports, per configuration and page-cache regime, each tier's share of\n"
"answers, latency p50/p90/p99/p99.9 and throughput.\n"
"\n"
"  --lib PATH          library to dlopen (build/libblockcache.so)\n"
"  --db FILE           database made by bench/gen.sh (required)\n"
"  --rows N            rows in its domain table, as given to gen.sh (required)\n"
"  --regex N           patterns in its domain_regex table (1000)\n"
"  --universe M        distinct names queried (1000000)\n"
"  --queries Q         measured queries per run (1000000)\n"
"  --warmup W          unmeasured queries before each run (default Q/2; 0 for none)\n"
"  --zipf S            Zipf exponent of name popularity (1.0; 1.0 puts ~70%% of\n"
"                      queries on the top 1%% of 1M names, 1.2 about 90%%)\n"
"  --listed F          share of names that are listed (0.2)\n"
"  --exact F --wild F --regex-share F\n"
"                      how listed names split into exact, wildcard subdomain and\n"
"                      regex matches (0.3 / 0.6 / 0.1)\n"
"  --configs LIST      comma list of: sqlite, valkey+sqlite, lru+sqlite,\n"
"                      lru+valkey+sqlite, auto (lru+valkey+sqlite with\n"
"                      valkey-read=auto); default all\n"
"  --regimes LIST      warm (DB read into the page cache first) and/or cold\n"
"                      (pages evicted with posix_fadvise DONTNEED before the\n"
"                      run, no mmap); default both\n"
"  --valkey-port P     Valkey on 127.0.0.1:P for the valkey configurations\n"
"                      (flushed before each run); without it they are skipped\n"
"  --lru-size N        db-lru-size for the lru configurations (1048576)\n"
"  --csv FILE          also write the results as CSV\n"
"  --no-check          do not check verdicts against the generator's scheme\n"
"  --no-filter         db-filter=off: every lookup that misses the caches runs SQL\n"
"  --seed N            random seed (1)\n");
}

/* ---- names: must match bench/gen.sh ---- */
enum { K_UNLISTED, K_EXACT, K_WILD, K_REGEX };

static uint64_t mix(uint64_t x)
{
  x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
  return x;
}

/* name_of writes the name of universe member i; returns its kind. */
static int name_of(long i, char *buf, size_t len)
{
  uint64_t h = mix((uint64_t)i + (uint64_t)opt.seed * 0x9e3779b97f4a7c15ULL);
  double u = (h >> 11) * (1.0 / 9007199254740992.0);
  long rows = opt.rows > 0 ? opt.rows : 1;
  long exact_rows = rows / 10 > 0 ? rows / 10 : 1;

  if (u < opt.listed)
    {
      double v = u / opt.listed;
      if (v < opt.exact_frac)
	{
	  snprintf(buf, len, "e%lu.bench-exact.example", (unsigned long)(h % exact_rows));
	  return K_EXACT;
	}
      if (v < opt.exact_frac + opt.wild_frac)
	{
	  snprintf(buf, len, "www%lu.d%lu.bench.example", (unsigned long)(h >> 40) % 10, (unsigned long)(h % rows));
	  return K_WILD;
	}
      snprintf(buf, len, "ad%lu.r%lu.track%lu.example", (unsigned long)(h >> 40) % 1000,
	       (unsigned long)(h % opt.regex_patterns), (unsigned long)(h % opt.regex_patterns));
      return K_REGEX;
    }
  /* unlisted: four labels, like most real traffic */
  snprintf(buf, len, "u%lu.site%lu.cdn%lu.example", (unsigned long)(h % 100000), (unsigned long)((h >> 20) % 1000), (unsigned long)i);
  return K_UNLISTED;
}

/* ---- Zipf over ranks 1..M by inverse CDF ---- */
static double *cdf;

static void zipf_init(void)
{
  long i;
  double sum = 0;

  cdf = malloc(sizeof(double) * opt.universe);
  for (i = 0; i < opt.universe; i++)
    cdf[i] = (sum += 1.0 / pow((double)(i + 1), opt.zipf_s));
  for (i = 0; i < opt.universe; i++)
    cdf[i] /= sum;
}

static uint64_t rng_state;
static double rnd(void)
{
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (mix(rng_state) >> 11) * (1.0 / 9007199254740992.0);
}

static long zipf_next(void)
{
  double u = rnd();
  long lo = 0, hi = opt.universe - 1;
  while (lo < hi)
    {
      long mid = (lo + hi) / 2;
      if (cdf[mid] < u)
	lo = mid + 1;
      else
	hi = mid;
    }
  /* rank -> member: scatter ranks so popularity does not follow kind */
  return (long)(mix((uint64_t)lo + 77) % (uint64_t)opt.universe);
}

/* ---- Valkey: FLUSHALL over a raw socket, no client library ---- */
static int valkey_flush(int port)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
  char buf[64];
  int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
    return -1;
  ok = write(fd, "*1\r\n$8\r\nFLUSHALL\r\n", 18) == 18 && read(fd, buf, sizeof buf) > 0 && buf[0] == '+';
  close(fd);
  return ok ? 0 : -1;
}

static void evict(const char *path)
{
  const char *sfx[] = { "", "-wal", "-shm" };
  char p[4096];
  int i, fd;

  for (i = 0; i < 3; i++)
    {
      snprintf(p, sizeof p, "%s%s", path, sfx[i]);
      if ((fd = open(p, O_RDONLY)) >= 0)
	{
	  fdatasync(fd);
	  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	  close(fd);
	}
    }
}

/* preload reads the list and its WAL once, so that "warm" means the file
   is in the page cache whatever ran before: a cold run evicts it, and a
   list larger than what the warm-up touches would otherwise be measured
   partly cold. */
static void preload(const char *path)
{
  const char *sfx[] = { "", "-wal" };
  static char buf[1 << 20];
  char p[4096];
  int i, fd;

  for (i = 0; i < 2; i++)
    {
      snprintf(p, sizeof p, "%s%s", path, sfx[i]);
      if ((fd = open(p, O_RDONLY)) >= 0)
	{
	  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	  while (read(fd, buf, sizeof buf) > 0)
	    ;
	  close(fd);
	}
    }
}

static double now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(uint32_t *v, long n, double p)
{
  long i;
  if (n == 0)
    return NAN;
  i = (long)(p * (n - 1) + 0.5);
  return v[i];
}

/* One result row, written by the child to a pipe. */
struct row {
  char config[32], regime[8], tier[8];
  long n;
  double share, p50, p90, p99, p999, qps, mean;
  long wrong;
};

#define SYM(f) typeof(f) *f##_p = (typeof(f) *)dlsym(h, #f); if (!f##_p) { fprintf(stderr, "harness: %s missing\n", #f); _exit(2); }

static void run_one(const char *config, const char *regime, int outfd)
{
  void *h = dlopen(opt.lib, RTLD_NOW | RTLD_LOCAL);
  int lru = strstr(config, "lru") != NULL || strcmp(config, "auto") == 0;
  int valkey = strstr(config, "valkey") != NULL || strcmp(config, "auto") == 0;
  long i, total = opt.warmup + opt.queries, wrong = 0;
  static uint32_t *lat[4];
  long nlat[4] = { 0 };
  char name[300], port[16];
  struct blockcache_verdict v;
  double t0, t1, start = now_ns(), elapsed, sum = 0;
  const char *tiers[4] = { "none", "lru", "valkey", "sqlite" };
  long *members;
  int *kinds;

  if (strcmp(regime, "warm") == 0)
    preload(opt.db);
  if (!h)
    {
      fprintf(stderr, "harness: dlopen %s: %s\n", opt.lib, dlerror());
      _exit(2);
    }
  SYM(blockcache_set_option) SYM(blockcache_last_error) SYM(db_init) SYM(blockcache_lookup) SYM(db_cleanup)
  SYM(blockcache_stats)

#define SET(k, val) if (blockcache_set_option_p(k, val) != 0) { fprintf(stderr, "harness: %s: %s\n", k, blockcache_last_error_p()); _exit(2); }
  SET("db-file", opt.db);
  SET("db-lru-size", lru ? opt.lru_size : "0");
  SET("db-poll-ms", "1000");
  SET("db-filter", opt.filter ? "on" : "off");
  if (valkey)
    {
      snprintf(port, sizeof port, "%d", opt.valkey_port);
      SET("valkey-host", "127.0.0.1");
      SET("valkey-port", port);
      SET("valkey-timeout-ms", "20");
      SET("valkey-read", strcmp(config, "auto") == 0 ? "auto" : "always");
    }
  if (db_init_p() != 0)
    {
      fprintf(stderr, "harness: db_init: %s\n", blockcache_last_error_p());
      _exit(2);
    }
  /* measure the steady state: wait until the membership filter is built */
  if (opt.filter)
    {
      struct blockcache_stats st;
      for (i = 0; i < 1200; i++)
	{
	  if (blockcache_stats_p(&st) == 0 && st.filter_bytes > 0)
	    break;
	  usleep(100000);
	}
    }

  /* the query stream, drawn before timing starts */
  members = malloc(sizeof(long) * total);
  kinds = malloc(sizeof(int) * total);
  rng_state = (uint64_t)opt.seed * 12345;
  for (i = 0; i < total; i++)
    members[i] = zipf_next();
  for (i = 0; i < 4; i++)
    lat[i] = malloc(sizeof(uint32_t) * opt.queries);

  for (i = 0; i < total; i++)
    {
      int k = name_of(members[i], name, sizeof name);
      kinds[i] = k;
      if (i == opt.warmup)
	{
	  if (strcmp(regime, "cold") == 0)
	    evict(opt.db);
	  usleep(200000); /* let write-backs of the warm-up settle */
	  start = now_ns();
	}
      t0 = now_ns();
      blockcache_lookup_p(name, &v);
      t1 = now_ns();
      if (opt.check && (k != K_UNLISTED) != (v.action == BLOCKCACHE_BLOCK))
	wrong++;
      if (i >= opt.warmup)
	{
	  int t = v.tier >= 0 && v.tier < 4 ? v.tier : 0;
	  double d = t1 - t0;
	  lat[t][nlat[t]++] = d > 4e9 ? 4000000000u : (uint32_t)d;
	  sum += d;
	}
    }
  elapsed = now_ns() - start;

  for (i = 0; i < 4; i++)
    {
      struct row r;
      if (nlat[i] == 0)
	continue;
      qsort(lat[i], nlat[i], sizeof(uint32_t), cmp_u32);
      memset(&r, 0, sizeof r);
      snprintf(r.config, sizeof r.config, "%s", config);
      snprintf(r.regime, sizeof r.regime, "%s", regime);
      snprintf(r.tier, sizeof r.tier, "%s", tiers[i]);
      r.n = nlat[i];
      r.share = (double)nlat[i] / opt.queries;
      r.p50 = pct(lat[i], nlat[i], 0.5);
      r.p90 = pct(lat[i], nlat[i], 0.9);
      r.p99 = pct(lat[i], nlat[i], 0.99);
      r.p999 = pct(lat[i], nlat[i], 0.999);
      write(outfd, &r, sizeof r);
    }
  {
    /* the "all" row: every query, throughput of the whole run */
    static uint32_t *all;
    long n = 0, j;
    struct row r;
    all = malloc(sizeof(uint32_t) * opt.queries);
    for (i = 0; i < 4; i++)
      for (j = 0; j < nlat[i]; j++)
	all[n++] = lat[i][j];
    qsort(all, n, sizeof(uint32_t), cmp_u32);
    memset(&r, 0, sizeof r);
    snprintf(r.config, sizeof r.config, "%s", config);
    snprintf(r.regime, sizeof r.regime, "%s", regime);
    snprintf(r.tier, sizeof r.tier, "all");
    r.n = n;
    r.share = 1;
    r.p50 = pct(all, n, 0.5);
    r.p90 = pct(all, n, 0.9);
    r.p99 = pct(all, n, 0.99);
    r.p999 = pct(all, n, 0.999);
    r.mean = sum / n;
    r.qps = n / (elapsed / 1e9);
    r.wrong = wrong;
    write(outfd, &r, sizeof r);
  }
  db_cleanup_p();
  _exit(0);
}

int main(int argc, char **argv)
{
  static struct option lo[] = {
    { "lib", 1, 0, 'l' }, { "db", 1, 0, 'd' }, { "rows", 1, 0, 'n' }, { "regex", 1, 0, 'x' },
    { "universe", 1, 0, 'u' }, { "queries", 1, 0, 'q' }, { "warmup", 1, 0, 'w' }, { "zipf", 1, 0, 'z' },
    { "listed", 1, 0, 'L' }, { "exact", 1, 0, 'E' }, { "wild", 1, 0, 'W' }, { "regex-share", 1, 0, 'R' },
    { "configs", 1, 0, 'c' }, { "regimes", 1, 0, 'r' }, { "valkey-port", 1, 0, 'p' }, { "lru-size", 1, 0, 's' },
    { "csv", 1, 0, 'o' }, { "no-check", 0, 0, 'N' }, { "no-filter", 0, 0, 'F' }, { "seed", 1, 0, 'S' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 }
  };
  int c;
  char *configs, *regimes, *cfg, *reg, *sp1, *sp2;
  FILE *csv = NULL;
  long top = 0, i;

  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1)
    switch (c)
      {
      case 'l': opt.lib = optarg; break;
      case 'd': opt.db = optarg; break;
      case 'n': opt.rows = atol(optarg); break;
      case 'x': opt.regex_patterns = atoi(optarg); break;
      case 'u': opt.universe = atol(optarg); break;
      case 'q': opt.queries = atol(optarg); break;
      case 'w': opt.warmup = atol(optarg); break;
      case 'z': opt.zipf_s = atof(optarg); break;
      case 'L': opt.listed = atof(optarg); break;
      case 'E': opt.exact_frac = atof(optarg); break;
      case 'W': opt.wild_frac = atof(optarg); break;
      case 'R': opt.regex_frac = atof(optarg); break;
      case 'c': opt.configs = optarg; break;
      case 'r': opt.regimes = optarg; break;
      case 'p': opt.valkey_port = atoi(optarg); break;
      case 's': opt.lru_size = optarg; break;
      case 'o': opt.csv = optarg; break;
      case 'N': opt.check = 0; break;
      case 'F': opt.filter = 0; break;
      case 'S': opt.seed = atol(optarg); break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
      }
  if (!opt.db || opt.rows <= 0 || opt.universe <= 0 || opt.queries <= 0 || opt.regex_patterns <= 0 ||
      opt.listed < 0 || opt.listed > 1)
    {
      usage(stderr);
      return 2;
    }
  if (opt.warmup < 0)
    opt.warmup = opt.queries / 2;
  if (opt.csv && !(csv = fopen(opt.csv, "w")))
    {
      perror(opt.csv);
      return 1;
    }

  zipf_init();
  top = opt.universe / 100 > 0 ? opt.universe / 100 : 1;
  printf("# harness: rows=%ld regex=%d universe=%ld queries=%ld warmup=%ld zipf=%.2f (top 1%% of names get %.0f%% of queries) listed=%.2f\n",
	 opt.rows, opt.regex_patterns, opt.universe, opt.queries, opt.warmup, opt.zipf_s, 100 * cdf[top - 1], opt.listed);
  printf("%-18s %-6s %-7s %7s %9s %9s %9s %9s %10s %6s\n", "config", "cache", "tier", "share", "p50_ns", "p90_ns", "p99_ns", "p99.9_ns", "qps", "wrong");
  if (csv)
    fprintf(csv, "config,regime,tier,share,p50_ns,p90_ns,p99_ns,p999_ns,mean_ns,qps,wrong\n");

  configs = strdup(opt.configs);
  for (cfg = strtok_r(configs, ",", &sp1); cfg; cfg = strtok_r(NULL, ",", &sp1))
    {
      if ((strstr(cfg, "valkey") || strcmp(cfg, "auto") == 0) && !opt.valkey_port)
	{
	  printf("%-18s skipped: no --valkey-port\n", cfg);
	  continue;
	}
      regimes = strdup(opt.regimes);
      for (reg = strtok_r(regimes, ",", &sp2); reg; reg = strtok_r(NULL, ",", &sp2))
	{
	  int p[2], status;
	  pid_t pid;
	  struct row r;

	  if (opt.valkey_port && valkey_flush(opt.valkey_port) != 0)
	    fprintf(stderr, "harness: cannot FLUSHALL valkey on port %d\n", opt.valkey_port);
	  if (pipe(p) != 0)
	    return 1;
	  fflush(stdout);
	  if ((pid = fork()) == 0)
	    {
	      close(p[0]);
	      run_one(cfg, reg, p[1]);
	    }
	  close(p[1]);
	  while (read(p[0], &r, sizeof r) == sizeof r)
	    {
	      printf("%-18s %-6s %-7s %6.1f%% %9.0f %9.0f %9.0f %9.0f", r.config, r.regime, r.tier, 100 * r.share, r.p50, r.p90, r.p99, r.p999);
	      if (strcmp(r.tier, "all") == 0)
		printf(" %10.0f %6ld", r.qps, r.wrong);
	      printf("\n");
	      if (csv)
		fprintf(csv, "%s,%s,%s,%.4f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%ld\n", r.config, r.regime, r.tier, r.share,
			r.p50, r.p90, r.p99, r.p999, r.mean, r.qps, r.wrong);
	    }
	  close(p[0]);
	  waitpid(pid, &status, 0);
	  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
	    {
	      fprintf(stderr, "harness: run %s/%s failed\n", cfg, reg);
	      return 1;
	    }
	}
      free(regimes);
    }
  if (csv)
    fclose(csv);
  (void)i;
  return 0;
}
