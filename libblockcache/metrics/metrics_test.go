package metrics

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

func scrape(t *testing.T, s *Server) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

func TestScrapeReportsTheSample(t *testing.T) {
	var mu sync.Mutex // the sample is read on the server's goroutine
	calls := 0
	sample := Sample{
		Invalid: 3, ValkeyEnabled: true, ValkeyCircuit: true, ValkeyTimeouts: 5,
		TierHits: map[verdict.Tier]uint64{verdict.TierLRU: 11}, LRUEntries: 9, LRUEvictions: 16, LRUFlushed: 17,
		ListVersion: 42, ListStamp: 3735928559, ListVersioned: true, ListLoaded: time.Unix(1700000000, 0), ListReopens: 6, CNAMEBlocks: 9, RegexPatterns: 4, RegexSkipped: 2,
		ListDeltas: 12, Revalidated: map[verdict.Tier]uint64{verdict.TierLRU: 13, verdict.TierValkey: 14},
		FilterBuilds: 5, FilterLoads: 3, OddNames: 8, ValkeyWriteErrors: 15, Revision: "abc123", GoVersion: "go1.99",
	}
	sample.Answered[verdict.Block][verdict.TierLRU] = 7
	s, err := Start("127.0.0.1:0", func() Sample {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return sample
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Observe(verdict.TierSQLite, 3*time.Microsecond)

	out := scrape(t, s)
	for _, line := range []string{
		`blockcache_lookups_total{tier="lru",verdict="block"} 7`,
		`blockcache_lookups_total{tier="sqlite",verdict="pass"} 0`,
		`blockcache_invalid_names_total 3`,
		`blockcache_tier_hits_total{tier="lru"} 11`,
		`blockcache_valkey_circuit_open 1`,
		`blockcache_valkey_timeouts_total 5`,
		`blockcache_lru_entries 9`,
		`blockcache_lru_evictions_total 16`,
		`blockcache_lru_flushed_total 17`,
		`blockcache_list_version 42`,
		`blockcache_list_stamp 3.735928559e+09`,
		`blockcache_list_versioned 1`,
		`blockcache_list_file_replacements_total 6`,
		`blockcache_list_delta_reloads_total 12`,
		`blockcache_revalidated_total{tier="lru"} 13`,
		`blockcache_revalidated_total{tier="valkey"} 14`,
		`blockcache_cname_blocks_total 9`,
		`blockcache_filters_total{source="rows"} 2`,
		`blockcache_filters_total{source="saved"} 3`,
		`blockcache_list_loaded_timestamp_seconds 1.7e+09`,
		`blockcache_regex_patterns{state="skipped"} 2`,
		`blockcache_list_unmatchable_names 8`,
		`blockcache_valkey_write_errors_total 15`,
		`blockcache_build_info{goversion="go1.99",revision="abc123"} 1`,
		`blockcache_lookup_duration_seconds_bucket{tier="sqlite",le="5e-06"} 1`,
		`blockcache_lookup_duration_seconds_bucket{tier="sqlite",le="2e-06"} 0`,
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("missing %q", line)
		}
	}
	mu.Lock()
	if calls != 1 {
		t.Errorf("sample called %d times for one scrape", calls)
	}

	// Without Valkey its series are absent, not zero: a dashboard must not
	// read "circuit closed" on a node that has no Valkey.
	sample.ValkeyEnabled = false
	mu.Unlock()
	if out := scrape(t, s); strings.Contains(out, "blockcache_valkey_") {
		t.Error("valkey series reported with Valkey disabled")
	}
}

func TestStartFailsOnABusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if s, err := Start(l.Addr().String(), func() Sample { return Sample{} }); err == nil {
		s.Close()
		t.Fatal("started on a port in use")
	} else if !strings.Contains(err.Error(), "metrics endpoint") {
		t.Errorf("error %q does not say what failed", err)
	}
}

func TestCloseStopsServing(t *testing.T) {
	s, err := Start("127.0.0.1:0", func() Sample { return Sample{} })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", s.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("still accepting connections after Close")
	}
}
