package valkeytier_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/blockcache"
	"github.com/libblockcache/libblockcache/libblockcache/config"
	"github.com/libblockcache/libblockcache/libblockcache/ratelog"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
)

// Valkey over TLS against a real valkey-server: the certificate is
// checked against valkey-tls-ca (or the system's CAs, which do not know
// this one), a Valkey that checks clients gets valkey-tls-cert, and a bad
// file or combination stops the start with the reason.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	valkeytest.PKI(t, dir)
	db, _ := testlist.New(t, testlist.Fixture...)
	f := func(name string) string { return filepath.Join(dir, name) }
	optional, required := valkeytest.StartTLS(t, dir, "optional"), valkeytest.StartTLS(t, dir, "yes")
	for _, c := range []struct {
		name      string
		srv       *valkeytest.Server
		sets      []string
		reachable bool
	}{
		{"CA given", optional, []string{"valkey-tls", "on", "valkey-tls-ca", f("ca.pem")}, true},
		{"system CAs only", optional, []string{"valkey-tls", "on"}, false},
		{"insecure", optional, []string{"valkey-tls", "insecure"}, true},
		{"no client certificate", required, []string{"valkey-tls", "on", "valkey-tls-ca", f("ca.pem")}, false},
		{"client certificate", required, []string{"valkey-tls", "on", "valkey-tls-ca", f("ca.pem"),
			"valkey-tls-cert", f("client.pem"), "valkey-tls-key", f("client.key")}, true},
	} {
		name := strings.ReplaceAll(c.name, " ", "-") + ".tracker.net" // a name no other case wrote
		t.Run(c.name, func(t *testing.T) {
			cl := open(t, db, withServer(c.srv, c.sets...)...)
			if open := cl.Valkey.CircuitOpen(); open == c.reachable {
				t.Fatalf("circuit open %v, want reachable %v", open, c.reachable)
			}
			if !c.reachable {
				return
			}
			lookup(t, cl, name)
			waitFor(t, 2*time.Second, "write-back over TLS", func() bool { return written(cl) == 1 })
		})
	}
	notPEM := f("server.key.der")
	os.WriteFile(notPEM, []byte("not PEM"), 0o600)
	for _, c := range []struct {
		sets []string
		want string
	}{
		{[]string{"valkey-tls-ca", f("ca.pem")}, "need valkey-tls=on"},
		{[]string{"valkey-tls", "on", "valkey-tls-cert", f("client.pem")}, "valkey-tls-cert and valkey-tls-key go together"},
		{[]string{"valkey-tls", "on", "valkey-tls-ca", notPEM}, "valkey-tls-ca: no PEM certificate in " + notPEM},
		{[]string{"valkey-tls", "on", "valkey-tls-ca", f("missing.pem")}, "valkey-tls-ca: open " + f("missing.pem") + ": no such file or directory"},
		{[]string{"valkey-tls", "on", "valkey-tls-cert", f("client.pem"), "valkey-tls-key", f("ca.key")}, "valkey-tls-cert and valkey-tls-key: tls: private key does not match public key"},
	} {
		cfg := config.Default()
		cfg.DBFile = db
		kv := withServer(optional, c.sets...)
		for i := 0; i+1 < len(kv); i += 2 {
			if err := cfg.Set(kv[i], kv[i+1]); err != nil {
				t.Fatal(err)
			}
		}
		cl, err := blockcache.Open(context.Background(), cfg, ratelog.New(io.Discard, 10, time.Minute))
		if err == nil {
			cl.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.sets, err, c.want)
		}
	}
}
