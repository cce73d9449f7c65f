// Package metrics serves the library's counters to Prometheus from its own
// goroutines: nothing is computed on the lookup path beyond the counters
// the tiers keep anyway and a latency sample of one lookup in sixteen.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// Sample is what a scrape reports; the caller fills it from its counters.
type Sample struct {
	Answered          [verdict.Forward + 1][verdict.TierSQLite + 1]uint64
	Invalid, Errors   uint64
	TierHits          map[verdict.Tier]uint64
	TierMisses        map[verdict.Tier]uint64
	ValkeyEnabled     bool
	ValkeyErrors      uint64
	ValkeyTimeouts    uint64
	ValkeyDropped     uint64
	ValkeyWriteErrors uint64
	ValkeyCorrupt     uint64
	ValkeyCircuit     bool
	LRUEntries        uint64
	LRUEvictions      uint64
	LRUFlushed        uint64
	ListVersion       uint64
	ListStamp         uint32
	ListVersioned     bool
	ListLoaded        time.Time
	ListReloads       uint64
	ListReopens       uint64
	ListDeltas        uint64
	Revalidated       map[verdict.Tier]uint64
	CNAMEBlocks       uint64
	FilterSkips       uint64
	FilterBytes       int64
	FilterBuilds      uint64 // put in use, from the rows or loaded as saved
	FilterLoads       uint64 // of those, loaded as saved
	RegexPatterns     int
	RegexSkipped      int
	OddNames          int64  // listed names no query can match
	Revision          string // of the library's source, for blockcache_build_info
	GoVersion         string
}

// Server is a running endpoint.
type Server struct {
	srv     *http.Server
	l       net.Listener
	latency *prometheus.HistogramVec
}

// Start listens on addr and serves /metrics. sample is called on every scrape.
func Start(addr string, sample func() Sample) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	reg := prometheus.NewRegistry()
	s := &Server{
		l: l,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "blockcache_lookup_duration_seconds",
			Help:    "Latency of a sample of lookups (one in 16), by the tier that answered.",
			Buckets: []float64{250e-9, 500e-9, 1e-6, 2e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3},
		}, []string{"tier"}),
	}
	reg.MustRegister(s.latency, &collector{sample: sample}, collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener is gone; nothing else to do from here
		}
	}()
	return s, nil
}

// Addr is where the endpoint listens: with port 0 in the option, the port
// the kernel chose.
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// Observe records one sampled lookup latency.
func (s *Server) Observe(t verdict.Tier, d time.Duration) {
	s.latency.WithLabelValues(t.String()).Observe(d.Seconds())
}

// Close stops the endpoint. It closes the listener itself: Shutdown
// alone misses it when Serve's goroutine has not started yet, and the port
// would stay open after Close returned.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if cerr := s.l.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
		err = fmt.Errorf("metrics endpoint: %w", cerr)
	}
	return err
}

