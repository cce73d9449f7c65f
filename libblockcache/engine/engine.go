// Package engine answers "what do we do with this name?" by asking cache
// tiers fastest first and the authoritative source last, writing a verdict
// found in a slower tier back to the faster ones. It knows nothing about
// which tiers exist: the LRU and Valkey are both just Tiers.
package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/name"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// Key addresses one cached verdict: a name under one list version.
type Key struct {
	NS   store.Namespace
	Name string
}

// Tier is a cache in front of the source. Get must be bounded in time by
// the tier itself (ctx carries no deadline on the hot path, to keep the
// in-process tier free of timer costs); Put must never block the caller.
type Tier interface {
	ID() verdict.Tier
	Get(ctx context.Context, k Key) (verdict.Verdict, bool)
	Put(k Key, v verdict.Verdict)
	Stats() TierStats
	Flush()
}

// Source computes verdicts; it is the last word.
type Source interface {
	Namespace() store.Namespace
	Resolve(ctx context.Context, n string) (verdict.Verdict, store.Namespace, error)
}

// TierStats are the counters every tier keeps.
type TierStats struct {
	Tier   verdict.Tier
	Hits   uint64
	Misses uint64
	Errors uint64
	Extra  map[string]uint64 // tier-specific counters (timeouts, dropped writes, ...)
}

// Result is one answered lookup. Verdict.Rule is set only when the source
// answered: cache tiers keep the decision, not the rule that made it.
type Result struct {
	Verdict verdict.Verdict
	Tier    verdict.Tier
	NS      store.Namespace
	Name    string // normalized
}

// Engine is safe for concurrent use.
type Engine struct {
	tiers []Tier
	src   Source

	lookups, invalid, srcErrors atomic.Uint64
	// answered counts lookups by action and by the tier that answered.
	answered [verdict.Forward + 1][verdict.TierSQLite + 1]atomic.Uint64
	// observe, when set, receives the latency of one lookup in
	// SampleEvery, with the tier that answered: sampling keeps the clock
	// reads off most lookups.
	observe func(verdict.Tier, time.Duration)
}

// SampleEvery is the latency sampling period of SetLatencyObserver.
const SampleEvery = 16

// SetLatencyObserver installs f (before lookups start).
func (e *Engine) SetLatencyObserver(f func(verdict.Tier, time.Duration)) { e.observe = f }

// New builds an engine; tiers are in the order they are asked.
func New(src Source, tiers ...Tier) *Engine {
	return &Engine{src: src, tiers: tiers}
}

// ErrInvalidName wraps name.Query's errors.
var ErrInvalidName = errors.New("invalid name")

// Lookup returns the verdict for a raw name in dnsmasq's form (name.Query).
// A name no DNS message can carry gets Pass and ErrInvalidName; a source
// failure gets Pass and the error, and is not cached, so dnsmasq fails open
// (resolves normally) rather than failing the query. raw may be a view of
// memory the caller reuses (the C export layer passes C memory): Lookup
// copies the name before any tier keeps it, and Result.Name is only valid
// as long as raw.
func (e *Engine) Lookup(ctx context.Context, raw string) (Result, error) {
	if e.observe != nil && e.lookups.Load()%SampleEvery == 0 {
		start := time.Now()
		r, err := e.lookup(ctx, raw)
		e.observe(r.Tier, time.Since(start))
		return r, err
	}
	return e.lookup(ctx, raw)
}

func (e *Engine) lookup(ctx context.Context, raw string) (Result, error) {
	e.lookups.Add(1)
	n, err := name.Query(raw)
	if err != nil {
		if errors.Is(err, name.ErrEmpty) { // the root ("." NS, say): no rule can list it
			return Result{NS: e.src.Namespace()}, nil
		}
		e.invalid.Add(1)
		return Result{NS: e.src.Namespace()}, fmt.Errorf("%w: %v", ErrInvalidName, err)
	}
	k := Key{NS: e.src.Namespace(), Name: n}
	for i, t := range e.tiers {
		if v, ok := t.Get(ctx, k); ok {
			if i > 0 {
				k.Name = strings.Clone(k.Name)
			}
			for _, faster := range e.tiers[:i] {
				faster.Put(k, v)
			}
			e.answered[v.Action][t.ID()].Add(1)
			return Result{Verdict: v, Tier: t.ID(), NS: k.NS, Name: n}, nil
		}
	}
	return e.resolve(ctx, n)
}

// SourceObserver is implemented by tiers that want the cost of each source
// lookup (valkey-read=auto compares it with its own).
type SourceObserver interface {
	ObserveSource(time.Duration)
}

// resolve asks the source and writes the verdict to every tier.
func (e *Engine) resolve(ctx context.Context, n string) (Result, error) {
	start := time.Now()
	v, ns, err := e.src.Resolve(ctx, n)
	if err != nil {
		e.srcErrors.Add(1)
		return Result{Name: n, NS: ns}, err
	}
	d := time.Since(start)
	k := Key{NS: ns, Name: strings.Clone(n)}
	for _, t := range e.tiers {
		if o, ok := t.(SourceObserver); ok {
			o.ObserveSource(d)
		}
		t.Put(k, v)
	}
	e.answered[v.Action][verdict.TierSQLite].Add(1)
	return Result{Verdict: v, Tier: verdict.TierSQLite, NS: ns, Name: n}, nil
}

// Warm computes a name's verdict from the source and stores it in every
// tier, skipping the reads; for pre-loading the shared cache.
func (e *Engine) Warm(ctx context.Context, raw string) (Result, error) {
	n, err := name.Query(raw)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrInvalidName, err)
	}
	return e.resolve(ctx, n)
}

// Explain resolves a name from the source, bypassing every cache, so that
// the rule that matched is known; used by tooling, never on the query path.
func (e *Engine) Explain(ctx context.Context, raw string) (Result, error) {
	n, err := name.Query(raw)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrInvalidName, err)
	}
	v, ns, err := e.src.Resolve(ctx, n)
	return Result{Verdict: v, Tier: verdict.TierSQLite, NS: ns, Name: n}, err
}

// Flush empties every cache tier that supports it (the LRU on SIGHUP).
func (e *Engine) Flush() {
	for _, t := range e.tiers {
		t.Flush()
	}
}

// Stats are the engine's counters and each tier's.
type Stats struct {
	Lookups, Invalid, SourceErrors uint64
	// Answered[action][tier]: lookups answered, by verdict and tier.
	Answered [verdict.Forward + 1][verdict.TierSQLite + 1]uint64
	Tiers    []TierStats
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	s := Stats{Lookups: e.lookups.Load(), Invalid: e.invalid.Load(), SourceErrors: e.srcErrors.Load()}
	for a := range e.answered {
		for t := range e.answered[a] {
			s.Answered[a][t] = e.answered[a][t].Load()
		}
	}
	for _, t := range e.tiers {
		s.Tiers = append(s.Tiers, t.Stats())
	}
	return s
}

// Tiers returns the configured tiers, fastest first.
func (e *Engine) Tiers() []Tier { return e.tiers }
