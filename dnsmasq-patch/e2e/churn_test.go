package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
)

// history is what the list said about each churned name over time, so
// that an answer can be checked against the states the name had while the
// query was in flight.
type history struct {
	mu      sync.Mutex
	changes map[string][]change
}

// change is one write: the name's state is listed from some moment in
// [begin, end] (the commit) on.
type change struct {
	begin, end time.Time
	listed     bool
}

// start notes, before a write, that the name will be listed (or not) from
// some moment after begin on. Until done is called the old state may
// still hold: a node can see a commit before the writer's goroutine runs
// again, and an answer must not be checked against a history that lacks
// the change it reflects.
func (h *history) start(name string, begin time.Time, listed bool) (done func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := len(h.changes[name])
	h.changes[name] = append(h.changes[name], change{begin, begin.Add(time.Hour), listed})
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.changes[name][i].end = time.Now()
	}
}

// couldBe reports whether the name was listed (or not, by want) at some
// moment in [from, to]. Each state holds from its write's begin until the
// next write's end, the widest the commits allow.
func (h *history) couldBe(name string, want bool, from, to time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := h.changes[name]
	listed, since := false, time.Time{} // unlisted before its first write
	for _, c := range cs {
		if listed == want && !since.After(to) && !c.end.Before(from) {
			return true
		}
		listed, since = c.listed, c.begin
	}
	return listed == want && !since.After(to)
}

// last describes the name's last n changes, for a failure message.
func (h *history) last(name string, n int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := h.changes[name]
	var out []string
	for _, c := range cs[max(0, len(cs)-n):] {
		out = append(out, fmt.Sprintf("listed=%v from %s-%s", c.listed, c.begin.Format("15:04:05.000"), c.end.Format("15:04:05.000")))
	}
	return strings.Join(out, ", ")
}

// soakFor is how long TestListChurnWithFailures runs: a few seconds in
// the suite, longer by hand (BLOCKCACHE_SOAK=10m).
func soakFor(t *testing.T) time.Duration {
	s := os.Getenv("BLOCKCACHE_SOAK")
	if s == "" {
		return 12 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("BLOCKCACHE_SOAK=%q: %v", s, err)
	}
	return d
}

// The list changes dozens of times a second, in single rows and in bulk,
// while two nodes sharing a Valkey answer over UDP and TCP, Valkey is
// killed, frozen and restarted, and dnsmasq reloads. Every answer must be
// a state the name had in the list between 2 s before its query and its
// answer (a change is seen within the poll interval, and no tier serves a
// verdict the list never gave), and both nodes must stay up without
// leaking memory or file descriptors.
//
// The changes are written to the nodes' file, or, as a fleet ships lists,
// to a master that is published over the nodes' file after every 40 of
// them, so that the nodes also switch files under load.
func TestListChurnWithFailures(t *testing.T) {
	t.Run("writes", func(t *testing.T) { churn(t, false) })
	t.Run("publish", func(t *testing.T) { churn(t, true) })
}

