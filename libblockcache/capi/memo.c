/* memo.c: the library's C entry point for lookups, in front of Go.
 *
 * Calling into Go costs a dnsmasq about 4.5 µs of CPU per query even when
 * Go does nothing (cgo transition on cold caches, the runtime's threads;
 * bench/RESULTS.md), several times the LRU lookup itself. So the answers Go
 * gave are kept here, by exact name, for as long as the list version they
 * came from is the one Go serves: a repeated name is answered without
 * entering Go. This file holds no DNS logic. It does not normalize names or
 * match rules; a name written differently is another entry, answered by Go.
 *
 * Consistency: every answer is tagged with the identity of the list version
 * it came from. Go publishes the identity of a new version before lookups
 * can see it, and only entries tagged with the published identity are
 * served, so once Go has answered from a new version, nothing older comes
 * from here.
 *
 * Direct-mapped, one seqlock per slot: any number of threads may look up
 * at once, and a slot being written is simply a miss. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"
#include "memo.h"

/* Names this long or longer are not kept (rare; Go answers them). */
#define MEMO_NAME 96

struct slot {
  _Atomic uint32_t seq; /* odd while being written */
  uint32_t len;
  uint64_t hash;
  uint64_t ident;       /* list version identity of the answer */
  uint64_t flushes;     /* bc_memo_flush count when it was asked */
  struct blockcache_verdict v;
  char name[MEMO_NAME];
};

static struct {
  struct slot *slots;
  size_t mask;
  _Atomic uint64_t ident;
  _Atomic uint64_t flushes;
  _Atomic uint64_t hits, misses;
} memo;

int blockcache_lookup(const char *name, struct blockcache_verdict *out);

/* FNV-1a: the names are short; the table index only needs spread. */
static uint64_t hash(const char *s, size_t n)
{
  uint64_t h = 14695981039346656037ULL;
  size_t i;
  for (i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
  return h;
}

static int get(struct slot *s, uint64_t h, const char *name, size_t len, struct blockcache_verdict *out)
{
  uint32_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
  if ((seq & 1) || s->hash != h || s->len != len || s->ident != atomic_load_explicit(&memo.ident, memory_order_acquire) ||
      s->flushes != atomic_load_explicit(&memo.flushes, memory_order_relaxed) || memcmp(s->name, name, len) != 0)
    return 0;
  memcpy(out, &s->v, sizeof(*out));
  atomic_thread_fence(memory_order_acquire);
  return atomic_load_explicit(&s->seq, memory_order_relaxed) == seq;
}

static void put(struct slot *s, uint64_t h, const char *name, size_t len, uint64_t ident, uint64_t flushes,
		const struct blockcache_verdict *v)
{
  uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
  if ((seq & 1) || !atomic_compare_exchange_strong_explicit(&s->seq, &seq, seq + 1, memory_order_acquire,
							      memory_order_relaxed))
    return; /* another thread is writing it: keep theirs */
  atomic_thread_fence(memory_order_release);
  s->hash = h;
  s->len = (uint32_t)len;
  s->ident = ident;
  s->flushes = flushes;
  s->v = *v;
  memcpy(s->name, name, len);
  atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
}

int blockcache_lookup(const char *name, struct blockcache_verdict *out)
{
  struct slot *s;
  uint64_t h, ident = 0, flushes;
  size_t len;
  int rc;

  if (!out || !name || !memo.slots || (len = strnlen(name, MEMO_NAME)) == 0 || len == MEMO_NAME)
    return blockcache_lookup_go((char *)name, out, NULL);

  h = hash(name, len);
  s = &memo.slots[h & memo.mask];
  if (get(s, h, name, len, out))
    {
      atomic_fetch_add_explicit(&memo.hits, 1, memory_order_relaxed);
      out->tier = BLOCKCACHE_TIER_MEMO;
      return 0;
    }
  atomic_fetch_add_explicit(&memo.misses, 1, memory_order_relaxed);
  flushes = atomic_load_explicit(&memo.flushes, memory_order_relaxed);
  rc = blockcache_lookup_go((char *)name, out, &ident);
  if (rc == 0 && ident != 0)
    put(s, h, name, len, ident, flushes, out);
  return rc;
}

int bc_memo_configure(size_t n)
{
  size_t size = 1;

  free(memo.slots);
  memo.slots = NULL;
  memo.mask = 0;
  if (n == 0)
    return 0;
  while (size < n)
    size <<= 1;
  if (!(memo.slots = calloc(size, sizeof(struct slot))))
    return -1;
  memo.mask = size - 1;
  return 0;
}

void bc_memo_publish(uint64_t ident)
{
  atomic_store_explicit(&memo.ident, ident, memory_order_release);
}

void bc_memo_flush(void)
{
  atomic_fetch_add_explicit(&memo.flushes, 1, memory_order_relaxed);
}

void bc_memo_counts(uint64_t *hits, uint64_t *misses)
{
  *hits = atomic_load_explicit(&memo.hits, memory_order_relaxed);
  *misses = atomic_load_explicit(&memo.misses, memory_order_relaxed);
}
