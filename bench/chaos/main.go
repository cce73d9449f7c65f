// Command chaos drives a DNS server at a fixed query rate for a fixed time,
// checks every answer against the expected verdict, and runs a timeline of
// faults meanwhile (Valkey killed, restarted, SIGSTOPped; a live import of
// new names; a copy of the list renamed over the live file). It reports
// lost and wrong answers (losses by the second they were sent), RSS over
// time and how long newly imported names took to be blocked. Used by
// bench/chaos.sh.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

func main() {
	server := flag.String("server", "127.0.0.1:53", "DNS server under test")
	rate := flag.Int("rate", 0, "queries per second (0: measure the maximum for 5 s and use -load of it)")
	load := flag.Float64("load", 0.8, "share of the measured maximum to run at")
	secs := flag.Int("seconds", 60, "duration")
	listed := flag.Int("listed", 1000000, "rows d<i>.bench.example in the list")
	pid := flag.Int("pid", 0, "dnsmasq pid, for RSS")
	killCmd := flag.String("valkey-kill", "", "shell command that kills Valkey")
	startCmd := flag.String("valkey-start", "", "shell command that starts Valkey again and prints its pid")
	importCmd := flag.String("import", "", "shell command that imports n<i>.chaos.example, i < -new")
	newNames := flag.Int("new", 100000, "names the import adds")
	publishCmd := flag.String("publish", "", "shell command that renames a copy of the list over the live file (same rules, so every verdict stays the same)")
	flag.Parse()

	c := &checker{server: *server, listed: *listed, newNames: *newNames}
	if *rate == 0 {
		max := c.maxRate(5 * time.Second)
		*rate = int(float64(max) * *load)
		fmt.Printf("measured maximum %d qps; running at %d qps (%.0f%%)\n", max, *rate, *load*100)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.run(*rate, stop) }()
	start := time.Now()
	at := func(s int) { time.Sleep(time.Until(start.Add(time.Duration(s) * time.Second))) }
	go func() { // RSS every second
		for range time.Tick(time.Second) {
			if *pid != 0 {
				c.rss = append(c.rss, rssMiB(*pid))
			}
		}
	}()
	if *killCmd != "" { // kill, restart, then freeze the restarted Valkey
		at(10)
		fmt.Printf("%5.1fs valkey killed\n", time.Since(start).Seconds())
		sh(*killCmd)
		at(15)
		out := sh(*startCmd)
		vpid, _ := strconv.Atoi(strings.TrimSpace(out))
		fmt.Printf("%5.1fs valkey restarted (pid %d)\n", time.Since(start).Seconds(), vpid)
		at(25)
		syscall.Kill(vpid, syscall.SIGSTOP)
		fmt.Printf("%5.1fs valkey SIGSTOP\n", time.Since(start).Seconds())
		at(32)
		syscall.Kill(vpid, syscall.SIGCONT)
		fmt.Printf("%5.1fs valkey SIGCONT\n", time.Since(start).Seconds())
	}
	if *importCmd != "" {
		at(40)
		t0 := time.Since(start)
		c.importStart.Store(int64(t0))
		sh(*importCmd)
		c.committed.Store(int64(time.Since(start)))
		fmt.Printf("%5.1fs import of %d names started, committed at %.1fs\n", t0.Seconds(), *newNames, time.Since(start).Seconds())
	}
	if *publishCmd != "" {
		at(50)
		fmt.Printf("%5.1fs a copy of the list published over the live file\n", time.Since(start).Seconds())
		sh(*publishCmd)
	}
	at(*secs)
	close(stop)
	wg.Wait()
	c.report(start)
}

func sh(cmd string) string {
	out, err := exec.Command("bash", "-c", cmd).Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %s: %v\n", cmd, err)
	}
	return string(out)
}

func rssMiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n / 1024
		}
	}
	return 0
}

type checker struct {
	server           string
	listed, newNames int
	sent, recv, lost atomic.Int64
	lostAt           [600]atomic.Int64 // losses by the second their query was sent
	wrong            atomic.Int64
	wrongKinds       sync.Map
	importStart      atomic.Int64 // ns since start when the import began
	committed        atomic.Int64 // ns since start when the import command returned (after its commit)
	lastUnblocked    atomic.Int64 // ns since start of the last new name answered unblocked after commit
	rss              []int
	seq              atomic.Uint64
	started          time.Time
}

// name returns the i-th query and whether it is a listed, unlisted or new name.
func (c *checker) name(i uint64) (string, string) {
	switch i % 10 {
	case 0, 1:
		return fmt.Sprintf("d%d.bench.example.", (i*2654435761)%uint64(c.listed)), "listed"
	case 2:
		return fmt.Sprintf("n%d.chaos.example.", (i*40503)%uint64(c.newNames)), "new"
	default:
		return fmt.Sprintf("u%d.site%d.example.", (i*2246822519)%200000, i%1000), "unlisted"
	}
}