func churn(t *testing.T, publish bool) {
	run := soakFor(t)
	srv := valkeytest.Start(t)
	up := startUpstream(t, "192.0.2.1")
	db, w := list(t, startUpstream(t, "198.51.100.7"))
	live := db
	if publish {
		live = filepath.Join(t.TempDir(), "list.db")
		if _, _, err := store.Publish(context.Background(), db, live); err != nil {
			t.Fatal(err)
		}
	}
	vk := []string{"--valkey-host=127.0.0.1", "--valkey-port=" + strconv.Itoa(srv.Port), "--valkey-timeout-ms=20"}
	// The first node keeps every verdict in its LRU for the whole run; the
	// second keeps a few and reads the rest from Valkey.
	nodes := []*daemon{startDnsmasq(t, opts{db: live, upstream: up, extra: vk}), startDnsmasq(t, opts{db: live, upstream: up, extra: append(vk, "--db-lru-size=32")})}
	fds, rss := make([]int, len(nodes)), make([]int, len(nodes))
	for i, d := range nodes {
		fds[i], rss[i] = openFDs(t, d.pid), d.rssKiB(t)
	}

	const names = 256
	h := &history{changes: map[string][]change{}}
	churned := func(i int) string { return fmt.Sprintf("c%d.churn.test", i) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes, published atomic.Int64

	wg.Add(1)
	go func() { // the writer: one name at a time, and now and then a bulk change
		defer wg.Done()
		listed, shipped := make([]bool, names), make([]bool, names)
		rng := rand.New(rand.NewPCG(1, 2))
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rng.IntN(20)) * time.Millisecond):
			}
			if n%200 == 199 {
				bulk := "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 2000) INSERT OR IGNORE INTO domain SELECT 'f' || v || '.filler.test', NULL, NULL FROM s"
				if n%400 == 399 {
					bulk = "DELETE FROM domain WHERE Domain LIKE '%.filler.test'"
				}
				if _, err := w.Exec(bulk); err != nil {
					t.Errorf("%s: %v", bulk, err)
					return
				}
				writes.Add(1)
				continue
			}
			i := rng.IntN(names)
			stmt := fmt.Sprintf("INSERT INTO domain VALUES ('%s', NULL, NULL)", churned(i))
			if listed[i] {
				stmt = fmt.Sprintf("DELETE FROM domain WHERE Domain = '%s'", churned(i))
			}
			done := func() {}
			if !publish {
				done = h.start(churned(i), time.Now(), !listed[i])
			}
			if _, err := w.Exec(stmt); err != nil {
				t.Errorf("%s: %v", stmt, err)
				return
			}
			done()
			listed[i] = !listed[i]
			writes.Add(1)
			if !publish || n%40 != 39 {
				continue
			}
			var dones []func()
			for i := range listed {
				if listed[i] != shipped[i] {
					dones = append(dones, h.start(churned(i), time.Now(), listed[i]))
					shipped[i] = listed[i]
				}
			}
			if _, _, err := store.Publish(context.Background(), db, live); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			for _, done := range dones {
				done()
			}
			published.Add(1)
		}
	}()

	var asked, blocked, passed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	fail := func(s string) {
		failMu.Lock()
		defer failMu.Unlock()
		failures = append(failures, s)
	}
	for _, d := range nodes {
		for _, network := range []string{"udp", "tcp"} {
			wg.Add(1)
			go func() { // a client
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(d.port), uint64(len(network))))
				for {
					select {
					case <-stop:
						return
					default:
					}
					base := churned(rng.IntN(names))
					q := base
					if rng.IntN(2) == 0 {
						q = "www." + base // the rows are in domain: subdomains too
					}
					start := time.Now()
					r, err := d.query(t, network, q, dns.TypeA)
					end := time.Now()
					asked.Add(1)
					if err != nil {
						fail(fmt.Sprintf("%s %s on port %d: %v", network, q, d.port, err))
						continue
					}
					var listed bool
					switch got := summary(r); got {
					case "NOERROR A 0.0.0.0 EDE 15":
						listed = true
						blocked.Add(1)
					case "NOERROR A 192.0.2.1":
						passed.Add(1)
					default:
						fail(fmt.Sprintf("%s %s on port %d: %s", network, q, d.port, got))
						continue
					}
					if !h.couldBe(base, listed, start.Add(-2*time.Second), end) {
						fail(fmt.Sprintf("%s %s on port %d at %s (+%v): listed=%v, a state the list did not have in the 2 s before (%s)", network, q, d.port, start.Format("15:04:05.000"), end.Sub(start), listed, h.last(base, 3)))
					}
				}
			}()
		}
	}

	// Failures, in turn, until the time is up.
	deadline := time.Now().Add(run)
	for step := 0; time.Now().Before(deadline); step++ {
		time.Sleep(700 * time.Millisecond)
		switch step % 4 {
		case 0:
			srv.Kill()
			time.Sleep(500 * time.Millisecond)
			srv.Restart()
		case 1:
			srv.Stop()
			time.Sleep(300 * time.Millisecond)
			srv.Cont()
		case 2:
			syscall.Kill(nodes[0].pid, syscall.SIGHUP)
		case 3:
			syscall.Kill(nodes[1].pid, syscall.SIGUSR1)
		}
	}
	close(stop)
	wg.Wait()

	for _, f := range failures[:min(len(failures), 20)] {
		t.Error(f)
	}
	if len(failures) > 0 {
		for i, d := range nodes {
			var said []string
			for _, l := range strings.Split(d.logText(), "\n") {
				if strings.Contains(l, "blockcache: ") {
					said = append(said, l)
				}
			}
			t.Logf("node %d answers on port %d; the library said:\n%s", i, d.port, strings.Join(said, "\n"))
		}
		t.Fatalf("%d of %d answers wrong or missing", len(failures), asked.Load())
	}
	t.Logf("%d list changes (%d publications), %d queries: %d blocked, %d resolved", writes.Load(), published.Load(), asked.Load(), blocked.Load(), passed.Load())
	if writes.Load() < 100 || blocked.Load() < 100 || passed.Load() < 100 {
		t.Fatalf("too little happened to tell: %d changes, %d blocked, %d resolved", writes.Load(), blocked.Load(), passed.Load())
	}
	nodes[0].waitLog(t, time.Second, "valkey circuit open")
	if publish { // counted, not read from the log: the library's log lines are rate-limited
		syscall.Kill(nodes[1].pid, syscall.SIGUSR1)
		line := nodes[1].waitLog(t, 2*time.Second, "file replacements")
		var stamp uint32
		var reloads, replaced int
		fmt.Sscanf(line[strings.Index(line, "("):], "(stamp %x, %d reloads, 0 from the change log, %d file replacements", &stamp, &reloads, &replaced)
		if replaced < int(published.Load())/2 {
			t.Errorf("node b switched files %d times for %d publications: %s", replaced, published.Load(), line)
		}
	}
	// The second node read verdicts from the shared Valkey.
	if hits, line := nodes[1].valkeyHits(t, 1); hits < 1 {
		t.Fatalf("node b served nothing from valkey: %s", line)
	}
	for i, d := range nodes {
		if err := syscall.Kill(d.pid, 0); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if n := openFDs(t, d.pid); n > fds[i]+8 {
			t.Errorf("node %d has %d open files, %d after start", i, n, fds[i])
		}
		// The list holds at most ~2,300 names: what grows past that leaks.
		// Under a sanitizer RSS is its allocator's (scripts/test-sanitized.sh).
		if n := d.rssKiB(t); n > rss[i]+64<<10 && os.Getenv("BLOCKCACHE_SANITIZED") == "" {
			t.Errorf("node %d: RSS %d KiB, %d after start", i, n, rss[i])
		} else {
			t.Logf("node %d: RSS %d KiB, %d after start; %d open files", i, n, rss[i], openFDs(t, d.pid))
		}
		for _, bad := range []string{"panic", "fatal error", "SIGSEGV"} {
			if strings.Contains(d.logText(), bad) {
				t.Errorf("node %d logged %q:\n%s", i, bad, d.logText())
			}
		}
	}
}

func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
