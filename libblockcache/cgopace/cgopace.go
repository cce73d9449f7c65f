// Package cgopace keeps the Go runtime quiet while a C thread calls into
// the library thousands of times a second, as dnsmasq does once per query.
//
// Between two calls the C thread holds its Go P in the syscall state, and
// the goroutine that runs the calls is never rescheduled, so the P's
// scheduling tick stops moving. After 10 ms of that, Go's monitor thread
// (sysmon) force-preempts the goroutine (a signal to the C thread), takes
// the P away and resets its own poll interval to 20 µs; it then wakes
// about 60 times in every 10 ms. On a virtual machine each wake-up costs
// tens of µs of CPU, which made a patched dnsmasq spend 12-16 µs more CPU
// per forwarded query than stock (bench/cgogap.sh, bench/RESULTS.md).
//
// A yield to the scheduler every few milliseconds, from the calling thread
// while calls keep coming, moves the tick before sysmon's 10 ms deadline:
// the P is never retaken and sysmon backs off to 10 ms naps. A yield costs
// one round trip through another runtime thread (about 120 µs of wall time
// on the benchmark machine), paid by one call in every interval.
//
// The yields only help while another P is idle. With a single P (Go's
// default on a machine, container or CPU affinity of one CPU) sysmon takes
// the P back from the calling thread whenever one of its ticks passes
// between two calls, and every retake sends it back to 20 µs polling: on
// one CPU at 8k queries a second the library cost dnsmasq 40 µs of CPU per
// query with one P and 7 µs with two (bench/RESULTS.md).
// EnsureProcs provides the second P.
//
// This leans on how the Go 1.21-1.26 scheduler treats threads that call in
// from C (a bound extra M); the benchmark is what tells whether it still
// pays on a newer Go.
package cgopace

import (
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// MinProcs is the fewest Ps that leave one idle while the C thread holds
// its own between calls.
const MinProcs = 2

// EnsureProcs sets GOMAXPROCS to at least MinProcs, unless the operator
// chose it in the environment, and returns the value before and after.
// Setting it also stops Go from re-reading the CPU limit every second and
// lowering GOMAXPROCS to 1 later, when a container's limit shrinks. More Ps
// than CPUs cost nothing here: only one thread runs lookups, and the
// goroutines behind it are mostly asleep.
func EnsureProcs() (before, after int) {
	before = runtime.GOMAXPROCS(0)
	if os.Getenv("GOMAXPROCS") != "" {
		return before, before
	}
	after = max(before, MinProcs)
	runtime.GOMAXPROCS(after)
	return before, after
}

// MaxInterval is the longest useful interval: sysmon force-preempts after
// 10 ms without a scheduling tick, so a yield must come before that.
const MaxInterval = 9 * time.Millisecond

// Pacer decides which calls from C yield. Safe for concurrent use; with
// several calling threads, one of them yields per interval.
type Pacer struct {
	every int64 // ns; 0 disables
	base  time.Time
	prev  atomic.Int64 // when the previous call came, ns since base
	last  atomic.Int64 // when this burst of calls last yielded or began
}

// New returns a Pacer that yields every interval while calls keep coming;
// 0 disables it. Intervals above MaxInterval are clamped to it.
func New(interval time.Duration) *Pacer {
	p := &Pacer{every: int64(min(interval, MaxInterval)), base: time.Now()}
	if p.every < 0 {
		p.every = 0
	}
	return p
}

// Enter is called at the start of each call from C, on the C thread.
func (p *Pacer) Enter() {
	if p == nil || p.every == 0 {
		return
	}
	if p.due(int64(time.Since(p.base))) {
		runtime.Gosched()
	}
}

// due reports whether the call arriving at now should yield. Only a
// steady stream of calls needs it. After a pause as long as the interval,
// the next yield would come too close to sysmon's 10 ms deadline (or past
// it) to keep the P, so the call would pay the yield's latency for little;
// such a call starts a new burst instead.
func (p *Pacer) due(now int64) bool {
	prev := p.prev.Swap(now)
	last := p.last.Load()
	if now-prev >= p.every {
		p.last.Store(now)
		return false
	}
	if now-last < p.every {
		return false
	}
	return p.last.CompareAndSwap(last, now)
}
