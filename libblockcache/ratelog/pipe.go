package ratelog

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// PipeWriter writes to a non-blocking pipe and drops what does not fit:
// the library logs from the lookup path, which must never wait for the
// reader (dnsmasq drains the pipe in its own loop).
type PipeWriter struct {
	fd      int
	Dropped atomic.Uint64
}

// NewPipe returns the read end for the caller and a writer on the write end.
func NewPipe() (readFD int, w *PipeWriter, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, nil, err
	}
	return p[0], &PipeWriter{fd: p[1]}, nil
}

func (w *PipeWriter) Write(b []byte) (int, error) {
	n, err := unix.Write(w.fd, b)
	if err != nil || n < len(b) {
		w.Dropped.Add(1)
	}
	return len(b), nil
}
