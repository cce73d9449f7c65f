package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
)

// benchDB is a list made by bench/gen.sh (BLOCKCACHE_BENCH_DB), or a small
// generated one.
func benchDB(b *testing.B) string {
	if p := os.Getenv("BLOCKCACHE_BENCH_DB"); p != "" {
		return p
	}
	stmts := []string{}
	for i := 0; i < 10000; i += 500 {
		q := "INSERT INTO domain VALUES "
		for j := i; j < i+500; j++ {
			if j > i {
				q += ","
			}
			q += fmt.Sprintf("('d%d.bench.example', NULL, NULL)", j)
		}
		stmts = append(stmts, q)
	}
	path, _ := testlist.New(b, stmts...)
	return path
}

func BenchmarkResolveUnlisted4Labels(b *testing.B) {
	s := open(b, benchDB(b), nil)
	ctx := context.Background()
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprintf("u%d.site%d.cdn%d.example", i, i%100, i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := s.Resolve(ctx, names[i%len(names)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolveListedWildcard(b *testing.B) {
	s := open(b, benchDB(b), nil)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := s.Resolve(ctx, fmt.Sprintf("www.d%d.bench.example", i%5000)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilterBuild: opening the list until its membership filter is
// ready, the time a process starts (or an unlogged change) costs before
// unlisted names skip SQL: read from every row, or loaded as saved by
// `blockcachectl filter`.
func BenchmarkFilterBuild(b *testing.B) {
	ctx := context.Background()
	for _, saved := range []bool{false, true} {
		path := filepath.Join(b.TempDir(), "list.db")
		if _, _, err := store.Publish(ctx, benchDB(b), path); err != nil {
			b.Fatal(err)
		}
		w, err := store.OpenWriter(ctx, path, false)
		if err != nil {
			b.Fatal(err)
		}
		if saved {
			_, err = w.SaveFilter(ctx)
		} else {
			_, err = w.DB.ExecContext(ctx, "DELETE FROM "+store.FilterTable)
		}
		if err != nil {
			b.Fatal(err)
		}
		w.Close()
		b.Run(map[bool]string{false: "rows", true: "saved"}[saved], func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				s, err := store.Open(ctx, store.Options{Path: path})
				if err != nil {
					b.Fatal(err)
				}
				for s.Stats().FilterBytes == 0 {
					time.Sleep(time.Millisecond)
				}
				if got := s.Stats().FilterLoads; got != map[bool]uint64{false: 0, true: 1}[saved] {
					b.Fatalf("%d saved filters loaded", got)
				}
				s.Close()
			}
		})
	}
}
