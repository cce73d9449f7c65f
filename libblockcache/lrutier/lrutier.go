// Package lrutier is the in-process cache tier: a bounded LRU of verdicts,
// including "not listed", because most traffic is unlisted and a negative
// answer is as expensive to compute as a positive one.
package lrutier

import (
	"context"
	"fmt"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/libblockcache/libblockcache/libblockcache/engine"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// entry remembers the list version a verdict belongs to. The LRU is keyed
// by name alone and an entry of another version is a miss: a list change
// then costs one recomputation per name as it is asked again, instead of a
// purge that would send every name to the slower tiers at once. The
// verdict is kept in its compact encoding (one byte for most verdicts,
// shared, so no allocation): a Verdict value is over 100 bytes, and the
// cache holds a million of them.
type entry struct {
	ns  store.Namespace
	enc string
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
type Tier struct {
	c                   *lru.Cache[string, entry]
	hits, misses, stale atomic.Uint64
	evictions           atomic.Uint64
}

// New returns an LRU tier holding at most size verdicts.
func New(size int) (*Tier, error) {
	t := &Tier{}
	c, err := lru.NewWithEvict[string, entry](size, func(string, entry) { t.evictions.Add(1) })
	if err != nil {
		return nil, fmt.Errorf("lru of %d entries: %w", size, err)
	}
	t.c = c
	return t, nil
}

func (t *Tier) ID() verdict.Tier { return verdict.TierLRU }

func (t *Tier) Get(_ context.Context, k engine.Key) (verdict.Verdict, bool) {
	e, ok := t.c.Get(k.Name)
	if !ok {
		t.misses.Add(1)
		return verdict.Verdict{}, false
	}
	if e.ns != k.NS {
		t.stale.Add(1)
		t.misses.Add(1)
		return verdict.Verdict{}, false
	}
	v, err := verdict.DecodeString(e.enc)
	if err != nil { // cannot happen: Put wrote it
		t.misses.Add(1)
		return verdict.Verdict{}, false
	}
	t.hits.Add(1)
	return v, true
}

// Put caches v. Verdict.Rule is not kept: only tooling reads it, and
// tooling asks the source (engine.Explain).
func (t *Tier) Put(k engine.Key, v verdict.Verdict) {
	t.c.Add(k.Name, entry{ns: k.NS, enc: encode(v)})
}

// Flush drops every entry (dnsmasq's SIGHUP).
func (t *Tier) Flush() { t.c.Purge() }

// Len is the number of cached verdicts.
func (t *Tier) Len() int { return t.c.Len() }

func (t *Tier) Stats() engine.TierStats {
	return engine.TierStats{
		Tier: verdict.TierLRU, Hits: t.hits.Load(), Misses: t.misses.Load(),
		Extra: map[string]uint64{
			"entries":   uint64(t.c.Len()),
			"evictions": t.evictions.Load(),
			"stale":     t.stale.Load(),
		},
	}
}