var (
	descLookups  = prometheus.NewDesc("blockcache_lookups_total", "Lookups answered, by verdict and by the tier that answered.", []string{"verdict", "tier"}, nil)
	descInvalid  = prometheus.NewDesc("blockcache_invalid_names_total", "Names no DNS message can carry (answered pass).", nil, nil)
	descCNAME    = prometheus.NewDesc("blockcache_cname_blocks_total", "Forwarded replies blocked because their CNAME chain reached a blocked name.", nil, nil)
	descErrors   = prometheus.NewDesc("blockcache_lookup_errors_total", "Lookups that failed in SQLite (answered pass).", nil, nil)
	descHits     = prometheus.NewDesc("blockcache_tier_hits_total", "Cache tier hits.", []string{"tier"}, nil)
	descMisses   = prometheus.NewDesc("blockcache_tier_misses_total", "Cache tier misses.", []string{"tier"}, nil)
	descVErrors  = prometheus.NewDesc("blockcache_valkey_errors_total", "Valkey read errors other than timeouts.", nil, nil)
	descVTimeout = prometheus.NewDesc("blockcache_valkey_timeouts_total", "Valkey reads that hit valkey-timeout-ms.", nil, nil)
	descVDropped = prometheus.NewDesc("blockcache_valkey_dropped_writes_total", "Valkey writes dropped (queue full or circuit open).", nil, nil)
	descVWErrors = prometheus.NewDesc("blockcache_valkey_write_errors_total", "Valkey writes refused (a full Valkey under noeviction, a read-only replica) or failed on the way.", nil, nil)
	descVCorrupt = prometheus.NewDesc("blockcache_valkey_corrupt_values_total", "Valkey values that did not decode (treated as misses).", nil, nil)
	descVCircuit = prometheus.NewDesc("blockcache_valkey_circuit_open", "1 while Valkey is skipped after consecutive failures.", nil, nil)
	descLRU      = prometheus.NewDesc("blockcache_lru_entries", "Verdicts in the in-process cache.", nil, nil)
	descEvict    = prometheus.NewDesc("blockcache_lru_evictions_total", "Verdicts evicted from the in-process cache to make room: a steady rate means db-lru-size is too small.", nil, nil)
	descFlushed  = prometheus.NewDesc("blockcache_lru_flushed_total", "Verdicts dropped from the in-process cache by a flush (dnsmasq's SIGHUP), not counted as evictions.", nil, nil)
	descVersion  = prometheus.NewDesc("blockcache_list_version", "Version of the blocklist lookups are answered from.", nil, nil)
	descStamp    = prometheus.NewDesc("blockcache_list_stamp", "Random stamp of that version (0: the list has none): nodes at one version with different stamps run two histories of the list (a restored backup, a copy edited on its own), and share only the verdicts of the versions they have in common.", nil, nil)
	descVersnd   = prometheus.NewDesc("blockcache_list_versioned", "1 when the list carries its own version (blockcache_meta and the version triggers); 0 when it is read without one (made by another tool and never initialized, or a tool dropped its triggers: blockcachectl init mends both), so that nothing is kept across changes or shared through Valkey.", nil, nil)
	descLoaded   = prometheus.NewDesc("blockcache_list_loaded_timestamp_seconds", "When that version was loaded.", nil, nil)
	descReloads  = prometheus.NewDesc("blockcache_list_reloads_total", "List versions loaded.", nil, nil)
	descReopens  = prometheus.NewDesc("blockcache_list_file_replacements_total", "New list files (renamed over db-file, or a flipped symlink) switched to.", nil, nil)
	descDeltas   = prometheus.NewDesc("blockcache_list_delta_reloads_total", "List versions read as logged changes: the filter grew by their names and untouched cached verdicts were kept.", nil, nil)
	descReval    = prometheus.NewDesc("blockcache_revalidated_total", "Cached verdicts of an older list version used because no logged change since touched their name.", []string{"tier"}, nil)
	descSkips    = prometheus.NewDesc("blockcache_filter_skips_total", "Lookups the membership filter answered without SQL.", nil, nil)
	descFilter   = prometheus.NewDesc("blockcache_filter_bytes", "Memory of the membership filter (0 while it is being built).", nil, nil)
	descFReady   = prometheus.NewDesc("blockcache_filters_total", "Membership filters put in use, by source: read from every row (slow on large lists: lookups use SQL meanwhile) or loaded as saved by blockcachectl filter.", []string{"source"}, nil)
	descRegex    = prometheus.NewDesc("blockcache_regex_patterns", "Regex patterns in use, and skipped because they do not compile.", []string{"state"}, nil)
	descOdd      = prometheus.NewDesc("blockcache_list_unmatchable_names", "Listed names no query can match (upper case, a trailing dot, a wildcard, Unicode), as the last read of every name found; 0 when a saved filter was loaded instead. blockcachectl init rewrites them.", nil, nil)
	descBuild    = prometheus.NewDesc("blockcache_build_info", "Always 1; its labels name the library's build, to tell which one each node of a fleet runs.", []string{"revision", "goversion"}, nil)
)

type collector struct{ sample func() Sample }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLookups, descInvalid, descErrors, descHits, descMisses, descVErrors, descVTimeout,
		descVDropped, descVWErrors, descVCorrupt, descVCircuit, descLRU, descEvict, descFlushed, descVersion, descStamp, descVersnd, descLoaded, descReloads, descReopens, descDeltas, descReval, descSkips, descFilter, descFReady, descRegex, descCNAME, descOdd, descBuild} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.sample()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for a := verdict.Pass; a <= verdict.Forward; a++ {
		for t := verdict.TierLRU; t <= verdict.TierSQLite; t++ {
			counter(descLookups, s.Answered[a][t], a.String(), t.String())
		}
	}
	gauge(descBuild, 1, s.Revision, s.GoVersion)
	gauge(descOdd, float64(s.OddNames))
	counter(descInvalid, s.Invalid)
	counter(descErrors, s.Errors)
	for t, v := range s.TierHits {
		counter(descHits, v, t.String())
	}
	for t, v := range s.TierMisses {
		counter(descMisses, v, t.String())
	}
	if s.ValkeyEnabled {
		counter(descVErrors, s.ValkeyErrors)
		counter(descVTimeout, s.ValkeyTimeouts)
		counter(descVDropped, s.ValkeyDropped)
		counter(descVWErrors, s.ValkeyWriteErrors)
		counter(descVCorrupt, s.ValkeyCorrupt)
		open := 0.0
		if s.ValkeyCircuit {
			open = 1
		}
		gauge(descVCircuit, open)
	}
	gauge(descLRU, float64(s.LRUEntries))
	counter(descEvict, s.LRUEvictions)
	counter(descFlushed, s.LRUFlushed)
	gauge(descVersion, float64(s.ListVersion))
	gauge(descStamp, float64(s.ListStamp))
	versioned := 0.0
	if s.ListVersioned {
		versioned = 1
	}
	gauge(descVersnd, versioned)
	gauge(descLoaded, float64(s.ListLoaded.UnixNano())/1e9)
	counter(descReloads, s.ListReloads)
	counter(descReopens, s.ListReopens)
	counter(descDeltas, s.ListDeltas)
	for t, v := range s.Revalidated {
		counter(descReval, v, t.String())
	}
	counter(descCNAME, s.CNAMEBlocks)
	counter(descSkips, s.FilterSkips)
	gauge(descFilter, float64(s.FilterBytes))
	counter(descFReady, s.FilterBuilds-s.FilterLoads, "rows")
	counter(descFReady, s.FilterLoads, "saved")
	gauge(descRegex, float64(s.RegexPatterns), "active")
	gauge(descRegex, float64(s.RegexSkipped), "skipped")
}
