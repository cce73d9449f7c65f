/* blockcache.h: the C ABI of libblockcache.
 *
 * This header is the contract between libblockcache.so (Go, built with
 * -buildmode=c-shared) and its C callers: the dnsmasq patch and the bench
 * harness. It is hand-written; a test (libblockcache/capi) checks that it
 * declares exactly the functions the library exports.
 *
 * Threads: every function may be called from any thread, concurrently.
 * Fork: the Go runtime does not survive fork(). Load the library (dlopen)
 * after daemonizing and never call it from a forked child; a child asks
 * its parent over a socket instead (blockcache_serve_child below).
 * Memory: no call returns memory the caller must free; the library never
 * keeps a pointer it was given.
 * Names: as dnsmasq's extract_name() writes them: the wire octets of each
 * label, labels joined by '.', except that a NUL, '.' or 0x01 octet is
 * written as 0x01 followed by the octet plus one. Any other octet is part
 * of the name, so "we!rd.tracker.net" is a subdomain of tracker.net. Only
 * names no DNS message can carry (an empty label, over 63 octets in a
 * label or 253 in the name, a broken escape) are invalid; the root ("")
 * is a name and gets PASS.
 */
#ifndef BLOCKCACHE_H
#define BLOCKCACHE_H

#include <stddef.h>
#include <stdint.h>

/* Bumped on any incompatible change of this header. */
#define BLOCKCACHE_ABI_VERSION 2

/* What to do with a query. Values are stable. */
enum blockcache_action {
  BLOCKCACHE_PASS = 0,     /* not listed: resolve as usual */
  BLOCKCACHE_BLOCK = 1,    /* answer with the sinkhole addresses */
  BLOCKCACHE_FORWARD = 2   /* send to verdict.server (dns_allow / dns_block) */
};

/* Which rule table decided, in precedence order. Values are stable. */
enum blockcache_table {
  BLOCKCACHE_TABLE_NONE = 0,
  BLOCKCACHE_TABLE_DNS_ALLOW = 1,
  BLOCKCACHE_TABLE_DNS_BLOCK = 2,
  BLOCKCACHE_TABLE_EXACT = 3,
  BLOCKCACHE_TABLE_DOMAIN = 4,
  BLOCKCACHE_TABLE_REGEX = 5
};

/* Which tier answered. Values are stable. */
enum blockcache_tier {
  BLOCKCACHE_TIER_NONE = 0,
  BLOCKCACHE_TIER_LRU = 1,
  BLOCKCACHE_TIER_VALKEY = 2,
  BLOCKCACHE_TIER_SQLITE = 3
};

#define BLOCKCACHE_SERVER_MAX 64

/* A full verdict, filled by blockcache_lookup into caller memory. */
struct blockcache_verdict {
  int action;                 /* enum blockcache_action */
  int table;                  /* enum blockcache_table */
  int tier;                   /* enum blockcache_tier */
  int has_ipv4;               /* BLOCK: ipv4 is set (rule's or db-block-ipv4) */
  int has_ipv6;               /* BLOCK: ipv6 is set (rule's or db-block-ipv6) */
  unsigned char ipv4[4];      /* network byte order */
  unsigned char ipv6[16];
  char server[BLOCKCACHE_SERVER_MAX]; /* FORWARD: "ip", "ip#port" or "#" (the usual servers, as in server=/name/#), NUL-terminated */
  uint64_t list_version;      /* list version the verdict was computed from */
};

/* Counters since db_init. */
struct blockcache_stats {
  uint64_t lookups;           /* blockcache_lookup + db_check_termination calls */
  uint64_t invalid_names;     /* names no DNS message can carry (answered PASS) */
  uint64_t errors;            /* lookups that failed in SQLite (answered PASS) */
  uint64_t lru_hits, lru_misses, lru_entries, lru_evictions;
  uint64_t valkey_hits, valkey_misses, valkey_errors, valkey_timeouts;
  uint64_t valkey_dropped_writes, valkey_corrupt;
  int valkey_enabled;         /* a Valkey address is configured */
  int valkey_circuit_open;    /* Valkey is currently skipped */
  uint64_t sqlite_lookups, sqlite_errors;
  uint64_t list_version;
  uint64_t list_reloads;
  uint64_t regex_patterns, regex_skipped;
  uint64_t filter_bytes;      /* membership filter of listed names; 0 while building */
  uint64_t filter_skips;      /* lookups the filter answered without SQL */
  uint64_t cname_blocks;      /* replies blocked by blockcache_cname (not cached rechecks) */
};

