// Package lrutier is the in-process cache tier: a bounded LRU of verdicts,
// including "not listed", because most traffic is unlisted and a negative
// answer is as expensive to compute as a positive one.
package lrutier

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/libblockcache/libblockcache/libblockcache/engine"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// entry remembers the list version a verdict belongs to. The LRU is keyed
// by name alone and an entry of another version is a miss, unless the
// source vouches that the change did not touch it (Revalidate): listing a
// few names then costs nothing for the rest. Otherwise a list change
// costs one recomputation per name as it is asked again, instead of a
// purge that would send every name to the slower tiers at once. The
// verdict is kept in its compact encoding (one byte for most verdicts,
// shared, so no allocation): a Verdict value is over 100 bytes, and the
// cache holds a million of them.
//
// ns points to a Namespace shared by every entry of that version (see
// Tier.namespace), which keeps an entry at 32 bytes. moved is the tier's
// count of moves to the front when the entry last moved there (see Tier).
type entry struct {
	ns    *store.Namespace
	enc   string
	moved uint32
}

// oneByte holds every 1-byte encoding, so that caching a pass or a plain
// block verdict allocates nothing.
var oneByte = func() (t [256]string) {
	for i := range t {
		t[i] = string([]byte{byte(i)})
	}
	return t
}()

func encode(v verdict.Verdict) string {
	var buf [1 + 4 + 16 + verdict.MaxServerLen]byte
	b := v.AppendBinary(buf[:0])
	if len(b) == 1 {
		return oneByte[b[0]]
	}
	return string(b)
}

// Tier is the LRU tier.
//
// A hit moves its entry to the front only when the entry may have drifted
// into the back half of the list, as memcached bumps an item at most once
// a minute. Moving to the front writes to the entry and to both of its
// neighbours: three cache lines, cold in dnsmasq, whose network stack runs
// between two lookups. Without the move, a hit in a full cache costs ~20%
// less when names come in random order (BenchmarkTierGetWorkingSet: ~890
// ns to ~700 here); the first pass after a fill costs more, as half of its
// hits promote. The tier counts every move to the front (each Put and
// each promotion), so an entry that last moved fewer than size/2 moves ago
// is in the front half and safe. The guarantee becomes: a name asked again
// before size/2 other names have moved to the front (by a Put or a
// promotion) is never evicted, against size for a strict LRU.
type Tier struct {
	c                   *lru.Cache[string, entry]
	promoteAfter        uint32
	moves               atomic.Uint32 // wraps; compared by difference
	hits, misses, stale atomic.Uint64
	evictions           atomic.Uint64 // room made for a new name: the cache is full
	flushed             atomic.Uint64 // dropped by Flush, which is not a sign of its size
	flushing            atomic.Bool
	promotions          atomic.Uint64
	revalidated         atomic.Uint64
	ns                  atomic.Pointer[store.Namespace] // the newest version seen by Put
	stillValid          func(old, cur store.Namespace, name string) bool
}

// Revalidate makes an entry of an older list version a hit when
// stillValid(entry's version, wanted version, name) says the verdict did
// not change in between (store.Store.StillValid); the entry then moves to
// the wanted version. Set it before lookups start.
func (t *Tier) Revalidate(stillValid func(old, cur store.Namespace, name string) bool) {
	t.stillValid = stillValid
}

// New returns an LRU tier holding at most size verdicts.
func New(size int) (*Tier, error) {
	if size > math.MaxInt32 {
		return nil, fmt.Errorf("lru of %d entries: at most %d", size, math.MaxInt32)
	}
	t := &Tier{promoteAfter: uint32(max(size, 0) / 2)}
	c, err := lru.NewWithEvict[string, entry](size, func(string, entry) {
		if t.flushing.Load() {
			t.flushed.Add(1)
		} else {
			t.evictions.Add(1)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("lru of %d entries: %w", size, err)
	}
	t.c = c
	return t, nil
}

func (t *Tier) ID() verdict.Tier { return verdict.TierLRU }

func (t *Tier) Get(_ context.Context, k engine.Key) (verdict.Verdict, bool) {
	e, ok := t.c.Peek(k.Name)
	if !ok {
		t.misses.Add(1)
		return verdict.Verdict{}, false
	}
	stale := *e.ns != k.NS
	if stale && (t.stillValid == nil || !t.stillValid(*e.ns, k.NS, k.Name)) {
		t.stale.Add(1)
		t.misses.Add(1)
		return verdict.Verdict{}, false
	}
	v, err := verdict.DecodeString(e.enc)
	if err != nil { // cannot happen: Put wrote it
		t.misses.Add(1)
		return verdict.Verdict{}, false
	}
	if stale {
		e.ns, e.moved = t.namespace(k.NS), t.moves.Add(1)
		t.writeBack(k.Name, e)
		t.revalidated.Add(1)
	} else if t.moves.Load()-e.moved > t.promoteAfter {
		e.moved = t.moves.Add(1)
		t.writeBack(k.Name, e)
		t.promotions.Add(1)
	}
	t.hits.Add(1)
	return v, true
}

// writeBack stores a hit's entry again. Another thread may have replaced
// the entry since Peek, which is still right: its verdict belongs to its
// list version, and an entry of an older version is a miss. Or it may
// have evicted it (or Flush removed it), and then golang-lru adds the
// entry anew and keeps the key it is given. A name that comes from
// dnsmasq is a view of its query buffer (engine.Lookup), which the next
// query overwrites: kept as a key, its bytes would change under the
// cache's map, and a lookup of another name of the same length could find
// the entry and be given its verdict. So the key is a copy; a write-back
// is rare (a list change, or a move to the front once per half a cache of
// moves), and the copy costs an allocation of the name.
func (t *Tier) writeBack(name string, e entry) {
	t.c.Add(strings.Clone(name), e)
}

// Put caches v. Verdict.Rule is not kept: only tooling reads it, and
// tooling asks the source (engine.Explain).
func (t *Tier) Put(k engine.Key, v verdict.Verdict) {
	t.c.Add(k.Name, entry{ns: t.namespace(k.NS), enc: encode(v), moved: t.moves.Add(1)})
}

// namespace returns the shared copy of ns. Versions change rarely, so one
// copy is kept; a Put of an older version (a lookup that began before the
// change) gets a copy of its own.
func (t *Tier) namespace(ns store.Namespace) *store.Namespace {
	if p := t.ns.Load(); p != nil && *p == ns {
		return p
	}
	p := new(store.Namespace) // not &ns, which would put ns on the heap at every call
	*p = ns
	if cur := t.ns.Load(); cur == nil || cur.Version <= ns.Version || cur.ListID != ns.ListID {
		t.ns.Store(p)
	}
	return p
}

// Flush drops every entry (dnsmasq's SIGHUP). The dropped entries are
// counted apart from evictions: operators size db-lru-size by the rate of
// evictions, and a reload would add the whole cache to it at once.
func (t *Tier) Flush() {
	t.flushing.Store(true)
	defer t.flushing.Store(false)
	t.c.Purge()
}

// Len is the number of cached verdicts.
func (t *Tier) Len() int { return t.c.Len() }

func (t *Tier) Stats() engine.TierStats {
	return engine.TierStats{
		Tier: verdict.TierLRU, Hits: t.hits.Load(), Misses: t.misses.Load(),
		Extra: map[string]uint64{
			"entries":     uint64(t.c.Len()),
			"evictions":   t.evictions.Load(),
			"flushed":     t.flushed.Load(),
			"promotions":  t.promotions.Load(),
			"stale":       t.stale.Load(),
			"revalidated": t.revalidated.Load(),
		},
	}
}
