package cgopace

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// calls feeds due() a call every gap for span, starting at start, and
// returns the times (since start) of the calls that yield.
func calls(p *Pacer, start, gap, span time.Duration) []time.Duration {
	var y []time.Duration
	for t := start; t < start+span; t += gap {
		if p.due(int64(t)) {
			y = append(y, t-start)
		}
	}
	return y
}

func TestSteadyCallsYieldOncePerInterval(t *testing.T) {
	p := New(5 * time.Millisecond)
	y := calls(p, time.Second, 60*time.Microsecond, 50*time.Millisecond)
	if len(y) < 9 || len(y) > 10 {
		t.Fatalf("%d yields in 50 ms of calls every 60 µs, want 9-10: %v", len(y), y)
	}
	for i := 1; i < len(y); i++ {
		if d := y[i] - y[i-1]; d < 5*time.Millisecond || d > 5*time.Millisecond+60*time.Microsecond {
			t.Errorf("yields %v apart, want 5 ms (+ at most one gap)", d)
		}
	}
	// Before sysmon's 10 ms deadline, counted from the first call.
	if y[0] > MaxInterval {
		t.Errorf("first yield after %v", y[0])
	}
}

func TestSparseCallsNeverYield(t *testing.T) {
	p := New(5 * time.Millisecond)
	if y := calls(p, time.Second, 5*time.Millisecond, time.Second); len(y) != 0 {
		t.Fatalf("calls 5 ms apart yielded %d times; a pause as long as the interval must not cost a yield", len(y))
	}
	// A burst after the pause starts its own interval.
	if y := calls(p, 3*time.Second, 100*time.Microsecond, 12*time.Millisecond); len(y) != 2 || y[0] != 5*time.Millisecond {
		t.Fatalf("burst after a pause yielded at %v, want [5ms 10ms]", y)
	}
}

func TestDisabledAndClamped(t *testing.T) {
	if y := calls(New(0), time.Second, 10*time.Microsecond, 100*time.Millisecond); len(y) != 0 {
		t.Fatalf("interval 0 yielded %d times", len(y))
	}
	if New(-time.Second).every != 0 {
		t.Fatal("a negative interval must disable the pacer")
	}
	if got := New(time.Hour).every; got != int64(MaxInterval) {
		t.Fatalf("interval clamped to %v, want %v", time.Duration(got), MaxInterval)
	}
	var p *Pacer
	p.Enter() // a nil Pacer is off, not a crash
}

// With several threads calling at once, one call per interval yields.
func TestConcurrentCallersElectOneYield(t *testing.T) {
	p := New(5 * time.Millisecond)
	p.due(int64(time.Second)) // begin the burst
	p.due(int64(time.Second + 4*time.Millisecond))
	now := int64(time.Second + 5*time.Millisecond)
	var n atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p.due(now) {
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if n.Load() != 1 {
		t.Fatalf("%d of 8 simultaneous calls yielded, want 1", n.Load())
	}
}

func TestEnterRuns(t *testing.T) {
	p := New(time.Millisecond)
	deadline := time.Now().Add(20 * time.Millisecond)
	for time.Now().Before(deadline) {
		p.Enter()
	}
	if p.last.Load() == 0 {
		t.Fatal("Enter never recorded a burst")
	}
}

func BenchmarkEnter(b *testing.B) {
	p := New(5 * time.Millisecond)
	for b.Loop() {
		p.Enter()
	}
}

func TestEnsureProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	t.Setenv("GOMAXPROCS", "")
	runtime.GOMAXPROCS(1)
	if before, after := EnsureProcs(); before != 1 || after != MinProcs || runtime.GOMAXPROCS(0) != MinProcs {
		t.Fatalf("from one P: before %d, after %d, now %d; want 1, %d, %d", before, after, runtime.GOMAXPROCS(0), MinProcs, MinProcs)
	}
	runtime.GOMAXPROCS(3)
	if before, after := EnsureProcs(); before != 3 || after != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Fatalf("from three Ps: before %d, after %d, now %d; more Ps must be kept", before, after, runtime.GOMAXPROCS(0))
	}
	// An operator's GOMAXPROCS is theirs, even 1.
	t.Setenv("GOMAXPROCS", "1")
	runtime.GOMAXPROCS(1)
	if before, after := EnsureProcs(); before != 1 || after != 1 || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("GOMAXPROCS=1 in the environment: before %d, after %d, now %d; want it kept", before, after, runtime.GOMAXPROCS(0))
	}
}