/* Child socket wire format (blockcache_serve_child).
 * request:  2 bytes length N, big-endian (2..BLOCKCACHE_SOCK_REQUEST_MAX),
 *           then N bytes: a kind, then its arguments:
 *           BLOCKCACHE_SOCK_LOOKUP name (blockcache_lookup);
 *           BLOCKCACHE_SOCK_CNAME question NUL target (blockcache_cname);
 *           BLOCKCACHE_SOCK_CACHED_CNAME question NUL target
 *           (blockcache_cached_cname: action BLOCK when it returns 1).
 *           A NUL never occurs in a name. A name needs up to 506 bytes in
 *           dnsmasq's escaped form (253 octets, each of them escaped); a
 *           request longer than the maximum is not about DNS names, and the
 *           child takes PASS without asking.
 * response: BLOCKCACHE_SOCK_RESPONSE bytes: action, table, tier, flags
 *           (bit 0: IPv4 set, bit 1: IPv6 set), IPv4[4], IPv6[16],
 *           server[64] NUL-padded. */
#define BLOCKCACHE_SOCK_RESPONSE 88
#define BLOCKCACHE_SOCK_REQUEST_MAX 1024
#define BLOCKCACHE_SOCK_LOOKUP 'L'
#define BLOCKCACHE_SOCK_CNAME 'C'
#define BLOCKCACHE_SOCK_CACHED_CNAME 'K'

#ifndef BLOCKCACHE_NO_PROTOTYPES

/* BLOCKCACHE_ABI_VERSION the library was built with. */
int blockcache_abi_version(void);

/* Set one option before db_init. key is the dnsmasq option name without
 * dashes: db-file, db-block-ipv4, db-block-ipv6, db-lru-size, db-poll-ms,
 * db-mmap-size, valkey-host, valkey-port, valkey-ttl, valkey-password,
 * valkey-user, valkey-db, valkey-tls, valkey-timeout-ms, valkey-prefix,
 * valkey-read, valkey-cluster, valkey-queue, blockcache-metrics.
 * Returns 0, or -1 for an unknown key or a bad value (see last_error). */
int blockcache_set_option(const char *key, const char *value);

/* Message of the last failed call; valid until the next failing call. */
const char *blockcache_last_error(void);

/* Open the database and the tiers. 0 on success, -1 on failure (missing or
 * unreadable DB file, not an SQLite file, bad configuration). A Valkey that
 * is down is not a failure. Calling it again after success is harmless. */
int db_init(void);

/* 1 if the name is blocked locally (exact, wildcard or regex rule, and no
 * dns_allow / dns_block rule takes precedence), 0 if not (including NULL
 * and invalid names), -1 on error (not initialized). */
int db_check_termination(const char *name);

/* The full verdict for name into *out (IP addresses already resolved
 * against db-block-ipv4 / db-block-ipv6). 0 on success; -1 when not
 * initialized or the lookup failed, with *out set to PASS. Invalid names
 * get PASS and 0. */
int blockcache_lookup(const char *name, struct blockcache_verdict *out);

/* A forwarded reply's CNAME chain reaches target (CNAME cloaking). 1 when
 * the reply must be blocked: target is blocked and question's own verdict
 * is PASS (an allow or forward rule for the question outranks the chain),
 * with target's verdict in *out. 0 otherwise, with *out set to PASS (also
 * when db-cname=off), -1 when not initialized. */
int blockcache_cname(const char *question, const char *target, struct blockcache_verdict *out);

/* 1 when a CNAME that dnsmasq would answer from its own cache now leads to
 * a blocked name (the same decision as blockcache_cname, not counted: the
 * caller forwards the query instead, and the reply's check counts it); 0
 * otherwise, -1 when not initialized. */
int blockcache_cached_cname(const char *question, const char *target);

/* Fill *out with the counters. 0, or -1 when not initialized. */
int blockcache_stats(struct blockcache_stats *out);

/* Write the counters as one human-readable line (for dnsmasq's SIGUSR1
 * log) into buf, NUL-terminated and truncated to len. Returns the length
 * of the full line, or -1 when not initialized. */
int blockcache_stats_text(char *buf, size_t len);

/* Empty the in-process cache and re-read the list now (SIGHUP). */
int blockcache_flush(void);

/* Serve verdicts on fd (one end of a socketpair) until the peer closes it;
 * the library owns fd from now on. Use from the parent before forking a
 * child that needs verdicts. 0, or -1 when not initialized. */
int blockcache_serve_child(int fd);

/* A file descriptor the caller reads the library's log lines from (one per
 * line, no level); until called, the library logs to stderr. Lines that do
 * not fit into the pipe are dropped and counted, never waited for. */
int blockcache_log_fd(void);

/* Close everything; Valkey writes get a short grace period. After it,
 * db_init may be called again. */
void db_cleanup(void);

#endif /* BLOCKCACHE_NO_PROTOTYPES */
#endif /* BLOCKCACHE_H */
