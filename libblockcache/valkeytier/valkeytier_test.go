package valkeytier_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/blockcache"
	"github.com/libblockcache/libblockcache/libblockcache/config"
	"github.com/libblockcache/libblockcache/libblockcache/engine"
	"github.com/libblockcache/libblockcache/libblockcache/ratelog"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytier"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// open starts a library instance on db with Valkey at srv and no LRU, so
// every lookup reaches the Valkey tier.
func open(t *testing.T, db string, sets ...string) *blockcache.Cache {
	t.Helper()
	return openB(t, db, sets...)
}

func openB(t testing.TB, db string, sets ...string) *blockcache.Cache {
	t.Helper()
	cfg := config.Default()
	cfg.DBFile = db
	cfg.LRUSize = 0
	cfg.PollInterval = 20 * time.Millisecond
	cfg.Valkey.CircuitOpen = 200 * time.Millisecond
	cfg.Valkey.Timeout = 50 * time.Millisecond // generous: CI machines are noisy
	for i := 0; i+1 < len(sets); i += 2 {
		if err := cfg.Set(sets[i], sets[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	c, err := blockcache.Open(context.Background(), cfg, ratelog.New(io.Discard, 100, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func withServer(s *valkeytest.Server, sets ...string) []string {
	return append([]string{"valkey-host", "127.0.0.1", "valkey-port", strconv.Itoa(s.Port)}, sets...)
}

func lookup(t *testing.T, c *blockcache.Cache, n string) blockcache.Answer {
	t.Helper()
	a, err := c.Lookup(context.Background(), n)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", n, err)
	}
	return a
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func written(c *blockcache.Cache) uint64 { return c.Valkey.Stats().Extra["written"] }

func TestHitMissWriteBackAndSharing(t *testing.T) {
	srv := valkeytest.Start(t)
	db, _ := testlist.New(t, testlist.Fixture...)
	a := open(t, db, withServer(srv)...)
	b := open(t, db, withServer(srv)...)
	for _, n := range []string{"x.tracker.net", "unlisted.example", "www.family.example"} {
		first := lookup(t, a, n)
		if first.Tier != verdict.TierSQLite {
			t.Fatalf("%s first answered by %v", n, first.Tier)
		}
	}
	waitFor(t, 2*time.Second, "write-back", func() bool { return written(a) == 3 })
	for _, n := range []string{"x.tracker.net", "unlisted.example", "www.family.example"} {
		want := lookup(t, a, n)
		got := lookup(t, b, n) // a different engine, same list: served from Valkey
		if got.Tier != verdict.TierValkey || got.Verdict != want.Verdict || got.IPv4 != want.IPv4 {
			t.Fatalf("%s from the other node: %+v, want %+v from valkey", n, got, want)
		}
	}
	if s := b.Valkey.Stats(); s.Hits != 3 || s.Misses != 0 {
		t.Fatalf("node b valkey stats %+v", s)
	}
	if n := srv.Do("DBSIZE"); n != "3" {
		t.Fatalf("%s keys in valkey, want 3", n)
	}
}

func TestTTL(t *testing.T) {
	srv := valkeytest.Start(t)
	db, _ := testlist.New(t, testlist.Fixture...)
	c := open(t, db, withServer(srv, "valkey-ttl", "1")...)
	lookup(t, c, "x.tracker.net")
	waitFor(t, 2*time.Second, "write-back", func() bool { return written(c) == 1 })
	key := c.Valkey.Key(engine.Key{NS: c.Store.Namespace(), Name: "x.tracker.net"})
	if ttl, _ := strconv.Atoi(srv.Do("PTTL", key)); ttl <= 0 || ttl > 1000 {
		t.Fatalf("PTTL %d, want 1..1000 ms", ttl)
	}
	waitFor(t, 3*time.Second, "expiry", func() bool { return srv.Do("EXISTS", key) == "0" })
	if a := lookup(t, c, "x.tracker.net"); a.Tier != verdict.TierSQLite {
		t.Fatalf("expired entry answered by %v", a.Tier)
	}
}

// A verdict a list change touched is never read at the new version, and
// two lists share nothing.
func TestVersionNamespacing(t *testing.T) {
	srv := valkeytest.Start(t)
	db, w := testlist.New(t, testlist.Fixture...)
	c := open(t, db, withServer(srv)...)
	if a := lookup(t, c, "soon.example"); a.Verdict.Action != verdict.Pass {
		t.Fatal(a)
	}
	waitFor(t, 2*time.Second, "write-back", func() bool { return written(c) == 1 })
	old := c.Store.Namespace()
	testlist.Exec(t, w, `INSERT INTO domain VALUES ('soon.example', NULL, NULL)`)
	waitFor(t, 2*time.Second, "version change", func() bool { return c.Store.Namespace() != old })
	if a := lookup(t, c, "soon.example"); a.Verdict.Action != verdict.Block || a.Tier != verdict.TierSQLite {
		t.Fatalf("after list change: %+v (the old version's pass must not be read)", a)
	}
	// Another list (its own list_id) shares nothing, even at equal versions.
	other, _ := testlist.New(t, testlist.Fixture...)
	d := open(t, other, withServer(srv)...)
	if a := lookup(t, d, "soon.example"); a.Tier != verdict.TierSQLite || a.Verdict.Action != verdict.Pass {
		t.Fatalf("other list read a foreign verdict: %+v", a)
	}
}

// A list change leaves the fleet's verdicts in Valkey: one the change did
// not touch answers at the new version, on any node, and the keys are the
// same (Valkey does not grow by a copy per version); one it touched is
// computed again and overwritten.
func TestVerdictsOutliveAListChange(t *testing.T) {
	srv := valkeytest.Start(t)
	db, w := testlist.New(t, testlist.Fixture...)
	a := open(t, db, withServer(srv)...)
	for _, n := range []string{"unlisted.example", "x.tracker.net", "soon.example"} {
		lookup(t, a, n)
	}
	waitFor(t, 2*time.Second, "write-back", func() bool { return written(a) == 3 })
	old := a.Store.Namespace()
	testlist.Exec(t, w, `INSERT INTO domain VALUES ('soon.example', NULL, NULL)`)
	b := open(t, db, withServer(srv)...) // a node that starts at the new version
	waitFor(t, 2*time.Second, "version change", func() bool { return a.Store.Namespace() != old })
	for _, c := range []*blockcache.Cache{a, b} {
		for n, want := range map[string]verdict.Action{"unlisted.example": verdict.Pass, "x.tracker.net": verdict.Block} {
			if got := lookup(t, c, n); got.Tier != verdict.TierValkey || got.Verdict.Action != want || got.NS != c.Store.Namespace() {
				t.Errorf("%s after an unrelated change: %v from %v under %v, want %v from valkey under %v", n, got.Verdict.Action, got.Tier, got.NS, want, c.Store.Namespace())
			}
		}
	}
	if s := a.Valkey.Stats(); s.Extra["revalidated"] != 2 {
		t.Errorf("node a revalidated %d values, want 2", s.Extra["revalidated"])
	}
	if got := lookup(t, b, "soon.example"); got.Tier != verdict.TierSQLite || got.Verdict.Action != verdict.Block {
		t.Fatalf("soon.example after it was listed: %v from %v", got.Verdict.Action, got.Tier)
	}
	if s := b.Valkey.Stats(); s.Extra["stale"] != 1 {
		t.Errorf("node b: %d stale values, want 1", s.Extra["stale"])
	}
	waitFor(t, 2*time.Second, "overwrite", func() bool { return written(b) == 1 })
	if got := lookup(t, a, "soon.example"); got.Tier != verdict.TierValkey || got.Verdict.Action != verdict.Block {
		t.Fatalf("soon.example on node a after node b wrote it: %v from %v", got.Verdict.Action, got.Tier)
	}
	if n := srv.Do("DBSIZE"); n != "3" {
		t.Fatalf("%s keys in valkey, want 3", n)
	}
}

// A node started on a backup put back in place, unforked, after the fleet
// cached verdicts of the versions the backup lost: the restored list
// numbers its next change as the lost one was, and the node never saw the
// list go back. It must not take the lost history's verdicts for its
// own, and still takes those of the versions the two histories share.
func TestRestoredCopyTakesNoVerdictOfTheLostHistory(t *testing.T) {
	srv := valkeytest.Start(t)
	db, w := testlist.New(t, testlist.Fixture...)
	backup := filepath.Join(t.TempDir(), "backup.db")
	testlist.Exec(t, w, "VACUUM INTO '"+backup+"'")
	a := open(t, db, withServer(srv)...)
	lookup(t, a, "unlisted.example") // cached before the two histories part
	waitFor(t, 2*time.Second, "write-back", func() bool { return written(a) == 1 })
	old := a.Store.Namespace()
	testlist.Exec(t, w, `INSERT INTO domain VALUES ('lost.example', NULL, NULL)`)
	waitFor(t, 2*time.Second, "version change", func() bool { return a.Store.Namespace() != old })
	if got := lookup(t, a, "www.lost.example"); got.Verdict.Action != verdict.Block {
		t.Fatalf("www.lost.example on the list that has it: %v", got.Verdict.Action)
	}
	waitFor(t, 2*time.Second, "write-back", func() bool { return written(a) == 2 })

	testlist.Exec(t, testlist.Open(t, backup), `INSERT INTO domain VALUES ('kept.example', NULL, NULL)`)
	b := open(t, backup, withServer(srv)...)
	if an, bn := a.Store.Namespace(), b.Store.Namespace(); an.ListID != bn.ListID || an.Version != bn.Version {
		t.Fatalf("the restored list is at %v, the lost one at %v: want one list at one version", bn, an)
	}
	if got := lookup(t, b, "www.lost.example"); got.Verdict.Action != verdict.Pass || got.Tier != verdict.TierSQLite {
		t.Errorf("www.lost.example on the restored list: %v from %v, want pass from sqlite", got.Verdict.Action, got.Tier)
	}
	if got := lookup(t, b, "unlisted.example"); got.Verdict.Action != verdict.Pass || got.Tier != verdict.TierValkey {
		t.Errorf("unlisted.example, cached before the histories parted: %v from %v, want pass from valkey", got.Verdict.Action, got.Tier)
	}
	if s := b.Valkey.Stats(); s.Extra["stale"] != 1 || s.Extra["revalidated"] != 1 {
		t.Errorf("restored node: %d stale values, %d revalidated; want 1 and 1", s.Extra["stale"], s.Extra["revalidated"])
	}
}

func TestCorruptValueIsAMiss(t *testing.T) {
	srv := valkeytest.Start(t)
	db, _ := testlist.New(t, testlist.Fixture...)
	c := open(t, db, withServer(srv)...)
	key := c.Valkey.Key(engine.Key{NS: c.Store.Namespace(), Name: "x.tracker.net"})
	srv.Do("SET", key, "\xff\xffgarbage")
	a := lookup(t, c, "x.tracker.net")
	if a.Tier != verdict.TierSQLite || a.Verdict.Action != verdict.Block {
		t.Fatalf("corrupt value trusted: %+v", a)
	}
	if got := c.Valkey.Stats().Extra["corrupt"]; got != 1 {
		t.Fatalf("corrupt counted %d", got)
	}
	// the write-back repairs it
	waitFor(t, 2*time.Second, "repair", func() bool { return written(c) == 1 })
	if a := lookup(t, c, "x.tracker.net"); a.Tier != verdict.TierValkey {
		t.Fatalf("after repair: %v", a.Tier)
	}
}

func TestAuth(t *testing.T) {
	srv := valkeytest.Start(t, "--requirepass", "s3cret")
	db, _ := testlist.New(t, testlist.Fixture...)
	good := open(t, db, withServer(srv, "valkey-password", "s3cret")...)
	if good.Valkey.CircuitOpen() {
		t.Fatal("right password: circuit open")
	}
	lookup(t, good, "x.tracker.net")
	waitFor(t, 2*time.Second, "write-back", func() bool { return written(good) == 1 })

	bad := open(t, db, withServer(srv, "valkey-password", "wrong")...)
	if !bad.Valkey.CircuitOpen() {
		t.Fatal("wrong password: circuit closed")
	}
	if a := lookup(t, bad, "x.tracker.net"); a.Tier != verdict.TierSQLite || a.Verdict.Action != verdict.Block {
		t.Fatalf("wrong password: %+v", a)
	}
	none := open(t, db, withServer(srv)...)
	if !none.Valkey.CircuitOpen() {
		t.Fatal("no password: circuit closed")
	}

	// ACL user
	srv.CLI("-a", "s3cret", "--no-auth-warning", "acl", "setuser", "dns", "on", ">pw", "~bc:*", "+get", "+set", "+ping", "+client", "+hello", "+select")
	acl := open(t, db, withServer(srv, "valkey-user", "dns", "valkey-password", "pw")...)
	if acl.Valkey.CircuitOpen() {
		t.Fatal("ACL user: circuit open")
	}
	if a := lookup(t, acl, "x.tracker.net"); a.Tier != verdict.TierValkey {
		t.Fatalf("ACL user did not read the shared verdict: %v", a.Tier)
	}
}

// A Valkey that answers but refuses the library's credentials is not
// "unreachable": the start line says what to fix.
func TestRefusalAtStartIsNamed(t *testing.T) {
	srv := valkeytest.Start(t, "--requirepass", "s3cret")
	startLine := func(sets ...string) string {
		cfg := config.Default()
		for i := 0; i+1 < len(sets); i += 2 {
			if err := cfg.Set(sets[i], sets[i+1]); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		var lines []string
		tier, err := valkeytier.New(cfg.Valkey, func(f string, a ...any) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, fmt.Sprintf(f, a...))
		})
		if err != nil {
			t.Fatal(err)
		}
		tier.Close()
		mu.Lock()
		defer mu.Unlock()
		if len(lines) == 0 {
			t.Fatalf("%v: nothing logged at start", sets)
		}
		return lines[0]
	}
	for _, c := range []struct {
		sets []string
		want string
	}{
		{withServer(srv), "NOAUTH"},
		{withServer(srv, "valkey-password", "wrong"), "WRONGPASS"},
	} {
		line := startLine(c.sets...)
		if !strings.Contains(line, "refused the library at start") || !strings.Contains(line, c.want) || !strings.Contains(line, "valkey-password") {
			t.Errorf("%v: %q", c.sets, line)
		}
	}
	nobody := startLine("valkey-host", "127.0.0.1", "valkey-port", strconv.Itoa(valkeytest.FreePort(t)))
	if !strings.Contains(nobody, "unreachable at start") {
		t.Errorf("no server: %q", nobody)
	}
}

func TestDownAtStartAndRecovery(t *testing.T) {
	port := valkeytest.FreePort(t)
	db, _ := testlist.New(t, testlist.Fixture...)
	c := open(t, db, "valkey-host", "127.0.0.1", "valkey-port", strconv.Itoa(port))
	if !c.Valkey.CircuitOpen() {
		t.Fatal("circuit closed with nothing listening")
	}
	if a := lookup(t, c, "x.tracker.net"); a.Verdict.Action != verdict.Block {
		t.Fatal(a)
	}
	valkeytest.StartOn(t, port)
	waitFor(t, 5*time.Second, "circuit closes", func() bool { return !c.Valkey.CircuitOpen() })
	lookup(t, c, "y.tracker.net")
	waitFor(t, 2*time.Second, "write-back", func() bool { return written(c) >= 1 })
}

// faultRun looks names up continuously while fault() breaks Valkey, and
// checks that every lookup succeeds with the right verdict and that no
// call waits much beyond the read deadline.
func faultRun(t *testing.T, c *blockcache.Cache, d time.Duration) (worst time.Duration, n int) {
	t.Helper()
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		name := "n" + strconv.Itoa(i%500) + ".tracker.net"
		start := time.Now()
		a := lookup(t, c, name)
		if el := time.Since(start); el > worst {
			worst = el
		}
		if a.Verdict.Action != verdict.Block {
			t.Fatalf("%s: %+v", name, a)
		}
		n++
	}
	return worst, n
}

func TestKillAndSIGSTOP(t *testing.T) {
	srv := valkeytest.Start(t)
	db, _ := testlist.New(t, testlist.Fixture...)
	c := open(t, db, withServer(srv)...)
	waitFor(t, 5*time.Second, "valkey hits while healthy", func() bool {
		faultRun(t, c, 100*time.Millisecond)
		return c.Valkey.Stats().Hits > 0
	})
	for _, fault := range []struct {
		name        string
		break_, fix func()
	}{
		{"kill", srv.Kill, srv.Restart},
		{"sigstop", srv.Stop, srv.Cont},
	} {
		fault.break_()
		worst, n := faultRun(t, c, 500*time.Millisecond)
		t.Logf("%s: %d lookups, worst %v", fault.name, n, worst)
		if !c.Valkey.CircuitOpen() {
			t.Fatalf("%s: circuit still closed", fault.name)
		}
		// Generous bound (the read deadline is 50ms here): a lookup
		// must never hang on a dead Valkey.
		if worst > time.Second {
			t.Fatalf("%s: a lookup took %v", fault.name, worst)
		}
		hits := c.Valkey.Stats().Hits
		fault.fix()
		waitFor(t, 5*time.Second, fault.name+": circuit closes", func() bool { return !c.Valkey.CircuitOpen() })
		waitFor(t, 5*time.Second, fault.name+": hits resume", func() bool {
			faultRun(t, c, 50*time.Millisecond)
			return c.Valkey.Stats().Hits > hits
		})
	}
}

func TestCluster(t *testing.T) {
	cl := valkeytest.StartCluster(t)
	db, _ := testlist.New(t, testlist.Fixture...)
	a := open(t, db, "valkey-cluster", cl.Seeds())
	b := open(t, db, "valkey-cluster", cl.Seeds())
	names := make([]string, 60)
	for i := range names {
		names[i] = "c" + strconv.Itoa(i) + ".tracker.net"
		lookup(t, a, names[i])
	}
	waitFor(t, 3*time.Second, "write-back", func() bool { return written(a) == uint64(len(names)) })
	for _, n := range names {
		if got := lookup(t, b, n); got.Tier != verdict.TierValkey {
			t.Fatalf("%s answered by %v in cluster mode", n, got.Tier)
		}
	}
	spread := 0
	for _, n := range cl.Nodes {
		if k, _ := strconv.Atoi(n.CLI("dbsize")); k > 0 {
			spread++
		}
	}
	if spread < 2 {
		t.Fatalf("keys on %d masters only", spread)
	}
	cl.Nodes[0].Kill()
	worst, n := faultRun(t, b, 500*time.Millisecond)
	t.Logf("one master down: %d lookups, worst %v", n, worst)
	if worst > time.Second {
		t.Fatalf("a lookup took %v with one master down", worst)
	}
}

func TestReadModes(t *testing.T) {
	srv := valkeytest.Start(t)
	db, _ := testlist.New(t, testlist.Fixture...)
	never := open(t, db, withServer(srv, "valkey-read", "never")...)
	lookup(t, never, "x.tracker.net")
	waitFor(t, 2*time.Second, "write-back in never mode", func() bool { return written(never) == 1 })
	if a := lookup(t, never, "x.tracker.net"); a.Tier != verdict.TierSQLite {
		t.Fatalf("never mode read valkey: %v", a.Tier)
	}

	auto := open(t, db, withServer(srv, "valkey-read", "auto")...)
	if a := lookup(t, auto, "x.tracker.net"); a.Tier != verdict.TierValkey {
		t.Fatalf("auto mode without measurements: %v", a.Tier)
	}
	// The choice itself is tested in auto_test.go with fixed measurements.
}

// A Valkey that refuses writes but answers reads (full with the noeviction
// policy, or a read-only replica) is still read: its refusals are counted
// and logged, but do not open the circuit that stops reads, which would
// flap with every probe.
func TestRefusedWritesKeepReads(t *testing.T) {
	srv := valkeytest.Start(t, "--maxmemory-policy", "noeviction")
	db, _ := testlist.New(t, testlist.Fixture...)
	c := open(t, db, withServer(srv)...)
	lookup(t, c, "x.tracker.net")
	waitFor(t, 2*time.Second, "write-back", func() bool { return written(c) == 1 })
	srv.Do("CONFIG", "SET", "maxmemory", "1") // every write is now refused with OOM
	// Writes alone, as from blockcachectl warm or a node with
	// valkey-read=never: no read in between resets the failure count.
	ns := c.Store.Namespace()
	for i := 0; i < 5; i++ { // a batch each, more than the circuit's 3 failures
		c.Valkey.Put(engine.Key{NS: ns, Name: fmt.Sprintf("u%d.unlisted.example", i)}, verdict.Verdict{Action: verdict.Pass})
		if err := c.Valkey.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Valkey.Stats().Extra["write_errors"]; got != 5 {
		t.Fatalf("%d write errors counted, want 5", got)
	}
	if line := c.Stats().String(); !strings.Contains(line, " write errors 5 ") {
		t.Errorf("the SIGUSR1 line lacks the write errors: %s", line)
	}
	if c.Valkey.CircuitOpen() {
		t.Fatal("refused writes opened the circuit")
	}
	if a := lookup(t, c, "x.tracker.net"); a.Tier != verdict.TierValkey {
		t.Fatalf("x.tracker.net answered by %v, want valkey: reads must go on", a.Tier)
	}
}
