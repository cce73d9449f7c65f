package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSet(t *testing.T) {
	c := Default()
	good := [][2]string{
		{"db-file", "/tmp/x.db"}, {"db-block-ipv4", "10.0.0.1"}, {"db-block-ipv6", "fd00::1"},
		{"db-lru-size", "0"}, {"valkey-host", "127.0.0.1"}, {"valkey-port", "6380"},
		{"valkey-ttl", "60"}, {"valkey-read", "auto"}, {"valkey-cluster", "127.0.0.1:7000, 127.0.0.1:7001"},
		{"valkey-tls", "insecure"}, {"valkey-timeout-ms", "3"}, {"blockcache-metrics", "127.0.0.1:9153"},
		{"db-yield-ms", "8"},
	}
	for _, kv := range good {
		if err := c.Set(kv[0], kv[1]); err != nil {
			t.Errorf("Set(%q, %q) = %v", kv[0], kv[1], err)
		}
	}
	if c.BlockIPv4.String() != "10.0.0.1" || c.Valkey.Port != 6380 || c.Valkey.TTL != time.Minute ||
		c.Valkey.Read != ReadAuto || len(c.Valkey.Cluster) != 2 || !c.Valkey.TLSInsecure || c.Valkey.Timeout != 3*time.Millisecond || c.Yield != 8*time.Millisecond {
		t.Errorf("config not applied: %+v", c)
	}
	if got := c.Valkey.Addrs(); got[1] != "127.0.0.1:7001" {
		t.Errorf("Addrs = %v", got)
	}
	bad := [][2]string{
		{"db-block-ipv4", "::1"}, {"db-block-ipv4", "300.1.1.1"}, {"db-block-ipv6", "1.2.3.4"},
		{"db-block-ipv6", "::ffff:1.2.3.4"}, {"valkey-port", "0"}, {"valkey-port", "70000"},
		{"valkey-port", "http"}, {"valkey-ttl", "-1"}, {"valkey-ttl", "2592001"}, {"valkey-read", "sometimes"},
		{"valkey-cluster", "127.0.0.1"}, {"db-lru-size", "-5"}, {"db-file", ""},
		{"blockcache-metrics", "9153"}, {"valkey-tls", "maybe"},
		{"db-yield-ms", "10"}, {"db-yield-ms", "-1"},
	}
	for _, kv := range bad {
		if err := c.Set(kv[0], kv[1]); err == nil {
			t.Errorf("Set(%q, %q) accepted", kv[0], kv[1])
		}
	}
	if err := c.Set("db-block-ipv6", "none"); err != nil || c.BlockIPv6.IsValid() {
		t.Errorf("none: %v %v", err, c.BlockIPv6)
	}
	if err := c.Set("no-such-option", "1"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown key: %v", err)
	}
	if err := (&Config{}).Validate(); err == nil {
		t.Error("Validate accepted a config without db-file")
	}
}

func TestLoadDnsmasqConf(t *testing.T) {
	dir := t.TempDir()
	inc := dir + "/inc.conf"
	os.WriteFile(inc, []byte("valkey-host=10.0.0.5\n"), 0o644)
	main := dir + "/dnsmasq.conf"
	os.WriteFile(main, []byte("# comment\nserver=1.1.1.1#53\ndb-file=/var/lib/list.db\nlog-queries\nconf-file="+inc+"\nvalkey-port=7000\n"), 0o644)
	c := Default()
	if err := c.LoadDnsmasqConf(main); err != nil {
		t.Fatal(err)
	}
	if c.DBFile != "/var/lib/list.db" || c.Valkey.Host != "10.0.0.5" || c.Valkey.Port != 7000 {
		t.Fatalf("%+v", c)
	}
	os.WriteFile(main, []byte("db-file=/x\nvalkey-port=0\n"), 0o644)
	if err := c.LoadDnsmasqConf(main); err == nil || !strings.Contains(err.Error(), "dnsmasq.conf:2") {
		t.Fatalf("bad value error: %v", err)
	}
}

