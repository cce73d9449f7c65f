// Package ratelog is the library's logger. dnsmasq is single-threaded and
// its logger is not safe to call from Go's threads, so lines go to a writer
// (stderr, or a pipe dnsmasq drains in its own loop). Repeated messages are
// rate-limited per format string, so a dead Valkey or a corrupt row cannot
// flood the log, and what was suppressed is counted and reported.
package ratelog

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Logger is safe for concurrent use.
type Logger struct {
	mu     sync.Mutex
	out    io.Writer
	burst  int
	window time.Duration
	keys   map[string]*bucket
	now    func() time.Time
}

type bucket struct {
	start      time.Time
	n          int
	suppressed int
}

// New logs at most burst lines per format string per window.
func New(out io.Writer, burst int, window time.Duration) *Logger {
	return &Logger{out: out, burst: burst, window: window, keys: make(map[string]*bucket), now: time.Now}
}

// SetOutput redirects the log (e.g. to dnsmasq's pipe once it asks for it).
func (l *Logger) SetOutput(w io.Writer) {
	l.mu.Lock()
	l.out = w
	l.mu.Unlock()
}

// Logf logs one line unless its format string is over its budget.
func (l *Logger) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.reportSuppressed(now)
	b := l.keys[format]
	if b == nil {
		if len(l.keys) > 1024 { // bound the map; formats are static so this is a bug guard
			l.keys = make(map[string]*bucket)
		}
		b = &bucket{start: now}
		l.keys[format] = b
	}
	if now.Sub(b.start) >= l.window {
		b.start, b.n = now, 0
	}
	if b.n >= l.burst {
		b.suppressed++
		return
	}
	b.n++
	line := fmt.Sprintf(format, args...)
	line = strings.ReplaceAll(line, "\n", " ")
	fmt.Fprintln(l.out, line)
}

// reportSuppressed says how many lines of each format were left out, once
// that format's window has passed and whichever line comes next: a burst
// that stopped (Valkey back up) is reported with the next line of any kind,
// not only when the same message comes again. The formats are few, so the
// scan is cheap, and lines are rare.
func (l *Logger) reportSuppressed(now time.Time) {
	for format, b := range l.keys {
		if b.suppressed > 0 && now.Sub(b.start) >= l.window {
			fmt.Fprintf(l.out, "blockcache: %d similar messages suppressed: %s\n", b.suppressed, strings.TrimSpace(format))
			b.suppressed = 0
		}
	}
}
