// Package blockcache assembles a running library instance from a Config:
// the SQLite store, the cache tiers in order and the engine. The C export
// layer and blockcachectl both use it, so the CLI reports exactly what
// dnsmasq answers.
package blockcache

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/cgopace"
	"github.com/libblockcache/libblockcache/libblockcache/config"
	"github.com/libblockcache/libblockcache/libblockcache/engine"
	"github.com/libblockcache/libblockcache/libblockcache/lrutier"
	"github.com/libblockcache/libblockcache/libblockcache/metrics"
	"github.com/libblockcache/libblockcache/libblockcache/ratelog"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytier"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// Cache is one open library instance.
type Cache struct {
	Config config.Config
	Engine *engine.Engine
	Store  *store.Store
	LRU    *lrutier.Tier    // nil when db-lru-size=0
	Valkey *valkeytier.Tier // nil when no Valkey is configured
	Log    *ratelog.Logger
	// Pacer is for callers on C threads (the export layer), which call
	// Pacer.Enter before each lookup; Go callers leave it alone.
	Pacer   *cgopace.Pacer
	closers []io.Closer

	cnameBlocks atomic.Uint64
	build       Build // read once: the stats line and every scrape report it
}

// Open validates cfg and opens every tier. A Valkey that is down is not an
// error: the tier starts with its circuit open and recovers by itself.
func Open(ctx context.Context, cfg config.Config, log *ratelog.Logger) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Cache{Config: cfg, Log: log, Pacer: cgopace.New(cfg.Yield), build: ReadBuild()}
	// Only a host that calls from C (dnsmasq) needs the second P; Go
	// callers such as blockcachectl open with Yield 0.
	if cfg.Yield > 0 {
		if before, after := cgopace.EnsureProcs(); after < cgopace.MinProcs {
			log.Logf("blockcache: GOMAXPROCS=%d from the environment: with one P, Go's monitor thread wakes every 20 µs under load (db-yield-ms cannot prevent it)", after)
		} else if after != before {
			log.Logf("blockcache: GOMAXPROCS raised from %d to %d, so that Go's monitor thread stays asleep between lookups", before, after)
		}
	}
	st, err := store.Open(ctx, store.Options{
		Path: cfg.DBFile, PollInterval: cfg.PollInterval, MmapSize: cfg.MmapSize, NoFilter: cfg.NoFilter, Logf: log.Logf,
	})
	if err != nil {
		return nil, err
	}
	c.Store = st
	c.closers = append(c.closers, st)
	var tiers []engine.Tier
	if cfg.LRUSize > 0 {
		if c.LRU, err = lrutier.New(cfg.LRUSize); err != nil {
			c.Close()
			return nil, err
		}
		c.LRU.Revalidate(st.StillValid)
		tiers = append(tiers, c.LRU)
	}
	if cfg.Valkey.Enabled() {
		if c.Valkey, err = valkeytier.New(cfg.Valkey, log.Logf); err != nil {
			c.Close()
			return nil, fmt.Errorf("valkey tier: %w", err)
		}
		c.closers = append([]io.Closer{c.Valkey}, c.closers...)
		c.Valkey.Revalidate(st.StillValid)
		tiers = append(tiers, c.Valkey)
	}
	c.Engine = engine.New(st, tiers...)
	if cfg.Metrics != "" {
		m, err := metrics.Start(cfg.Metrics, c.metricsSample)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Engine.SetLatencyObserver(m.Observe)
		c.closers = append([]io.Closer{m}, c.closers...)
	}
	return c, nil
}

