// Package smoke holds the benchmark harness's smoke test: the C harness,
// the list generator and the runner must work, on a tiny list, in seconds.
// The measurements themselves live in RESULTS.md, never in tests.
package smoke

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
)

func TestHarnessSmoke(t *testing.T) {
	build, _ := filepath.Abs("../../build")
	for _, f := range []string{"bench", "blockcachectl", "libblockcache.so"} {
		if _, err := os.Stat(filepath.Join(build, f)); err != nil {
			t.Fatalf("%s missing: run `make all bench` first", f)
		}
	}
	db := filepath.Join(t.TempDir(), "list.db")
	if out, err := exec.Command("../gen.sh", db, "2000", "50").CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, out)
	}
	srv := valkeytest.Start(t)
	csv := filepath.Join(t.TempDir(), "out.csv")
	cmd := exec.Command(filepath.Join(build, "bench"), "--lib", filepath.Join(build, "libblockcache.so"), "--db", db,
		"--rows", "2000", "--regex", "50", "--universe", "5000", "--queries", "4000", "--warmup", "2000",
		"--valkey-port", strconv.Itoa(srv.Port), "--csv", csv)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	// one "all" row per configuration and regime, each with 0 wrong answers
	rows := regexp.MustCompile(`(?m)^(\S+)\s+(warm|cold)\s+all\s.*\s(\d+)$`).FindAllStringSubmatch(string(out), -1)
	if len(rows) != 10 {
		t.Fatalf("%d result rows, want 5 configurations x 2 regimes", len(rows))
	}
	for _, r := range rows {
		if r[3] != "0" {
			t.Errorf("%s/%s: %s wrong answers", r[1], r[2], r[3])
		}
	}
	b, _ := os.ReadFile(csv)
	if lines := strings.Count(string(b), "\n"); lines < 11 {
		t.Errorf("csv has %d lines", lines)
	}
	if out, err := exec.Command(filepath.Join(build, "bench"), "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--zipf") {
		t.Errorf("--help: %v %s", err, out)
	}
}

// bench/import-again.sh: six imports, and what each changed.
func TestImportAgainSmoke(t *testing.T) {
	out, err := exec.Command("../import-again.sh", "2000", t.TempDir()).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("import-again.sh: %v", err)
	}
	for re, want := range map[string]int{
		`(?m)^round 1 new, saved filter (no|yes), .*: [\d.]+ s, peak RSS \d+ KiB$`: 6,
		`(?m)^    imported 2000 entries into domain \(2000 new or changed,`:        2,
		`(?m)^    imported 2000 entries into domain \(0 new or changed,`:           2,
		`(?m)^    imported 2000 entries into domain \(20 new or changed,`:          2,
	} {
		if n := len(regexp.MustCompile(re).FindAllString(string(out), -1)); n != want {
			t.Errorf("%d lines match %s, want %d", n, re, want)
		}
	}
}

func TestImportOfflineSmoke(t *testing.T) {
	cmd := exec.Command("../import-offline.sh", "2000", t.TempDir())
	cmd.Env = append(os.Environ(), "ROUNDS=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("import-offline.sh: %v", err)
	}
	for re, want := range map[string]int{
		`(?m)^round 1 (wal|offline) +[\d.]+ s, peak RSS \d+ MiB, wrote [\d.]+ GiB; list on disk at most [\d.]+ GiB, at the end [\d.]+ GiB$`: 2,
		`(?m)^    imported 2000 entries into domain \(2000 new or changed,`:                                                                 2,
	} {
		if n := len(regexp.MustCompile(re).FindAllString(string(out), -1)); n != want {
			t.Errorf("%d lines match %s, want %d", n, re, want)
		}
	}
}

