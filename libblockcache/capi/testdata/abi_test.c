/* abi_test.c: checks verdicts through the C ABI exactly as dnsmasq sees
 * it: the library is loaded with dlopen and every call goes through
 * include/blockcache.h. Usage: abi_test LIBRARY DBFILE. Prints
 * "N passed, M failed" and exits non-zero on any failure. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
#include "blockcache.h"

static int passed, failed;

#define CHECK(cond, ...) do { \
    if (cond) passed++; \
    else { failed++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

#define LOAD(name) name##_fn = (typeof(name) *)dlsym(h, #name); \
  if (!name##_fn) { fprintf(stderr, "missing symbol %s\n", #name); return 2; }

static typeof(blockcache_abi_version) *blockcache_abi_version_fn;
static typeof(blockcache_set_option) *blockcache_set_option_fn;
static typeof(blockcache_last_error) *blockcache_last_error_fn;
static typeof(db_init) *db_init_fn;
static typeof(db_check_termination) *db_check_termination_fn;
static typeof(blockcache_lookup) *blockcache_lookup_fn;
static typeof(blockcache_cname) *blockcache_cname_fn;
static typeof(blockcache_cached_cname) *blockcache_cached_cname_fn;
static typeof(blockcache_stats) *blockcache_stats_fn;
static typeof(blockcache_stats_text) *blockcache_stats_text_fn;
static typeof(blockcache_flush) *blockcache_flush_fn;
static typeof(blockcache_serve_child) *blockcache_serve_child_fn;
static typeof(db_cleanup) *db_cleanup_fn;

int main(int argc, char **argv)
{
  void *h;
  struct blockcache_verdict v;
  struct blockcache_verdict cv;
  struct blockcache_stats st;
  char buf[4096], ip[INET6_ADDRSTRLEN];
  int i, sv[2];

  if (argc != 3) { fprintf(stderr, "usage: abi_test LIBRARY DBFILE\n"); return 2; }
  if (!(h = dlopen(argv[1], RTLD_NOW))) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
  LOAD(blockcache_abi_version) LOAD(blockcache_set_option) LOAD(blockcache_last_error)
  LOAD(db_init) LOAD(db_check_termination) LOAD(blockcache_lookup) LOAD(blockcache_stats)
  LOAD(blockcache_stats_text) LOAD(blockcache_flush) LOAD(blockcache_serve_child) LOAD(db_cleanup)
  LOAD(blockcache_cname) LOAD(blockcache_cached_cname)

  CHECK(blockcache_abi_version_fn() == BLOCKCACHE_ABI_VERSION, "abi version %d", blockcache_abi_version_fn());
  CHECK(db_check_termination_fn("x.tracker.net") == -1, "lookup before db_init must be -1");

  /* bad options are refused with a message */
  CHECK(blockcache_set_option_fn("no-such-option", "1") == -1, "unknown option accepted");
  CHECK(strstr(blockcache_last_error_fn(), "no-such-option") != NULL, "message: %s", blockcache_last_error_fn());
  CHECK(blockcache_set_option_fn("db-block-ipv4", "not-an-ip") == -1, "bad ipv4 accepted");
  CHECK(blockcache_set_option_fn(NULL, "x") == -1, "NULL key accepted");

  /* a missing database fails db_init with a message */
  CHECK(blockcache_set_option_fn("db-file", "/nonexistent/list.db") == 0, "db-file");
  CHECK(db_init_fn() == -1, "db_init with a missing file succeeded");
  CHECK(strstr(blockcache_last_error_fn(), "/nonexistent/list.db") != NULL, "message: %s", blockcache_last_error_fn());

  CHECK(blockcache_set_option_fn("db-file", argv[2]) == 0, "db-file");
  CHECK(blockcache_set_option_fn("db-block-ipv4", "10.9.9.9") == 0, "db-block-ipv4");
  CHECK(blockcache_set_option_fn("db-block-ipv6", "fd00::99") == 0, "db-block-ipv6");
  CHECK(db_init_fn() == 0, "db_init: %s", blockcache_last_error_fn());
  CHECK(db_init_fn() == 0, "second db_init");

  CHECK(db_check_termination_fn("a.b.tracker.net") == 1, "wildcard");
  CHECK(db_check_termination_fn("Exact.Example.") == 1, "exact, case, dot");
  CHECK(db_check_termination_fn("sub.exact.example") == 0, "exact is exact");
  CHECK(db_check_termination_fn("ads1.example.org") == 1, "regex");
  CHECK(db_check_termination_fn("allowed.tracker.net") == 0, "dns_allow beats domain");
  CHECK(db_check_termination_fn("nottracker.net") == 0, "label boundary");
  CHECK(db_check_termination_fn(NULL) == 0, "NULL");
  CHECK(db_check_termination_fn("") == 0, "empty");
  memset(buf, 'a', 300); buf[300] = 0;
  CHECK(db_check_termination_fn(buf) == 0, "300 bytes");
  CHECK(db_check_termination_fn("bad name.example") == 0, "unlisted, with a space");
  CHECK(db_check_termination_fn("bad name.tracker.net") == 1, "a space in a subdomain of a listed domain");
  CHECK(db_check_termination_fn("bad\001escape.tracker.net") == 0, "broken escape");

  CHECK(blockcache_lookup_fn("x.deep.tracker.net", &v) == 0, "lookup");
  inet_ntop(AF_INET, v.ipv4, ip, sizeof ip);
  CHECK(v.action == BLOCKCACHE_BLOCK && v.table == BLOCKCACHE_TABLE_DOMAIN && v.has_ipv4 && strcmp(ip, "10.0.0.2") == 0,
        "per-rule ipv4: action %d table %d ip %s", v.action, v.table, ip);
  inet_ntop(AF_INET6, v.ipv6, ip, sizeof ip);
  CHECK(v.has_ipv6 && strcmp(ip, "fd00::99") == 0, "global ipv6 default: %s", ip);
  CHECK(v.tier == BLOCKCACHE_TIER_SQLITE && v.list_version > 0, "tier %d version %llu", v.tier, (unsigned long long)v.list_version);
  CHECK(blockcache_lookup_fn("x.deep.tracker.net", &v) == 0 && v.tier == BLOCKCACHE_TIER_LRU, "second lookup from LRU: tier %d", v.tier);

  CHECK(blockcache_lookup_fn("www.family.example", &v) == 0 && v.action == BLOCKCACHE_FORWARD &&
        v.table == BLOCKCACHE_TABLE_DNS_BLOCK && strcmp(v.server, "1.1.1.3") == 0, "forward: %d %s", v.action, v.server);
  CHECK(blockcache_lookup_fn("unlisted.example", &v) == 0 && v.action == BLOCKCACHE_PASS && !v.has_ipv4, "pass");
  CHECK(blockcache_lookup_fn(buf, &v) == 0 && v.action == BLOCKCACHE_PASS, "invalid name gives PASS");
  CHECK(blockcache_lookup_fn("x.tracker.net", NULL) == -1, "NULL out");
  CHECK(blockcache_cname_fn("metrics.news.example", "x.deep.tracker.net", &cv) == 1 && cv.action == BLOCKCACHE_BLOCK &&
        cv.ipv4[0] == 10 && cv.ipv4[3] == 2, "cname to a blocked target: action %d", cv.action);
  CHECK(blockcache_cname_fn("allowed.tracker.net", "x.tracker.net", &cv) == 0 && cv.action == BLOCKCACHE_PASS,
        "cname under an allowed question: action %d", cv.action);
  CHECK(blockcache_cname_fn("a.example", "b.example", NULL) == -1, "cname NULL out");
  CHECK(blockcache_cached_cname_fn("metrics.news.example", "x.tracker.net") == 1 &&
        blockcache_cached_cname_fn("allowed.tracker.net", "x.tracker.net") == 0, "cached cname");

  /* the child socket: what a forked TCP child does, in plain C */
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  CHECK(blockcache_serve_child_fn(sv[0]) == 0, "serve_child");
  {
    const char *q = "a.tracker.net";
    unsigned char req[2 + BLOCKCACHE_SOCK_REQUEST_MAX], resp[BLOCKCACHE_SOCK_RESPONSE];
    size_t got = 0;
    ssize_t r;
    req[0] = (unsigned char)((strlen(q) + 1) >> 8);
    req[1] = (unsigned char)(strlen(q) + 1);
    req[2] = BLOCKCACHE_SOCK_LOOKUP;
    memcpy(req + 3, q, strlen(q));
    CHECK(write(sv[1], req, 3 + strlen(q)) == (ssize_t)(3 + strlen(q)), "child write");
    while (got < sizeof resp && (r = read(sv[1], resp + got, sizeof resp - got)) > 0)
      got += r;
    CHECK(got == sizeof resp && resp[0] == BLOCKCACHE_BLOCK && resp[1] == BLOCKCACHE_TABLE_DOMAIN &&
          (resp[3] & 1) && resp[4] == 10 && resp[5] == 9, "child answer: got %zu action %d", got, resp[0]);
    close(sv[1]);
  }

  CHECK(blockcache_stats_fn(&st) == 0, "stats");
  CHECK(st.lookups >= 10 && st.lru_hits >= 1 && st.invalid_names >= 3 && st.list_version == v.list_version &&
        st.regex_patterns == 1 && !st.valkey_enabled && st.cname_blocks == 1, "stats: lookups %llu hits %llu invalid %llu cname %llu",
        (unsigned long long)st.lookups, (unsigned long long)st.lru_hits, (unsigned long long)st.invalid_names,
        (unsigned long long)st.cname_blocks);
  i = blockcache_stats_text_fn(buf, 32);
  CHECK(i > 32 && strlen(buf) == 31, "stats_text truncation: %d %zu", i, strlen(buf));
  CHECK(blockcache_flush_fn() == 0, "flush");
  CHECK(blockcache_lookup_fn("x.deep.tracker.net", &v) == 0 && v.tier == BLOCKCACHE_TIER_SQLITE, "after flush tier %d", v.tier);

  db_cleanup_fn();
  CHECK(db_check_termination_fn("x.tracker.net") == -1, "after cleanup");
  CHECK(db_init_fn() == 0, "re-init after cleanup");
  CHECK(db_check_termination_fn("x.tracker.net") == 1, "after re-init");
  db_cleanup_fn();

  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
