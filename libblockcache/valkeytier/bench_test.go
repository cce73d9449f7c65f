package valkeytier_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"

	"github.com/libblockcache/libblockcache/libblockcache/engine"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// BenchmarkBareGET is the floor: one valkey-go GET round trip on loopback.
func BenchmarkBareGET(b *testing.B) {
	srv := valkeytest.Start(b)
	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	c.Do(ctx, c.B().Set().Key("k").Value("v").Build())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Do(ctx, c.B().Get().Key("k").Build()).Error(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTierHit is a Valkey-tier hit through the tier's Get (deadline,
// key building, decoding), to compare with BenchmarkBareGET in one run.
func BenchmarkTierHit(b *testing.B) {
	srv := valkeytest.Start(b)
	db, _ := testlist.New(b, testlist.Fixture...)
	c := openB(b, db, "valkey-host", "127.0.0.1", "valkey-port", strconv.Itoa(srv.Port))
	k := engine.Key{NS: c.Store.Namespace(), Name: "x.tracker.net"}
	c.Valkey.Put(k, verdict.Verdict{Action: verdict.Block, Table: verdict.TableDomain})
	time.Sleep(100 * time.Millisecond)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := c.Valkey.Get(ctx, k); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkCircuitOpen compares a lookup (no LRU, so every lookup reaches
// the Valkey tier) with Valkey configured but down, against no Valkey at
// all, in one run: the open circuit must cost next to nothing.
func BenchmarkCircuitOpen(b *testing.B) {
	db, _ := testlist.New(b, testlist.Fixture...)
	names := make([]string, 1024)
	for i := range names {
		names[i] = "u" + strconv.Itoa(i) + ".site.cdn.example"
	}
	for _, mode := range []string{"no-valkey", "valkey-down"} {
		b.Run(mode, func(b *testing.B) {
			var sets []string
			if mode == "valkey-down" {
				sets = []string{"valkey-host", "127.0.0.1", "valkey-port", strconv.Itoa(valkeytest.FreePort(b))}
			}
			c := openB(b, db, sets...)
			if c.Valkey != nil && !c.Valkey.CircuitOpen() {
				b.Fatal("circuit closed")
			}
			time.Sleep(100 * time.Millisecond) // the filter is built
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.Lookup(ctx, names[i&1023])
			}
		})
	}
}