// conf-dir= is read as dnsmasq reads it (Debian's dnsmasq reads
// /etc/dnsmasq.d so): in name order, dotfiles, editor backups and
// non-regular files left out, *SUFFIX keeping only such names and a plain
// SUFFIX leaving them out.
func TestLoadDnsmasqConfDir(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, "dnsmasq.d")
	os.Mkdir(d, 0o755)
	os.Mkdir(filepath.Join(d, "sub.conf"), 0o755)
	const unread = "valkey-port=0\n" // an error if it were read
	for name, text := range map[string]string{
		"10-list.conf":       "db-file=/var/lib/list.db\nvalkey-port=7001\n",
		"20-valkey.conf":     "valkey-host=10.0.0.7\nvalkey-port=7002\n", // read after 10-: its port wins
		"30-old.conf.bak":    unread,
		"60-old.bak":         unread,
		".hidden.conf":       unread,
		"40-edit.conf~":      unread,
		"#50-autosave.conf#": unread,
		"README":             "db-file=/readme.db\n",
	} {
		os.WriteFile(filepath.Join(d, name), []byte(text), 0o644)
	}
	main := filepath.Join(dir, "dnsmasq.conf")
	for _, spec := range []string{d + ",*.conf", d + ",.bak,README,*.conf"} {
		os.WriteFile(main, []byte("conf-dir="+spec+"\n"), 0o644)
		c := Default()
		if err := c.LoadDnsmasqConf(main); err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if c.DBFile != "/var/lib/list.db" || c.Valkey.Host != "10.0.0.7" || c.Valkey.Port != 7002 {
			t.Errorf("%s: db-file %q, valkey %s:%d", spec, c.DBFile, c.Valkey.Host, c.Valkey.Port)
		}
	}
	// Without *.conf every other file counts: README's db-file comes last.
	os.WriteFile(main, []byte("conf-dir="+d+",.bak\n"), 0o644)
	c := Default()
	if err := c.LoadDnsmasqConf(main); err != nil || c.DBFile != "/readme.db" {
		t.Errorf("conf-dir without a *suffix: db-file %q, %v", c.DBFile, err)
	}
	os.WriteFile(main, []byte("conf-dir="+filepath.Join(dir, "missing")+"\n"), 0o644)
	c = Default()
	if err := c.LoadDnsmasqConf(main); err == nil || !strings.Contains(err.Error(), "conf-dir=") {
		t.Errorf("a missing conf-dir: %v", err)
	}
}

// dnsmasq checks option values at parse time from its own table
// (blockcache-opts.h, in the patch) and the library checks them again at
// startup; the two lists must name the same options, and an integer range
// dnsmasq accepts must be one the library accepts too.
func TestPatchOptionTableMatchesLibrary(t *testing.T) {
	patch, err := os.ReadFile("../../dnsmasq-patch/0001-blockcache.patch")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^\+BC_OPT\(\d+,\s*"([^"]+)",\s*(\w+),\s*(-?\d+),\s*(-?\d+),`)
	inPatch := map[string]bool{}
	for _, m := range line.FindAllStringSubmatch(string(patch), -1) {
		name, typ, lo, hi := m[1], m[2], m[3], m[4]
		inPatch[name] = true
		c := Default()
		if err := c.Set(name, "x"); errors.Is(err, ErrUnknown) {
			t.Errorf("dnsmasq option %s is unknown to the library", name)
			continue
		}
		if typ == "BC_INT" {
			for _, v := range []string{lo, hi} {
				if err := c.Set(name, v); err != nil {
					t.Errorf("%s=%s: dnsmasq accepts it, the library says %v", name, v, err)
				}
			}
		}
	}
	if len(inPatch) < 20 {
		t.Fatalf("found %d options in the patch; the table format changed?", len(inPatch))
	}
	for _, kv := range Keys() {
		if !inPatch[kv[0]] {
			t.Errorf("library option %s has no dnsmasq option", kv[0])
		}
	}
}
