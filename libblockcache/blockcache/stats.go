package blockcache

import (
	"fmt"

	"github.com/libblockcache/libblockcache/libblockcache/metrics"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"

	"github.com/libblockcache/libblockcache/libblockcache/store"
)

// Stats flattens the engine's and tiers' counters into the fields the C
// ABI and the log line expose.
type Stats struct {
	Lookups, Invalid, SourceErrors               uint64
	CNAMEBlocks                                  uint64 // replies blocked for a CNAME target
	LRUHits, LRUMisses, LRUEntries, LRUEvictions uint64
	LRUFlushed                                   uint64 // dropped by a flush (SIGHUP), not evictions
	LRURevalidated                               uint64 // stale entries a list change did not touch, kept
	ValkeyEnabled, ValkeyCircuitOpen             bool
	ValkeyHits, ValkeyMisses, ValkeyErrors       uint64
	ValkeyTimeouts, ValkeyDropped, ValkeyCorrupt uint64
	ValkeyWriteErrors                            uint64 // writes Valkey refused or that failed on the way
	ValkeyRevalidated                            uint64 // values of an older list version a change did not touch, used
	Store                                        store.Stats
	Answered                                     [verdict.Forward + 1][verdict.TierSQLite + 1]uint64 // by action, tier
	Build                                        Build
}

// Stats returns a snapshot of every counter.
func (c *Cache) Stats() Stats {
	es := c.Engine.Stats()
	s := Stats{Lookups: es.Lookups, Invalid: es.Invalid, SourceErrors: es.SourceErrors, Store: c.Store.Stats(), Answered: es.Answered,
		CNAMEBlocks: c.cnameBlocks.Load(), Build: c.build}
	if c.LRU != nil {
		ts := c.LRU.Stats()
		s.LRUHits, s.LRUMisses = ts.Hits, ts.Misses
		s.LRUEntries, s.LRUEvictions, s.LRUFlushed = ts.Extra["entries"], ts.Extra["evictions"], ts.Extra["flushed"]
		s.LRURevalidated = ts.Extra["revalidated"]
	}
	if c.Valkey != nil {
		ts := c.Valkey.Stats()
		s.ValkeyEnabled, s.ValkeyCircuitOpen = true, c.Valkey.CircuitOpen()
		s.ValkeyHits, s.ValkeyMisses, s.ValkeyErrors = ts.Hits, ts.Misses, ts.Errors
		s.ValkeyTimeouts, s.ValkeyDropped, s.ValkeyCorrupt = ts.Extra["timeouts"], ts.Extra["dropped_writes"], ts.Extra["corrupt"]
		s.ValkeyWriteErrors = ts.Extra["write_errors"]
		s.ValkeyRevalidated = ts.Extra["revalidated"]
	}
	return s
}

// String is the one-line form dnsmasq logs on SIGUSR1.
func (s Stats) String() string {
	line := fmt.Sprintf("blockcache: list %s (stamp %08x, %d reloads, %d from the change log, %d file replacements, %d regex, %d skipped); lookups %d, invalid %d, errors %d, cname blocks %d; lru hits %d misses %d entries %d evictions %d flushed %d revalidated %d; sqlite lookups %d errors %d; filter %d KiB, %d lookups skipped SQL",
		s.Store.Namespace, s.Store.Namespace.Stamp, s.Store.Reloads, s.Store.Deltas, s.Store.Reopens, s.Store.RegexPatterns, s.Store.RegexSkipped,
		s.Lookups, s.Invalid, s.SourceErrors, s.CNAMEBlocks, s.LRUHits, s.LRUMisses, s.LRUEntries, s.LRUEvictions, s.LRUFlushed, s.LRURevalidated,
		s.Store.Lookups, s.Store.Errors, s.Store.FilterBytes>>10, s.Store.FilterSkips)
	if s.ValkeyEnabled {
		state := "closed"
		if s.ValkeyCircuitOpen {
			state = "open"
		}
		line += fmt.Sprintf("; valkey hits %d (revalidated %d) misses %d errors %d timeouts %d dropped %d write errors %d corrupt %d circuit %s",
			s.ValkeyHits, s.ValkeyRevalidated, s.ValkeyMisses, s.ValkeyErrors, s.ValkeyTimeouts, s.ValkeyDropped, s.ValkeyWriteErrors, s.ValkeyCorrupt, state)
	}
	if s.Build.Revision != "" {
		line += "; " + s.Build.String()
	}
	return line
}

// metricsSample feeds a Prometheus scrape.
func (c *Cache) metricsSample() metrics.Sample {
	s := c.Stats()
	m := metrics.Sample{
		Answered: s.Answered, Invalid: s.Invalid, Errors: s.SourceErrors, CNAMEBlocks: s.CNAMEBlocks,
		TierHits:      map[verdict.Tier]uint64{verdict.TierLRU: s.LRUHits},
		TierMisses:    map[verdict.Tier]uint64{verdict.TierLRU: s.LRUMisses},
		ValkeyEnabled: s.ValkeyEnabled, ValkeyErrors: s.ValkeyErrors, ValkeyTimeouts: s.ValkeyTimeouts,
		ValkeyDropped: s.ValkeyDropped, ValkeyCorrupt: s.ValkeyCorrupt, ValkeyCircuit: s.ValkeyCircuitOpen,
		ValkeyWriteErrors: s.ValkeyWriteErrors,
		LRUEntries:        s.LRUEntries, LRUEvictions: s.LRUEvictions, LRUFlushed: s.LRUFlushed,
		ListVersion: s.Store.Namespace.Version, ListStamp: s.Store.Namespace.Stamp, ListVersioned: s.Store.HasMeta, ListLoaded: s.Store.LoadedAt, ListReloads: s.Store.Reloads, ListReopens: s.Store.Reopens,
		ListDeltas: s.Store.Deltas, Revalidated: map[verdict.Tier]uint64{verdict.TierLRU: s.LRURevalidated},
		FilterSkips: s.Store.FilterSkips, FilterBytes: s.Store.FilterBytes,
		FilterBuilds: s.Store.FilterBuilds, FilterLoads: s.Store.FilterLoads,
		RegexPatterns: s.Store.RegexPatterns, RegexSkipped: s.Store.RegexSkipped,
		OddNames: s.Store.OddNames,
		Revision: s.Build.Revision, GoVersion: s.Build.GoVersion,
	}
	if s.ValkeyEnabled {
		m.TierHits[verdict.TierValkey], m.TierMisses[verdict.TierValkey] = s.ValkeyHits, s.ValkeyMisses
		m.Revalidated[verdict.TierValkey] = s.ValkeyRevalidated
	}
	return m
}
