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
