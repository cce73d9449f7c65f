package blockcache

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/config"
	"github.com/libblockcache/libblockcache/libblockcache/ratelog"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// open opens a Cache on the list at path (tests and benchmarks).
func open(t testing.TB, path string, edit func(*config.Config)) *Cache {
	t.Helper()
	cfg := config.Default()
	cfg.DBFile = path
	// The watcher must not be what makes a change visible in these tests:
	// Flush must.
	cfg.PollInterval = time.Minute
	if edit != nil {
		edit(&cfg)
	}
	c, err := Open(context.Background(), cfg, ratelog.New(io.Discard, 100, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// What dnsmasq sends: a rule's own address wins, the global sinkhole fills
// in the family the rule leaves empty, and only Block carries addresses.
func TestAnswerAddresses(t *testing.T) {
	path, _ := testlist.New(t, testlist.Fixture...)
	g4, g6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	c := open(t, path, func(cfg *config.Config) { cfg.BlockIPv4, cfg.BlockIPv6 = g4, g6 })
	cases := []struct {
		name     string
		action   verdict.Action
		ip4, ip6 netip.Addr
		server   string
	}{
		{"exact.example", verdict.Block, g4, g6, ""},
		{"ip.exact.example", verdict.Block, netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("fd00::9"), ""},
		{"x.deep.tracker.net", verdict.Block, netip.MustParseAddr("10.0.0.2"), g6, ""},
		{"www.family.example", verdict.Forward, netip.Addr{}, netip.Addr{}, "1.1.1.3"},
		{"unlisted.example", verdict.Pass, netip.Addr{}, netip.Addr{}, ""},
	}
	for _, tc := range cases {
		// twice: from SQLite, then from the LRU, with the same answer
		for _, tier := range []verdict.Tier{verdict.TierSQLite, verdict.TierLRU} {
			a, err := c.Lookup(context.Background(), tc.name)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if a.Verdict.Action != tc.action || a.IPv4 != tc.ip4 || a.IPv6 != tc.ip6 || a.Verdict.Server != tc.server || a.Tier != tier {
				t.Errorf("%s: %v %v %v %q from %v, want %v %v %v %q from %v", tc.name,
					a.Verdict.Action, a.IPv4, a.IPv6, a.Verdict.Server, a.Tier, tc.action, tc.ip4, tc.ip6, tc.server, tier)
			}
		}
	}
}

// With the global sinkhole for a family turned off, a rule without an
// address of that family has none: dnsmasq then answers NODATA/NXDOMAIN.
func TestNoGlobalSinkhole(t *testing.T) {
	path, _ := testlist.New(t, testlist.Fixture...)
	c := open(t, path, func(cfg *config.Config) { cfg.BlockIPv6 = netip.Addr{} })
	a, err := c.Lookup(context.Background(), "exact.example")
	if err != nil {
		t.Fatal(err)
	}
	if a.IPv4 != netip.IPv4Unspecified() || a.IPv6.IsValid() {
		t.Errorf("got %v / %v, want 0.0.0.0 and no IPv6", a.IPv4, a.IPv6)
	}
}

// SIGHUP: Flush empties the LRU and reads the list at once, without
// waiting for the watcher.
func TestFlushSeesAListChangeAtOnce(t *testing.T) {
	path, db := testlist.New(t, testlist.Fixture...)
	c := open(t, path, nil)
	ctx := context.Background()
	if a, _ := c.Lookup(ctx, "new.example"); a.Verdict.Action != verdict.Pass {
		t.Fatalf("new.example before the change: %v", a.Verdict.Action)
	}
	testlist.Exec(t, db, `INSERT INTO domain_exact VALUES ('new.example', NULL, NULL)`)
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := c.LRU.Len(); n != 0 {
		t.Errorf("LRU holds %d verdicts after Flush", n)
	}
	a, err := c.Lookup(ctx, "new.example")
	if err != nil || a.Verdict.Action != verdict.Block || a.Tier != verdict.TierSQLite {
		t.Errorf("new.example after the change and Flush: %v from %v (%v)", a.Verdict.Action, a.Tier, err)
	}
}

// Listing a name keeps every cached verdict the change did not touch: they
// answer from the LRU under the new version, and only names under the new
// entry are looked up again.
func TestListChangeKeepsUntouchedVerdicts(t *testing.T) {
	path, db := testlist.New(t, testlist.Fixture...)
	c := open(t, path, nil)
	ctx := context.Background()
	want := map[string]verdict.Action{"unrelated.org": verdict.Pass, "a.tracker.net": verdict.Block, "www.new.example": verdict.Pass}
	for n, action := range want {
		if a, _ := c.Lookup(ctx, n); a.Verdict.Action != action {
			t.Fatalf("%s before the change: %v", n, a.Verdict.Action)
		}
	}
	testlist.Exec(t, db, `INSERT INTO domain VALUES ('new.example', NULL, NULL)`)
	if err := c.Store.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	want["www.new.example"] = verdict.Block
	tiers := map[string]verdict.Tier{"unrelated.org": verdict.TierLRU, "a.tracker.net": verdict.TierLRU, "www.new.example": verdict.TierSQLite}
	for n, action := range want {
		a, err := c.Lookup(ctx, n)
		if err != nil || a.Verdict.Action != action || a.Tier != tiers[n] || a.NS != c.Store.Namespace() {
			t.Errorf("%s after the change: %v from %v under %v (%v), want %v from %v under %v", n, a.Verdict.Action, a.Tier, a.NS, err, action, tiers[n], c.Store.Namespace())
		}
	}
	s := c.Stats()
	if s.LRURevalidated != 2 || s.Store.Deltas != 1 {
		t.Errorf("revalidated %d, deltas %d; want 2 and 1", s.LRURevalidated, s.Store.Deltas)
	}
	if line := s.String(); !strings.Contains(line, fmt.Sprintf("list %s (stamp %08x, ", s.Store.Namespace, s.Store.Namespace.Stamp)) || !strings.Contains(line, "1 from the change log") || !strings.Contains(line, "revalidated 2") {
		t.Errorf("stats line: %s", line)
	}
}

// A published copy of the same list replacing the file keeps the cached
// verdicts its change log vouches for.
func TestPublishedCopyKeepsUntouchedVerdicts(t *testing.T) {
	master, w := testlist.New(t, testlist.Fixture...)
	live := filepath.Join(t.TempDir(), "live.db")
	ctx := context.Background()
	if _, _, err := store.Publish(ctx, master, live); err != nil {
		t.Fatal(err)
	}
	c := open(t, live, nil)
	for _, n := range []string{"unrelated.org", "www.new.example"} {
		if a, _ := c.Lookup(ctx, n); a.Verdict.Action != verdict.Pass {
			t.Fatalf("%s before: %v", n, a.Verdict.Action)
		}
	}
	testlist.Exec(t, w, `INSERT INTO domain VALUES ('new.example', NULL, NULL)`)
	if _, _, err := store.Publish(ctx, master, live); err != nil {
		t.Fatal(err)
	}
	if err := c.Store.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Store.Reopens != 1 {
		t.Fatalf("file not switched: %+v", s.Store)
	}
	if a, _ := c.Lookup(ctx, "unrelated.org"); a.Tier != verdict.TierLRU || a.NS != c.Store.Namespace() {
		t.Errorf("unrelated.org after the copy: from %v under %v", a.Tier, a.NS)
	}
	if a, _ := c.Lookup(ctx, "www.new.example"); a.Tier != verdict.TierSQLite || a.Verdict.Action != verdict.Block {
		t.Errorf("www.new.example after the copy: %v from %v", a.Verdict.Action, a.Tier)
	}
}

func TestWithoutLRUEveryLookupAsksSQLite(t *testing.T) {
	path, _ := testlist.New(t, testlist.Fixture...)
	c := open(t, path, func(cfg *config.Config) { cfg.LRUSize = 0 })
	if c.LRU != nil {
		t.Fatal("an LRU with db-lru-size=0")
	}
	for range 2 {
		if a, _ := c.Lookup(context.Background(), "exact.example"); a.Tier != verdict.TierSQLite || a.Verdict.Action != verdict.Block {
			t.Errorf("got %v from %v", a.Verdict.Action, a.Tier)
		}
	}
}

// A bad name is answered Pass with an error, so dnsmasq resolves it as
// usual; it is never cached.
func TestInvalidNamePasses(t *testing.T) {
	path, _ := testlist.New(t, testlist.Fixture...)
	c := open(t, path, nil)
	a, err := c.Lookup(context.Background(), strings.Repeat("a", 64)+".example")
	if err == nil || a.Verdict.Action != verdict.Pass {
		t.Errorf("64-byte label: %v, %v", a.Verdict.Action, err)
	}
	if n := c.LRU.Len(); n != 0 {
		t.Errorf("%d verdicts cached for an invalid name", n)
	}
}

// A reply is blocked for its CNAME target only when the question itself
// was let through: an allow or forward rule for the question outranks the
// chain, and db-cname=off turns the check off.
func TestCNAME(t *testing.T) {
	path, _ := testlist.New(t, testlist.Fixture...)
	c := open(t, path, nil)
	ctx := context.Background()
	cases := []struct {
		question, target string
		blocked          bool
		ipv4             string
	}{
		{"metrics.news.example", "x.deep.tracker.net", true, "10.0.0.2"}, // the target's own address
		{"www.shop.example", "exact.example", true, "0.0.0.0"},
		{"www.shop.example", "edge.cdn.example", false, ""},
		{"www.shop.example", "sub.exact.example", false, ""}, // exact is exact
		{"allowed.tracker.net", "x.tracker.net", false, ""},  // dns_allow for the question
		{"www.family.example", "x.tracker.net", false, ""},   // dns_block for the question
		{"x.tracker.net", "y.tracker.net", false, ""},        // blocked questions never get a reply
	}
	for _, tc := range cases {
		a, blocked := c.CNAME(ctx, tc.question, tc.target)
		if blocked != tc.blocked || blocked && (a.Verdict.Action != verdict.Block || a.IPv4.String() != tc.ipv4) {
			t.Errorf("CNAME(%s -> %s) = %v %+v, want blocked %v %s", tc.question, tc.target, blocked, a, tc.blocked, tc.ipv4)
		}
	}
	if got := c.Stats().CNAMEBlocks; got != 2 {
		t.Errorf("CNAMEBlocks = %d, want 2", got)
	}
	// The recheck of a cached chain decides alike and is not counted: the
	// reply that follows is.
	if !c.CachedCNAME(ctx, "metrics.news.example", "x.tracker.net") || c.CachedCNAME(ctx, "allowed.tracker.net", "x.tracker.net") {
		t.Error("CachedCNAME does not decide as CNAME")
	}
	if got := c.Stats().CNAMEBlocks; got != 2 {
		t.Errorf("CNAMEBlocks = %d after CachedCNAME, want 2", got)
	}
	if !strings.Contains(c.Stats().String(), "cname blocks 2") {
		t.Errorf("stats line lacks the count: %s", c.Stats())
	}
	off := open(t, path, func(cfg *config.Config) { cfg.NoCNAME = true })
	if _, blocked := off.CNAME(ctx, "metrics.news.example", "x.tracker.net"); blocked || off.CachedCNAME(ctx, "metrics.news.example", "x.tracker.net") {
		t.Error("db-cname=off still blocks")
	}
}

// A reply's CNAME decision takes the question's verdict and the target's
// from one list version. The list switches back and forth, in single
// commits, between "neither listed" and "the question allowed, the target
// blocked": under either version no reply is blocked, and a decision that
// read the question before a switch and the target after it would block.
func TestCNAMEDecidesOnOneVersion(t *testing.T) {
	path, db := testlist.New(t)
	c := open(t, path, func(cfg *config.Config) { cfg.PollInterval = time.Millisecond })
	ctx := context.Background()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for on := true; ; on = !on {
			select {
			case <-stop:
				return
			default:
			}
			if on {
				testlist.Exec(t, db, `BEGIN; INSERT INTO domain_dns_allow VALUES ('www.shop.example', '#'); INSERT INTO domain VALUES ('tracker.example', NULL, NULL); COMMIT`)
			} else {
				testlist.Exec(t, db, `BEGIN; DELETE FROM domain_dns_allow; DELETE FROM domain; COMMIT`)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	blocked, calls := 0, 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); calls++ {
		if _, b := c.CNAME(ctx, "www.shop.example", "cdn.tracker.example"); b {
			blocked++
		}
	}
	close(stop)
	<-done
	st := c.Stats()
	t.Logf("%d decisions, %d blocked; %d reloads", calls, blocked, st.Store.Reloads)
	if blocked > 0 {
		t.Errorf("%d of %d replies blocked on verdicts of two list versions", blocked, calls)
	}
	if st.Store.Reloads < 50 {
		t.Errorf("only %d reloads: the list did not switch often enough to test this", st.Store.Reloads)
	}
}

func TestOpenFailsClearly(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.db")
	cfg := config.Default()
	cfg.DBFile = missing
	_, err := Open(context.Background(), cfg, ratelog.New(io.Discard, 100, time.Minute))
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing DB: %v, want an error naming %s", err, missing)
	}
	if _, err := Open(context.Background(), config.Default(), ratelog.New(io.Discard, 100, time.Minute)); err == nil {
		t.Error("no db-file: opened")
	}
}