// The dnsperf scripts (real stock and patched dnsmasq, real queries) must
// run end to end on a tiny list and print every figure RESULTS.md quotes:
// scripts that no test runs rot unnoticed (forward-qps.sh once shipped
// without its executable bit).
func TestDNSPerfScriptsSmoke(t *testing.T) {
	if os.Getenv("BLOCKCACHE_DNSPERF_SMOKE") == "" {
		// It saturates both cores for a minute: make test runs it on its
		// own, after the other packages, whose timing it would disturb.
		t.Skip("run by make test on its own (BLOCKCACHE_DNSPERF_SMOKE=1)")
	}
	if _, err := exec.LookPath("dnsperf"); err != nil {
		t.Fatal("dnsperf missing: run scripts/apt-setup.sh")
	}
	// Its own data directory: the real benchmarks' query files in
	// build/bench-data must not be replaced by tiny ones.
	data := "BENCH_DATA=" + t.TempDir()
	run := func(env []string, script string, args ...string) string {
		t.Helper()
		cmd := exec.Command(script, args...)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), append(env, data, "QUERIES=2000", "DNSPERF_TIMEOUT=1")...)
		out, err := cmd.Output() // stderr is the servers' logging
		t.Logf("%s:\n%s", script, out)
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return string(out)
	}
	// count returns how many lines match re with a positive first number.
	count := func(out, re string) int {
		n := 0
		for _, m := range regexp.MustCompile(`(?m)`+re).FindAllStringSubmatch(out, -1) {
			if v, err := strconv.ParseFloat(m[1], 64); err == nil && v > 0 {
				n++
			}
		}
		return n
	}

	out := run([]string{"CONFIGS=lru+sqlite"}, "bench/dnsperf.sh", "2000", "1")
	if n := count(out, `^stock +(?:listed|sub|unlisted): +(\d+) qps`); n != 3 {
		t.Errorf("%d stock figures with a QPS, want 3", n)
	}
	if n := count(out, `^patched lru\+sqlite (?:listed|sub|unlisted): +(\d+) qps`); n != 3 {
		t.Errorf("%d patched figures with a QPS, want 3", n)
	}
	if n := count(out, `^stock, no list, unlisted: +(\d+) qps`); n != 1 {
		t.Error("no figure for stock without a list")
	}

	out = run([]string{"ROUNDS=1"}, "bench/forward-qps.sh", "2000", "1")
	if n := count(out, `^median (?:stock|patched|patched-yield0): (\d+) qps \([\d.]+% of stock\)$`); n != 3 {
		t.Errorf("%d medians with a QPS, want 3", n)
	}
	if n := count(out, `^paired (?:patched|patched-yield0): median of per-round ratios ([\d.]+)% of stock \(from [\d.]+ to [\d.]+\)$`); n != 2 {
		t.Errorf("%d paired ratios, want 2", n)
	}
	out = run([]string{"ROUNDS=1", "MODE=cpu", "QPS=2000"}, "bench/forward-qps.sh", "2000", "1")
	// A 1 s round is a few 10 ms ticks of CPU: one server's ticks can all
	// land in user time, or all in system time (Debian 13's CI run had a
	// "sys 0.0"). Every split must parse with some CPU, and the system
	// column must be read in at least one.
	splits, withSys := 0, 0
	for _, m := range regexp.MustCompile(`(?m)^split (?:stock|patched|patched-yield0): main thread user ([\d.]+) sys ([\d.]+), other threads [\d.]+ us/query \(medians\)$`).FindAllStringSubmatch(out, -1) {
		user, _ := strconv.ParseFloat(m[1], 64)
		sys, _ := strconv.ParseFloat(m[2], 64)
		if user+sys > 0 {
			splits++
		}
		if sys > 0 {
			withSys++
		}
	}
	if splits != 3 || withSys == 0 {
		t.Errorf("%d CPU splits with CPU time (want 3), %d of them with system time (want some)", splits, withSys)
	}
	out = run([]string{"ROUNDS=1", "MODE=cpu", "QPS=2000", "CNAME=1", "ORDER=stock patched patched-cnameoff"}, "bench/forward-qps.sh", "2000", "1")
	if n := count(out, `^median (?:stock|patched|patched-cnameoff): ([\d.]+) us/query`); n != 3 || !strings.Contains(out, "CNAME=1") {
		t.Errorf("%d CPU medians with an upstream that answers CNAMEs, want 3", n)
	}
	out = run([]string{"ROUNDS=1", "MODE=cpu", "QPS=2000", "CNAME=1", "CACHED=1", "ORDER=stock patched patched-cnameoff"}, "bench/forward-qps.sh", "2000", "1")
	if n := count(out, `^median (?:stock|patched|patched-cnameoff): ([\d.]+) us/query`); n != 3 || !strings.Contains(out, "CACHED=1") {
		t.Errorf("%d CPU medians with CNAMEs answered from the cache, want 3", n)
	}

	out = run([]string{"ROUNDS=1", "MODE=cpu", "QPS=2000", "CHURN=0.2", "ORDER=stock patched-churn patched-churnbump"}, "bench/forward-qps.sh", "2000", "1")
	if n := count(out, `^median (?:stock|patched-churn|patched-churnbump): ([\d.]+) us/query`); n != 3 || !strings.Contains(out, "a list change every 0.2 s") {
		t.Errorf("%d CPU medians under list changes, want 3", n)
	}

	out = run([]string{"ROUNDS=1", "MODE=cpu", "QPS=2000"}, "bench/call-rate.sh", "2000", "1")
	if n := count(out, `^median (?:stock|every1|noop|every10|every100|every0): ([\d.]+) us/query`); n != 6 {
		t.Errorf("%d CPU medians, want 6", n)
	}

	if err := exec.Command("perf", "stat", "-e", "task-clock", "--", "true").Run(); err != nil {
		t.Logf("perf cannot sample here (%v): bench/perf-forward.sh not run", err)
		return
	}
	out = run([]string{"QPS=2000"}, "bench/perf-forward.sh", "2000", "2")
	if n := count(out, `^stock total +([\d.]+)$`); n != 1 {
		t.Error("no CPU figure for stock")
	}
	// The library's own buckets must catch samples: a classifier that
	// stopped recognising the stacks would put everything in "dnsmasq".
	if n := count(out, `^patched (?:lookup|cgo call|dnsmasq|total) +([\d.]+)$`); n != 4 {
		t.Errorf("%d of the patched lookup, cgo call, dnsmasq and total figures are positive, want 4", n)
	}
	if n := count(out, `^(?:stock|patched) by /proc: main thread ([\d.]+), other threads [\d.]+$`); n != 2 {
		t.Errorf("%d /proc figures, want stock's and the patched one's", n)
	}
}
