package ratelog

import (
	"fmt"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// PipeWriter writes to a non-blocking pipe and drops what does not fit:
// the library logs from the lookup path, which must never wait for the
// reader (dnsmasq drains the pipe in its own loop). Dropped lines are
// counted, and the count is written ahead of the next line that fits, so
// the log says what it lost.
//
// Writes must not overlap (Logger serializes them under its lock).
type PipeWriter struct {
	fd      int
	Dropped atomic.Uint64
	unsaid  uint64 // dropped lines not yet reported in the log
}

// PipeLine is the longest write, newline included. POSIX makes a pipe
// write of at most PIPE_BUF (4096 on Linux) bytes atomic, so with
// O_NONBLOCK a line lands whole or not at all; a longer one could land in
// part, and the reader would run it into the next line. One byte less
// fits the patch's 4096-byte read buffer with its terminating NUL.
const PipeLine = 4095

const truncated = " [truncated]\n"

// NewPipe returns the read end for the caller and a writer on the write end.
func NewPipe() (readFD int, w *PipeWriter, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, nil, err
	}
	return p[0], &PipeWriter{fd: p[1]}, nil
}

// Write writes one line (b ends in a newline, as Logger writes them),
// cut to PipeLine bytes. It never fails: a line the pipe has no room for
// is counted instead.
func (w *PipeWriter) Write(b []byte) (int, error) {
	if w.unsaid > 0 && w.put(fmt.Appendf(nil, "blockcache: %d log lines dropped: dnsmasq did not read them in time\n", w.unsaid)) {
		w.unsaid = 0
	}
	if !w.put(cut(b)) {
		w.unsaid++
		w.Dropped.Add(1)
	}
	return len(b), nil
}

func (w *PipeWriter) put(b []byte) bool {
	n, err := unix.Write(w.fd, b)
	return err == nil && n == len(b)
}

// cut shortens a line longer than PipeLine at a character boundary and
// says so at its end.
func cut(b []byte) []byte {
	if len(b) <= PipeLine {
		return b
	}
	n := PipeLine - len(truncated)
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return append(b[:n:n], truncated...)
}