// Answer is a verdict with the global defaults applied: what dnsmasq sends.
type Answer struct {
	engine.Result
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// Lookup answers one name. Errors are already counted by the engine;
// the answer is then Pass, so the query resolves normally.
func (c *Cache) Lookup(ctx context.Context, raw string) (Answer, error) {
	r, err := c.Engine.Lookup(ctx, raw)
	return c.resolve(r), err
}

func (c *Cache) resolve(r engine.Result) Answer {
	a := Answer{Result: r}
	if r.Verdict.Action == verdict.Block {
		a.IPv4, a.IPv6 = r.Verdict.IPv4, r.Verdict.IPv6
		if !a.IPv4.IsValid() {
			a.IPv4 = c.Config.BlockIPv4
		}
		if !a.IPv6.IsValid() {
			a.IPv6 = c.Config.BlockIPv6
		}
	}
	return a
}

// CNAME decides a forwarded reply whose CNAME chain reaches target. A
// tracker served under a first-party name (CNAME cloaking) shows up only
// here, so the reply is blocked when its target is, with the target's
// sinkhole addresses. A question that an allow or forward rule sent to its
// own server is left alone: the operator chose that server's answer for
// the name. Both names are looked up through the tiers, so a chain that
// recurs costs two cache hits. Each blocked reply is counted.
func (c *Cache) CNAME(ctx context.Context, question, target string) (Answer, bool) {
	a, blocked := c.cname(ctx, question, target)
	if blocked {
		c.cnameBlocks.Add(1)
	}
	return a, blocked
}

// CachedCNAME reports whether a CNAME that dnsmasq would answer from its
// own cache now leads to a blocked name: its target may have been listed
// since the reply was cached. dnsmasq then asks upstream instead, and the
// reply's CNAME check blocks and counts it, so this one is not counted.
func (c *Cache) CachedCNAME(ctx context.Context, question, target string) bool {
	_, blocked := c.cname(ctx, question, target)
	return blocked
}

// cnameAttempts bounds the lookups of a CNAME decision while the list
// keeps changing under it; past them the reply is let through, as before
// the check existed.
const cnameAttempts = 3

func (c *Cache) cname(ctx context.Context, question, target string) (Answer, bool) {
	if c.Config.NoCNAME {
		return Answer{}, false
	}
	// Both verdicts must be of one list version: a change that allows
	// the question and lists the target in one commit must not block
	// the reply on the old version's question and the new one's target.
	for range cnameAttempts {
		q, _ := c.Lookup(ctx, question)
		if q.Verdict.Action != verdict.Pass {
			return Answer{}, false
		}
		t, _ := c.Lookup(ctx, target)
		if t.NS != q.NS {
			continue
		}
		if t.Verdict.Action != verdict.Block {
			return Answer{}, false
		}
		return t, true
	}
	return Answer{}, false
}

// Explain resolves from SQLite, bypassing caches, and reports which tier
// would have answered now.
func (c *Cache) Explain(ctx context.Context, raw string) (Answer, error) {
	r, err := c.Engine.Explain(ctx, raw)
	return c.resolve(r), err
}

// Warm computes the verdicts of names and stores them in Valkey (and the
// LRU), for pre-loading the fleet's cache with e.g. yesterday's top names.
// It returns how many names were stored and how many were invalid.
func (c *Cache) Warm(ctx context.Context, names []string) (stored, invalid int, err error) {
	for _, n := range names {
		if ctx.Err() != nil {
			return stored, invalid, ctx.Err()
		}
		if _, err := c.Engine.Warm(ctx, n); err != nil {
			invalid++
			continue
		}
		stored++
	}
	if c.Valkey != nil {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := c.Valkey.Drain(fctx); err != nil {
			return stored, invalid, fmt.Errorf("flushing Valkey writes: %w", err)
		}
	}
	return stored, invalid, nil
}

// Flush empties the in-process cache and re-reads the list (SIGHUP).
func (c *Cache) Flush(ctx context.Context) error {
	c.Engine.Flush()
	return c.Store.Refresh(ctx)
}

// Close stops every tier; Valkey's pending writes get a short grace period.
func (c *Cache) Close() error {
	var first error
	for _, cl := range c.closers {
		if err := cl.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
