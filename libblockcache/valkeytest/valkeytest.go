// Package valkeytest starts real valkey-server processes for tests: a
// standalone server (optionally with a password or an ACL user) and a
// three-master cluster on loopback ports. No mocks: the tier is tested
// against the server operators run.
package valkeytest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"
)

// Server is one valkey-server process.
type Server struct {
	t    testing.TB
	Port int
	Dir  string
	args []string
	cmd  *exec.Cmd
}

// Binary finds valkey-server; in CI (CI=true) its absence fails the test,
// elsewhere it skips, since the tier cannot be tested without it.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("valkey-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("valkey-server not installed (scripts/apt-setup.sh installs it)")
		}
		t.Skip("valkey-server not installed")
	}
	return p
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs a standalone server; extra are valkey-server arguments such
// as "--requirepass", "secret". It is stopped when the test ends.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return StartOn(t, FreePort(t), extra...)
}

// StartOn is Start on a given port.
func StartOn(t testing.TB, port int, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, Port: port, Dir: t.TempDir()}
	s.args = append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", s.Dir}, extra...)
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Restart starts the process (again) on the same port and waits for it.
func (s *Server) Restart() {
	s.t.Helper()
	args := append([]string{"--port", strconv.Itoa(s.Port)}, s.args...)
	s.cmd = exec.Command(Binary(s.t), args...)
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	WaitPort(s.t, s.Port)
}

// Kill stops the process with SIGKILL (a crash, as far as clients see).
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGCONT)
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Stop freezes the process with SIGSTOP: connections stay open, nothing answers.
func (s *Server) Stop() { s.cmd.Process.Signal(syscall.SIGSTOP) }

// Cont resumes a stopped process.
func (s *Server) Cont() { s.cmd.Process.Signal(syscall.SIGCONT) }

// CLI runs valkey-cli against the server and returns its output.
func (s *Server) CLI(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("valkey-cli", append([]string{"-p", strconv.Itoa(s.Port)}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("valkey-cli %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Do runs one command with a Go client, for arguments valkey-cli cannot
// carry (keys are binary and may hold NUL bytes), and returns the reply as
// text ("" for nil).
func (s *Server) Do(args ...string) string {
	s.t.Helper()
	return DoAt(s.t, s.Addr(), args...)
}

// DoAt is Do for a server this package did not start (the demo's, say),
// at addr.
func DoAt(t testing.TB, addr string, args ...string) string {
	t.Helper()
	c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{addr}, DisableCache: true, ForceSingleClient: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := c.Do(context.Background(), c.B().Arbitrary(args[0]).Args(args[1:]...).Build())
	if v, err := r.ToString(); err == nil {
		return v
	}
	if n, err := r.AsInt64(); err == nil {
		return strconv.FormatInt(n, 10)
	}
	if err := r.Error(); err != nil && !valkey.IsValkeyNil(err) {
		t.Fatalf("%v: %v", args, err)
	}
	return ""
}

// WaitPort waits until something accepts connections on port.
func WaitPort(t testing.TB, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d after 10s", port)
}

// Cluster is three masters with no replicas.
type Cluster struct {
	Nodes []*Server
}

// StartCluster creates a three-master cluster with valkey-cli --cluster create.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{}
	var addrs []string
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		s := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "2000")
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("valkey-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for _, n := range c.Nodes {
			if !strings.Contains(n.CLI("cluster", "info"), "cluster_state:ok") {
				ok = false
			}
		}
		if ok {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal("cluster did not reach cluster_state:ok")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Seeds is the valkey-cluster option value.
func (c *Cluster) Seeds() string {
	var s []string
	for _, n := range c.Nodes {
		s = append(s, n.Addr())
	}
	return strings.Join(s, ",")
}