func (c *checker) check(kind string, r *dns.Msg, at time.Duration) {
	blocked := false
	ok := r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1
	if ok {
		if a, isA := r.Answer[0].(*dns.A); isA {
			blocked = a.A.Equal(net.IPv4zero)
			ok = blocked || a.A.Equal(net.ParseIP("192.0.2.1"))
		} else {
			ok = false
		}
	}
	committed := time.Duration(c.committed.Load())
	begun := c.importStart.Load() != 0 && at >= time.Duration(c.importStart.Load())
	switch {
	case !ok:
		c.bad("malformed")
	case kind == "listed" && !blocked:
		c.bad("listed not blocked")
	case kind == "unlisted" && blocked:
		c.bad("unlisted blocked")
	case kind == "new" && !begun && blocked:
		c.bad("new name blocked before its import")
	case kind == "new" && committed == 0:
		// the import is running; it commits at a moment in this window
	case kind == "new" && committed != 0 && !blocked:
		if at > committed+2*time.Second {
			c.bad("new name not blocked 2 s after commit")
		}
		for {
			old := c.lastUnblocked.Load()
			if int64(at) <= old || c.lastUnblocked.CompareAndSwap(old, int64(at)) {
				break
			}
		}
	}
}

func (c *checker) loss(sentAt time.Duration) {
	c.lost.Add(1)
	c.lostAt[min(int(sentAt/time.Second), len(c.lostAt)-1)].Add(1)
}

func (c *checker) bad(kind string) {
	c.wrong.Add(1)
	v, _ := c.wrongKinds.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// dial opens one client socket to the server under test.
func (c *checker) dial() *dns.Conn {
	conn, err := net.Dial("udp", c.server)
	if err != nil {
		panic(err)
	}
	return &dns.Conn{Conn: conn}
}

// run sends at rate from several sockets; each query waits up to 1 s.
func (c *checker) run(rate int, stop chan struct{}) {
	c.started = time.Now()
	const workers = 64
	per := time.Duration(float64(time.Second) * workers / float64(rate))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			co := c.dial()
			defer co.Close()
			next := time.Now().Add(time.Duration(w) * per / workers)
			for {
				select {
				case <-stop:
					return
				default:
				}
				time.Sleep(time.Until(next))
				next = next.Add(per)
				i := c.seq.Add(1)
				n, kind := c.name(i)
				m := new(dns.Msg)
				m.SetQuestion(n, dns.TypeA)
				c.sent.Add(1)
				sentAt := time.Since(c.started)
				co.SetDeadline(time.Now().Add(time.Second))
				if err := co.WriteMsg(m); err != nil {
					c.loss(sentAt)
					continue
				}
				r, err := co.ReadMsg()
				for err == nil && r.Id != m.Id { // a late answer to an earlier query
					r, err = co.ReadMsg()
				}
				if err != nil {
					c.loss(sentAt)
					continue
				}
				c.recv.Add(1)
				c.check(kind, r, time.Since(c.started))
			}
		}(w)
	}
	wg.Wait()
}

// maxRate runs closed-loop, 64 clients on their own sockets, and returns
// answers per second.
func (c *checker) maxRate(d time.Duration) int {
	var n atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			co := c.dial()
			defer co.Close()
			for i := w; time.Now().Before(stop); i += 64 {
				name, _ := c.name(uint64(i))
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeA)
				co.SetDeadline(time.Now().Add(time.Second))
				if co.WriteMsg(m) != nil {
					continue
				}
				if r, err := co.ReadMsg(); err == nil && r.Id == m.Id {
					n.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	return int(float64(n.Load()) / d.Seconds())
}

func (c *checker) report(start time.Time) {
	fmt.Printf("sent %d, answered %d, lost %d (%.3f%%), wrong %d\n", c.sent.Load(), c.recv.Load(), c.lost.Load(),
		100*float64(c.lost.Load())/float64(max(1, c.sent.Load())), c.wrong.Load())
	if c.lost.Load() > 0 {
		var by []string
		for i := range c.lostAt {
			if n := c.lostAt[i].Load(); n > 0 {
				by = append(by, fmt.Sprintf("%ds: %d", i, n))
			}
		}
		fmt.Printf("  lost by the second the query was sent: %s\n", strings.Join(by, ", "))
	}
	c.wrongKinds.Range(func(k, v any) bool {
		fmt.Printf("  wrong: %s: %d\n", k, v.(*atomic.Int64).Load())
		return true
	})
	if cm := c.committed.Load(); cm != 0 {
		lu := c.lastUnblocked.Load()
		if lu < cm {
			fmt.Printf("new names blocked from the first query after the import command returned (its commit lies between %.1f s and %.1f s)\n",
				time.Duration(c.importStart.Load()).Seconds(), time.Duration(cm).Seconds())
		} else {
			fmt.Printf("last new name answered unblocked %.3f s after the import command returned\n", time.Duration(lu-cm).Seconds())
		}
	}
	if len(c.rss) > 0 {
		fmt.Printf("RSS MiB per second: %v\n", c.rss)
	}
}
