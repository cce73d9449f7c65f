package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
)

// TestDemo runs the main job as README.md gives it, scripts/demo.sh, asks
// the queries the demo suggests, and stops it the way a user does: Ctrl-C,
// a SIGINT to the terminal's process group. dnsmasq takes SIGINT without
// -d for "the clock is valid now" and keeps running, so the demo once
// never stopped there; it must stop, with its Valkey, and exit 0.
func TestDemo(t *testing.T) {
	top, _ := filepath.Abs("../..")
	if b, _ := filepath.Abs(buildDir(t)); b != filepath.Join(top, "build") {
		t.Skipf("the demo runs the tree's own build/, not %s", b)
	}
	port, vport, dir := freeUDPPort(t), valkeytest.FreePort(t), t.TempDir()
	cmd := exec.Command("bash", filepath.Join(top, "scripts/demo.sh"))
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "VALKEY_PORT="+strconv.Itoa(vport), "DEMO_DIR="+dir,
		"MAKEFLAGS=", "MFLAGS=", "MAKELEVEL=") // its make is not a sub-make of the one running the tests
	out, err := os.Create(filepath.Join(t.TempDir(), "demo.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's process group of its own
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	output := func() string { b, _ := os.ReadFile(out.Name()); return string(b) }
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	d := &daemon{t: t, port: port}
	deadline := time.Now().Add(3 * time.Minute) // its `make` may have work to do
	for {
		r, err := d.query(t, "udp", "www.ads.example.com", dns.TypeA)
		if err == nil && strings.HasPrefix(summary(r), "NOERROR A 0.0.0.0") {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the demo exited (%v) before answering:\n%s", err, output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo's dnsmasq does not block www.ads.example.com: %v %v\n%s", r, err, output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(output(), "Ctrl-C stops it.") {
		t.Errorf("the demo did not say how to stop it:\n%s", output())
	}

	// The queries the demo suggests, and the answers it promises.
	for _, c := range []struct {
		network, name string
		qtype         uint16
		want          string
	}{
		{"udp", "exact.example.com", dns.TypeA, "NOERROR A 10.0.0.53"},
		{"udp", "ads7.anything.example", dns.TypeAAAA, "NOERROR AAAA ::"},
		{"tcp", "tracker.example.net", dns.TypeA, "NOERROR A 0.0.0.0"},
	} {
		if got := summary(d.mustQuery(t, c.network, c.name, c.qtype)); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s %s %s: %q, want %q", c.network, c.name, dns.TypeToString[c.qtype], got, c.want)
		}
	}
	db, ctl := filepath.Join(dir, "list.db"), filepath.Join(top, "build/blockcachectl")
	if b, err := exec.Command(ctl, "add", "--db", db, "--table", "domain", "new.example").CombinedOutput(); err != nil {
		t.Fatalf("blockcachectl add: %v\n%s", err, b)
	}
	d.waitAnswer(t, 2*time.Second, "new.example", "NOERROR A 0.0.0.0 EDE 15", "`blockcachectl add`")
	for name, want := range map[string][]string{
		"www.ads.example.com": {"verdict: block", "rule:    ads.example.com\n"},
		"cdn.ads.example.com": {"verdict: forward", "table:   domain_dns_allow\n", "server:  #"},
	} {
		b, err := exec.Command(ctl, "explain", "--db", db, name).Output()
		for _, w := range want {
			if err != nil || !strings.Contains(string(b), w) {
				t.Errorf("blockcachectl explain %s: %v, no %q in\n%s", name, err, w, b)
			}
		}
	}
	valkey := fmt.Sprintf("127.0.0.1:%d", vport)
	if strings.Contains(output(), "valkey-server on "+valkey) {
		// The verdicts above were written back to the demo's Valkey.
		deadline = time.Now().Add(5 * time.Second)
		for valkeytest.DoAt(t, valkey, "DBSIZE") == "0" {
			if time.Now().After(deadline) {
				t.Fatalf("the demo's Valkey holds no verdict:\n%s", output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	} else {
		t.Log("valkey-server is not installed: the demo runs without it")
	}

	// Ctrl-C.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the demo exited with %v after Ctrl-C, want 0:\n%s", err, output())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the demo still runs 10 s after Ctrl-C:\n%s", output())
	}
	if _, err := d.query(t, "udp", "www.ads.example.com", dns.TypeA); err == nil {
		t.Error("dnsmasq still answers after the demo exited")
	}
	if c, err := net.DialTimeout("tcp", valkey, time.Second); err == nil {
		c.Close()
		t.Error("the demo's Valkey still runs after the demo exited")
	}
}
