// Package e2e tests the patched dnsmasq as operators run it: a real
// process, real UDP and TCP queries, a real SQLite list, a real Valkey and
// small local upstream servers.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
)

// buildDir holds build/dnsmasq and build/libblockcache.so (make dnsmasq lib).
func buildDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("BLOCKCACHE_BUILD")
	if dir == "" {
		dir, _ = filepath.Abs("../../build")
	}
	for _, f := range []string{"dnsmasq", "libblockcache.so"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s/%s missing: run `make lib dnsmasq` first (or set BLOCKCACHE_BUILD)", dir, f)
		}
	}
	return dir
}

// upstream is a tiny authoritative-for-everything DNS server that answers
// A with its own address and records what it was asked.
type upstream struct {
	port  int
	a     net.IP
	mu    sync.Mutex
	asked map[string]int
	cname map[string]string // owner -> target, both FQDNs; answered as a chain
}

func startUpstream(t testing.TB, a string) *upstream {
	t.Helper()
	u := &upstream{a: net.ParseIP(a), asked: map[string]int{}, cname: map[string]string{}}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if o := r.IsEdns0(); o != nil { // as real servers do; dnsmasq's EDE rides on it
			m.SetEdns0(o.UDPSize(), o.Do())
		}
		q := r.Question[0]
		owner := q.Name
		u.mu.Lock()
		u.asked[strings.ToLower(q.Name)]++
		for i := 0; i < 8 && u.cname[owner] != ""; i++ {
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300}, Target: u.cname[owner]})
			owner = u.cname[owner]
		}
		u.mu.Unlock()
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: u.a})
		case dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 300}, AAAA: net.ParseIP("2001:db8::53")})
		case dns.TypeTXT:
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: []string{"upstream " + u.a.String()}})
		}
		w.WriteMsg(m)
	})
	u.port = serveUDPAndTCP(t, h)
	return u
}

// serveUDPAndTCP serves h on one loopback port over UDP and TCP, as
// upstream servers do, until the test ends, and returns the port.
func serveUDPAndTCP(t testing.TB, h dns.Handler) int {
	t.Helper()
	var pc net.PacketConn
	var l net.Listener
	for try := 0; ; try++ { // retry when the TCP side is taken
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatal(err)
		}
	}
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		go s.ActivateAndServe()
		t.Cleanup(func() { s.Shutdown() })
	}
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// chain makes the upstream answer name with a CNAME chain through targets.
func (u *upstream) chain(name string, targets ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, t := range targets {
		u.cname[dns.Fqdn(name)] = dns.Fqdn(t)
		name = t
	}
}

func (u *upstream) count(name string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.asked[dns.Fqdn(strings.ToLower(name))]
}

// daemon is one patched dnsmasq process.
type daemon struct {
	t       testing.TB
	port    int
	cmd     *exec.Cmd
	log     string
	pidFile string
	pid     int
}

type opts struct {
	db       string
	extra    []string
	upstream *upstream
	filter   *upstream // the server of forward rules, configured for a private domain only
	daemon   bool      // daemonize (no -k): TCP children fork either way
	dir      string    // working directory of the starting process
	prefix   []string  // a command that runs dnsmasq, e.g. taskset
	port     int       // the port to try first instead of a free one
}

