package valkeytier

import (
	"math"
	"testing"
	"time"
)

func TestAutoChoice(t *testing.T) {
	var tr Tier
	if !tr.autoWantsRead() {
		t.Fatal("no measurements yet: must read Valkey to measure it")
	}
	set := func(valkey, source time.Duration) {
		tr.ewmaValkey.Store(math.Float64bits(float64(valkey)))
		tr.ewmaSource.Store(math.Float64bits(float64(source)))
	}
	set(80*time.Microsecond, 500*time.Microsecond) // cold SQLite: Valkey wins
	for i := 0; i < 100; i++ {
		if !tr.autoWantsRead() {
			t.Fatal("Valkey faster but skipped")
		}
	}
	set(80*time.Microsecond, 7*time.Microsecond) // warm SQLite: skip, but sample 1 in 64
	reads := 0
	for i := 0; i < 640; i++ {
		if tr.autoWantsRead() {
			reads++
		}
	}
	if reads != 10 {
		t.Fatalf("sampled Valkey %d times in 640, want 10", reads)
	}
	tr.observe(&tr.ewmaSource, time.Millisecond)
	if got := time.Duration(math.Float64frombits(tr.ewmaSource.Load())); got < 55*time.Microsecond || got > 57*time.Microsecond {
		t.Fatalf("ewma after one 1ms sample from 7µs = %v", got)
	}
}
