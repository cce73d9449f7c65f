package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
)

// An operator rolls the list back to a backup and goes on editing it. The
// backup's next version has the number of a lost one: a verdict cached in
// the LRU or in Valkey for that number must not be served for the new
// contents, by the node that saw the list go back or by one started
// later, which did not (the versions' stamps tell them apart). Once the
// restored file is forked, a node that starts later shares nothing with
// the lost history either.
func TestRestoredBackup(t *testing.T) {
	srv := valkeytest.Start(t)
	up := startUpstream(t, "192.0.2.1")
	path, w := testlist.New(t, `INSERT INTO domain VALUES ('a.example', NULL, NULL)`)
	backup := filepath.Join(t.TempDir(), "backup.db")
	testlist.Exec(t, w, `VACUUM INTO '`+backup+`'`)
	testlist.Exec(t, w, `INSERT INTO domain VALUES ('b.example', NULL, NULL)`)
	vk := []string{"--valkey-host=127.0.0.1", "--valkey-port=" + strconv.Itoa(srv.Port), "--valkey-timeout-ms=50"}
	a := startDnsmasq(t, opts{db: path, upstream: up, extra: vk})
	const blocked, resolved = "NOERROR A 0.0.0.0 EDE 15", "NOERROR A 192.0.2.1"
	if got := summary(a.mustQuery(t, "udp", "b.example", dns.TypeA)); got != blocked {
		t.Fatalf("b.example before the restore: %s", got)
	}
	deadline := time.Now().Add(3 * time.Second)
	for srv.Do("DBSIZE") == "0" {
		if time.Now().After(deadline) {
			t.Fatal("verdict not written to valkey")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The backup goes back in place (its writer's log emptied first, as
	// its last close would), and the list gets one more name.
	testlist.Exec(t, w, `PRAGMA wal_checkpoint(TRUNCATE)`)
	w.Close()
	if err := os.Rename(backup, path); err != nil {
		t.Fatal(err)
	}
	a.waitLog(t, 2*time.Second, "was replaced; now answering from the new file")
	testlist.Exec(t, testlist.Open(t, path), `INSERT INTO domain VALUES ('c.example', NULL, NULL)`)
	a.waitAnswer(t, 2*time.Second, "c.example", blocked, "c.example was added to the restored list")
	for _, network := range []string{"udp", "tcp"} {
		if got := summary(a.mustQuery(t, network, "b.example", dns.TypeA)); got != resolved {
			t.Fatalf("b.example over %s after the restore: %s, want it resolved: the backup does not list it", network, got)
		}
	}
	a.waitLog(t, time.Second, "went back from version 3 to 2", "blockcachectl fork")
	late := startDnsmasq(t, opts{db: path, upstream: up, extra: vk})
	for _, network := range []string{"udp", "tcp"} {
		if got := summary(late.mustQuery(t, network, "b.example", dns.TypeA)); got != resolved {
			t.Fatalf("b.example over %s on a node started after the restore: %s, want it resolved, not the lost version 3's verdict from valkey", network, got)
		}
	}

	fw, err := store.OpenWriter(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	if _, _, err := fw.Fork(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := startDnsmasq(t, opts{db: path, upstream: up, extra: vk})
	for _, d := range []*daemon{a, late, b} {
		if got := summary(d.mustQuery(t, "udp", "b.example", dns.TypeA)); got != resolved {
			t.Fatalf("b.example on port %d after the fork: %s", d.port, got)
		}
		if got := summary(d.mustQuery(t, "udp", "www.a.example", dns.TypeA)); got != blocked {
			t.Fatalf("www.a.example on port %d after the fork: %s", d.port, got)
		}
	}
}