// startDnsmasq runs build/dnsmasq on a free loopback port and waits until
// it answers. A port is free when freeUDPPort finds it so, not
// necessarily when dnsmasq binds it a moment later (another process may
// take it in between; a dnsmasq's own random source ports are drawn from
// the same range): then it starts again on another port.
func startDnsmasq(t testing.TB, o opts) *daemon {
	t.Helper()
	for attempt := 1; ; attempt++ {
		d, err := tryStartDnsmasq(t, o)
		o.port = 0
		if err == nil {
			return d
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("%v; starting again on another port", err)
	}
}

var errPortTaken = errors.New("dnsmasq's port was taken")

func tryStartDnsmasq(t testing.TB, o opts) (*daemon, error) {
	t.Helper()
	dir := t.TempDir()
	port := o.port
	if port == 0 {
		port = freeUDPPort(t)
	}
	d := &daemon{t: t, port: port, log: filepath.Join(dir, "dnsmasq.log"), pidFile: filepath.Join(dir, "dnsmasq.pid")}
	args := d.args(t, o)
	if !o.daemon {
		args = append(args, "-k")
	}
	argv := append(append(o.prefix[:len(o.prefix):len(o.prefix)], filepath.Join(buildDir(t), "dnsmasq")), args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Dir = o.dir
	stderr := filepath.Join(dir, "stderr")
	out, _ := os.Create(stderr)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	failed := func(what string, err error) (*daemon, error) {
		d.stop()
		e, _ := os.ReadFile(stderr)
		if bytes.Contains(e, []byte("Address already in use")) {
			return nil, fmt.Errorf("%w (port %d): %s", errPortTaken, d.port, bytes.TrimSpace(e))
		}
		return nil, fmt.Errorf("dnsmasq %s: %v\nstderr:\n%s\nlog:\n%s", what, err, e, d.logText())
	}
	if o.daemon {
		if err := d.cmd.Wait(); err != nil {
			return failed("did not start", err)
		}
		b, err := os.ReadFile(d.pidFile)
		if err != nil {
			t.Fatal(err)
		}
		d.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	} else {
		d.pid = d.cmd.Process.Pid
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if !d.alive() {
			return failed("exited", fmt.Errorf("pid %d is gone", d.pid))
		}
		// Alive after an answer too: the answer was this dnsmasq's.
		_, err := d.query(t, "udp", "startup.probe.invalid", dns.TypeA)
		if !d.alive() {
			return failed("exited", fmt.Errorf("pid %d is gone", d.pid))
		}
		if err == nil {
			t.Cleanup(d.stop)
			t.Cleanup(func() { d.report(stderr) }) // runs first
			return d, nil
		}
		if time.Now().After(deadline) {
			return failed("not answering after 10s", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// report shows, when the test has failed, whether its dnsmasq still ran
// and the end of its stderr and log: a CI failure then says whether the
// server had died, and of what.
func (d *daemon) report(stderr string) {
	if !d.t.Failed() {
		return
	}
	tail := func(s string) string {
		lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
		return strings.Join(lines[max(0, len(lines)-40):], "\n")
	}
	e, _ := os.ReadFile(stderr)
	d.t.Logf("dnsmasq on port %d (pid %d): alive %v\nstderr (end):\n%s\nlog (end):\n%s", d.port, d.pid, d.alive(), tail(string(e)), tail(d.logText()))
}

// alive tells whether the dnsmasq process still runs. A dead child of the
// test is a zombie until it is waited for, which kill(pid, 0) takes for
// alive.
func (d *daemon) alive() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func (d *daemon) args(t testing.TB, o opts) []string {
	b := buildDir(t)
	args := []string{
		"--port=" + strconv.Itoa(d.port), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--no-resolv", "--no-hosts", "--log-queries", "--log-facility=" + d.log,
		"--pid-file=" + d.pidFile, "--cache-size=1000",
	}
	if o.upstream != nil {
		args = append(args, fmt.Sprintf("--server=127.0.0.1#%d", o.upstream.port))
	}
	if o.filter != nil {
		args = append(args, fmt.Sprintf("--server=/filter.invalid/127.0.0.1#%d", o.filter.port))
	}
	if o.db != "" {
		args = append(args, "--db-file="+o.db, "--db-poll-ms=50")
	}
	// dnsmasq refuses an option given twice on its command line.
	user, lib := "--user=root", "--blockcache-library="+filepath.Join(b, "libblockcache.so")
	for _, e := range o.extra {
		if strings.HasPrefix(e, "--user=") {
			user = ""
		}
		if strings.HasPrefix(e, "--blockcache-library=") {
			lib = ""
		}
	}
	for _, a := range []string{user, lib} {
		if a != "" {
			args = append(args, a)
		}
	}
	return append(args, o.extra...)
}

func (d *daemon) stop() {
	if d.pid > 0 {
		syscall.Kill(d.pid, syscall.SIGTERM)
		deadline := time.Now().Add(5 * time.Second)
		for syscall.Kill(d.pid, 0) == nil && time.Now().Before(deadline) {
			if d.cmd.ProcessState == nil && d.cmd.Process.Pid == d.pid {
				d.cmd.Wait()
			}
			time.Sleep(20 * time.Millisecond)
		}
		syscall.Kill(d.pid, syscall.SIGKILL)
		d.pid = 0
	}
}

// question is the query the tests send: one question, with EDNS.
func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	return m
}

func (d *daemon) query(t testing.TB, network, name string, qtype uint16) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(question(name, qtype), fmt.Sprintf("127.0.0.1:%d", d.port))
	return r, err
}

func (d *daemon) mustQuery(t testing.TB, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r, err := d.query(t, network, name, qtype)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return r
}

// waitAnswer asks name's A record over UDP every 20 ms until the answer's
// summary is want, failing the test after within, and returns how long it
// took. after names the event being waited on, for the failure message.
func (d *daemon) waitAnswer(t testing.TB, within time.Duration, name, want, after string) time.Duration {
	t.Helper()
	start := time.Now()
	for summary(d.mustQuery(t, "udp", name, dns.TypeA)) != want {
		if time.Since(start) > within {
			t.Fatalf("%s: not %q %v after %s", name, want, within, after)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// waitLog waits up to within for a log line containing every part and
// returns the latest such line.
func (d *daemon) waitLog(t testing.TB, within time.Duration, parts ...string) string {
	t.Helper()
	return d.waitLogN(t, within, 1, parts...)
}

// waitLogN waits until at least n log lines contain every part.
func (d *daemon) waitLogN(t testing.TB, within time.Duration, n int, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var last string
		found := 0
		if f, err := os.Open(d.log); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				ok := true
				for _, p := range parts {
					if !strings.Contains(sc.Text(), p) {
						ok = false
						break
					}
				}
				if ok {
					found++
					last = sc.Text()
				}
			}
			f.Close()
		}
		if found >= n {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d log lines with %q within %v; log:\n%s", n, parts, within, d.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) logText() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// versionText is what `dnsmasq --version` prints for the build under test.
func versionText(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(buildDir(t), "dnsmasq"), "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func (d *daemon) rssKiB(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := valkeytest.FreePort(t)
		if pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			pc.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// list builds the test blocklist; forward rules point at filter.
func list(t testing.TB, filter *upstream) (string, *sql.DB) {
	t.Helper()
	srv := fmt.Sprintf("127.0.0.1#%d", filter.port)
	return testlist.New(t,
		`INSERT INTO domain_exact VALUES ('exact.example', NULL, NULL), ('ip.exact.example', '10.0.0.9', 'fd00::9')`,
		`INSERT INTO domain VALUES ('tracker.net', NULL, NULL), ('deep.tracker.net', '10.0.0.2', NULL)`,
		`INSERT INTO domain_regex VALUES ('^ad[sz]?[0-9]*\.', NULL, NULL)`,
		fmt.Sprintf(`INSERT INTO domain_dns_allow VALUES ('allowed.tracker.net', '%s')`, srv),
		fmt.Sprintf(`INSERT INTO domain_dns_block VALUES ('family.example', '%s')`, srv),
		`INSERT INTO domain_dns_block VALUES ('unconfigured.example', '127.0.0.1#1')`,
	)
}

func sqlite3(t testing.TB, db, stmt string) {
	t.Helper()
	if out, err := exec.Command("sqlite3", db, stmt).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 %q: %v\n%s", stmt, err, out)
	}
}

var _ = context.Background

// The harness itself: a dnsmasq whose port another process took between
// freeUDPPort and its bind exits; startDnsmasq starts it again on another
// port instead of failing the test, or taking another server's answers for
// its own.
func TestStartsAgainWhenItsPortIsTaken(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p := taken.LocalAddr().(*net.UDPAddr).Port
	d := startDnsmasq(t, opts{upstream: startUpstream(t, "192.0.2.1"), port: p})
	if d.port == p {
		t.Fatalf("dnsmasq on the taken port %d", p)
	}
	if got := summary(d.mustQuery(t, "udp", "x.example", dns.TypeA)); got != "NOERROR A 192.0.2.1" {
		t.Errorf("x.example: %q", got)
	}
}
