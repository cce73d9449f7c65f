package blockcache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/config"
	"github.com/libblockcache/libblockcache/libblockcache/store"
	"github.com/libblockcache/libblockcache/libblockcache/testlist"
	"github.com/libblockcache/libblockcache/libblockcache/valkeytest"
	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// Every answer must be its list version's, whichever tier gave it: a
// writer lists and unlists names at random (logged changes, with now and
// then a bare version bump or a regex change, which the log cannot vouch
// for) and records which names each committed version lists, while
// readers look names up. Each answer is then checked against the record
// of the version it was tagged with. Readers ask one node with an LRU, or
// two nodes without one that share a Valkey, so that each one's verdicts
// of older versions reach the other.
func TestEveryAnswerIsItsVersions(t *testing.T) {
	t.Run("lru", func(t *testing.T) {
		path, db := testlist.New(t)
		everyAnswer(t, db, open(t, path, func(cfg *config.Config) { cfg.PollInterval = 5 * time.Millisecond }))
	})
	t.Run("valkey", func(t *testing.T) {
		srv := valkeytest.Start(t)
		path, db := testlist.New(t)
		node := func() *Cache {
			return open(t, path, func(cfg *config.Config) {
				cfg.PollInterval, cfg.LRUSize = 5*time.Millisecond, 0
				cfg.Valkey.Host, cfg.Valkey.Port, cfg.Valkey.Timeout = "127.0.0.1", srv.Port, 50*time.Millisecond
			})
		}
		everyAnswer(t, db, node(), node())
	})
}

func everyAnswer(t *testing.T, db *sql.DB, nodes ...*Cache) {
	const pool = 40
	ctx := context.Background()
	name := func(i int) string { return fmt.Sprintf("n%d.pool.example", i) }

	var mu sync.Mutex
	listed := map[int]bool{}
	truth := map[uint64]map[int]bool{} // version -> names listed then
	regexOn := map[uint64]bool{}       // version -> the regex rule exists
	regex := false
	record := func() {
		var v uint64
		if err := db.QueryRow(`SELECT Value FROM ` + store.MetaTable + ` WHERE Key = 'version'`).Scan(&v); err != nil {
			t.Error(err)
			return
		}
		snap := make(map[int]bool, len(listed))
		for k, on := range listed {
			snap[k] = on
		}
		mu.Lock()
		truth[v], regexOn[v] = snap, regex
		mu.Unlock()
	}
	record()

	type seen struct {
		i       int
		sub     bool
		version uint64
		action  verdict.Action
		tier    verdict.Tier
	}
	var failed atomic.Int64
	var seenMu sync.Mutex
	var all []seen
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		c := nodes[g%len(nodes)]
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			var mine []seen
			defer func() { seenMu.Lock(); all = append(all, mine...); seenMu.Unlock() }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i, sub := r.IntN(pool), r.IntN(2) == 0
				n := name(i)
				if sub {
					n = "www." + n
				}
				a, err := c.Lookup(ctx, n)
				if errors.Is(err, store.ErrListChanging) {
					failed.Add(1) // a counted fallback, not an answer
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", n, err)
					return
				}
				if len(mine) < 300000 { // bounds the test's memory on a fast machine
					mine = append(mine, seen{i, sub, a.NS.Version, a.Verdict.Action, a.Tier})
				}
			}
		}(uint64(g))
	}

	r := rand.New(rand.NewPCG(7, 7))
	for step := 0; step < 150; step++ {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		switch k := r.IntN(20); {
		case k == 0:
			_, err = tx.Exec(store.BumpVersion)
		case k == 1:
			if regex {
				_, err = tx.Exec(`DELETE FROM domain_regex`)
			} else {
				_, err = tx.Exec(`INSERT INTO domain_regex VALUES ('^www\.n1[0-9]\.', NULL, NULL)`)
			}
			regex = !regex
		default:
			for range 1 + r.IntN(3) {
				i := r.IntN(pool)
				if listed[i] {
					_, err = tx.Exec(`DELETE FROM domain WHERE Domain = ?`, name(i))
				} else {
					_, err = tx.Exec(`INSERT INTO domain VALUES (?, NULL, NULL)`, name(i))
				}
				if err != nil {
					break
				}
				listed[i] = !listed[i]
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		record()
		time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()

	wrong, byTier := 0, map[verdict.Tier]int{}
	for _, s := range all {
		state, ok := truth[s.version]
		if !ok {
			t.Fatalf("answer tagged with version %d, which no commit made", s.version)
		}
		want := verdict.Pass
		if state[s.i] || (s.sub && regexOn[s.version] && s.i >= 10 && s.i <= 19) {
			want = verdict.Block
		}
		if s.action != want {
			if wrong++; wrong <= 5 {
				t.Errorf("name %d (sub %v) at version %d from %v: %v, want %v", s.i, s.sub, s.version, s.tier, s.action, want)
			}
		}
		byTier[s.tier]++
	}
	st := nodes[0].Stats()
	revalidated := st.LRURevalidated + st.ValkeyRevalidated
	t.Logf("%d answers (%v), %d wrong, %d lookups failed (list changing); %d versions, %d read as deltas, %d revalidated",
		len(all), byTier, wrong, failed.Load(), len(truth), st.Store.Deltas, revalidated)
	if st.Store.Deltas == 0 || revalidated == 0 || byTier[verdict.TierLRU]+byTier[verdict.TierValkey] == 0 {
		t.Error("the run did not exercise revalidation")
	}
}
