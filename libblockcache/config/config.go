// Package config holds the library's options, parsed from the key/value
// strings dnsmasq passes through blockcache_set_option (the keys are the
// dnsmasq option names). Parsing is strict: a bad value is an error with
// the option's name, never a silent default.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/libblockcache/libblockcache/libblockcache/verdict"
)

// ReadMode is valkey-read.
type ReadMode int

const (
	ReadAlways ReadMode = iota // ask Valkey before SQLite
	ReadAuto                   // ask Valkey only while it is measured faster
	ReadNever                  // write-back only
)

func (m ReadMode) String() string { return [...]string{"always", "auto", "never"}[m] }

// Valkey configures the shared tier; Addrs empty means the tier is off.
type Valkey struct {
	Host        string
	Port        int
	Cluster     []string // host:port seeds; cluster mode when set
	TTL         time.Duration
	Password    string
	User        string
	DB          int
	TLS         bool
	TLSInsecure bool
	// TLSCA, TLSCert and TLSKey are PEM files: the CAs Valkey's
	// certificate must chain to (else the system's), and this client's
	// certificate and key for a Valkey that checks clients.
	TLSCA, TLSCert, TLSKey string
	Timeout                time.Duration // per read
	Prefix                 string
	Read                   ReadMode
	QueueSize              int
	// CircuitFailures consecutive failures open the circuit for CircuitOpen.
	CircuitFailures int
	CircuitOpen     time.Duration
}

// Enabled reports whether a Valkey address is configured.
func (v Valkey) Enabled() bool { return v.Host != "" || len(v.Cluster) > 0 }

// Addrs are the addresses handed to the client.
func (v Valkey) Addrs() []string {
	if len(v.Cluster) > 0 {
		return v.Cluster
	}
	return []string{net.JoinHostPort(v.Host, strconv.Itoa(v.Port))}
}

// Config is every option of the library.
type Config struct {
	DBFile       string
	BlockIPv4    netip.Addr
	BlockIPv6    netip.Addr
	LRUSize      int
	PollInterval time.Duration
	MmapSize     int64
	NoFilter     bool          // db-filter=off
	NoCNAME      bool          // db-cname=off
	Yield        time.Duration // db-yield-ms; see package cgopace
	BlockTTL     int           // dnsmasq's; kept so one option list serves both
	Metrics      string        // host:port of the Prometheus endpoint; empty = off
	Valkey       Valkey
}

// Default is the configuration before any option is set.
func Default() Config {
	return Config{
		BlockIPv4:    netip.IPv4Unspecified(),
		BlockIPv6:    netip.IPv6Unspecified(),
		LRUSize:      1 << 20,
		BlockTTL:     10,
		PollInterval: 250 * time.Millisecond,
		Yield:        8 * time.Millisecond,
		Valkey: Valkey{
			Port: 6379, TTL: time.Hour, Timeout: 5 * time.Millisecond, Prefix: "bc:",
			QueueSize: 65536, CircuitFailures: 3, CircuitOpen: 2 * time.Second,
		},
	}
}

// ErrUnknown is returned for a key the library does not know.
var ErrUnknown = errors.New("unknown option")

type option struct {
	help string
	set  func(c *Config, v string) error
}

var options = map[string]option{
	"db-file": {"path of the SQLite blocklist (required)", func(c *Config, v string) error {
		if v == "" {
			return errors.New("empty path")
		}
		c.DBFile = v
		return nil
	}},
	"db-block-ipv4": {"default sinkhole IPv4 for blocked names (0.0.0.0); none: answer NXDOMAIN", func(c *Config, v string) error {
		if v == "none" {
			c.BlockIPv4 = netip.Addr{}
			return nil
		}
		a, err := verdict.ParseIPv4(v)
		c.BlockIPv4 = a
		return err
	}},
	"db-block-ipv6": {"default sinkhole IPv6 for blocked names (::); none: answer NXDOMAIN", func(c *Config, v string) error {
		if v == "none" {
			c.BlockIPv6 = netip.Addr{}
			return nil
		}
		a, err := verdict.ParseIPv6(v)
		c.BlockIPv6 = a
		return err
	}},
	"db-block-ttl": {"TTL of blocked answers in seconds (10); used by dnsmasq", func(c *Config, v string) error {
		return intRange(v, 0, 86400, &c.BlockTTL)
	}},
	"blockcache-library": {"path of libblockcache.so; used by dnsmasq", func(c *Config, v string) error {
		if v == "" {
			return errors.New("empty path")
		}
		return nil
	}},
	"db-lru-size": {"verdicts kept in the in-process cache (1048576; 0 disables it)", func(c *Config, v string) error {
		return intRange(v, 0, 1<<30, &c.LRUSize)
	}},
	"db-poll-ms": {"how often to look for list changes, in milliseconds (250)", func(c *Config, v string) error {
		return durationMS(v, 10, 60000, &c.PollInterval)
	}},
	"db-filter": {"on (default): keep a membership filter of listed names so unlisted ones skip SQL; off", func(c *Config, v string) error {
		return off(v, &c.NoFilter)
	}},
	"db-cname": {"on (default): block a forwarded reply whose CNAME chain reaches a blocked name (CNAME cloaking); off", func(c *Config, v string) error {
		return off(v, &c.NoCNAME)
	}},
	"db-yield-ms": {"while queries keep coming, yield to Go's scheduler this often so its monitor thread stays asleep; also keeps GOMAXPROCS at 2 or more (8; 0: off; at most 9)", func(c *Config, v string) error {
		return durationMS(v, 0, 9, &c.Yield)
	}},
	"db-mmap-size": {"SQLite mmap_size in bytes per connection (0: off)", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a byte count", v)
		}
		c.MmapSize = n
		return nil
	}},
	"blockcache-metrics": {"address:port of the Prometheus endpoint (off)", func(c *Config, v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("%q is not address:port", v)
		}
		c.Metrics = v
		return nil
	}},
	"valkey-host": {"Valkey host; the tier is off without it", func(c *Config, v string) error {
		if v == "" || strings.ContainsAny(v, " /") {
			return fmt.Errorf("%q is not a host", v)
		}
		c.Valkey.Host = v
		return nil
	}},
	"valkey-port": {"Valkey port (6379)", func(c *Config, v string) error {
		return intRange(v, 1, 65535, &c.Valkey.Port)
	}},
	"valkey-cluster": {"comma-separated host:port seeds of a Valkey cluster", func(c *Config, v string) error {
		var seeds []string
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if _, p, err := net.SplitHostPort(s); err != nil || p == "" {
				return fmt.Errorf("%q is not host:port", s)
			}
			seeds = append(seeds, s)
		}
		c.Valkey.Cluster = seeds
		return nil
	}},
	"valkey-ttl": {"lifetime of a verdict in Valkey, in seconds (3600); 0: no expiry, for a Valkey with maxmemory-policy allkeys-lru (saves ~43 bytes per key)", func(c *Config, v string) error {
		var s int
		if err := intRange(v, 0, 30*86400, &s); err != nil {
			return err
		}
		c.Valkey.TTL = time.Duration(s) * time.Second
		return nil
	}},
	"valkey-password": {"Valkey password (AUTH)", func(c *Config, v string) error {
		c.Valkey.Password = v
		return nil
	}},
	"valkey-user": {"Valkey ACL user", func(c *Config, v string) error {
		c.Valkey.User = v
		return nil
	}},
	"valkey-db": {"Valkey database number (0)", func(c *Config, v string) error {
		return intRange(v, 0, 1<<16, &c.Valkey.DB)
	}},
	"valkey-tls": {"on: connect with TLS; insecure: TLS without certificate checks; off (default)", func(c *Config, v string) error {
		switch v {
		case "on", "yes", "1":
			c.Valkey.TLS, c.Valkey.TLSInsecure = true, false
		case "insecure":
			c.Valkey.TLS, c.Valkey.TLSInsecure = true, true
		case "off", "no", "0":
			c.Valkey.TLS, c.Valkey.TLSInsecure = false, false
		default:
			return fmt.Errorf("%q: want on, off or insecure", v)
		}
		return nil
	}},
	"valkey-tls-ca": {"PEM file of the CAs Valkey's TLS certificate must chain to (default: the system's)", func(c *Config, v string) error {
		return path(v, &c.Valkey.TLSCA)
	}},
	"valkey-tls-cert": {"PEM certificate this client presents to a Valkey that checks clients (with valkey-tls-key)", func(c *Config, v string) error {
		return path(v, &c.Valkey.TLSCert)
	}},
	"valkey-tls-key": {"PEM private key of valkey-tls-cert; dnsmasq's user= must be able to read it", func(c *Config, v string) error {
		return path(v, &c.Valkey.TLSKey)
	}},
	"valkey-timeout-ms": {"bound on one Valkey read, in milliseconds (5)", func(c *Config, v string) error {
		return durationMS(v, 1, 10000, &c.Valkey.Timeout)
	}},
	"valkey-prefix": {"prefix of every key this library writes (bc:)", func(c *Config, v string) error {
		if len(v) > 32 || strings.ContainsAny(v, " \t\r\n") {
			return fmt.Errorf("%q: at most 32 bytes, no spaces", v)
		}
		c.Valkey.Prefix = v
		return nil
	}},
	"valkey-read": {"always (default), auto (only while faster than SQLite) or never (write-back only)", func(c *Config, v string) error {
		switch v {
		case "always":
			c.Valkey.Read = ReadAlways
		case "auto":
			c.Valkey.Read = ReadAuto
		case "never":
			c.Valkey.Read = ReadNever
		default:
			return fmt.Errorf("%q: want always, auto or never", v)
		}
		return nil
	}},
	"valkey-queue": {"pending Valkey writes before new ones are dropped (65536)", func(c *Config, v string) error {
		return intRange(v, 1, 1<<24, &c.Valkey.QueueSize)
	}},
}

// Set parses one option.
func (c *Config) Set(key, value string) error {
	o, ok := options[key]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknown, key)
	}
	if err := o.set(c, strings.TrimSpace(value)); err != nil {
		return fmt.Errorf("option %s: %w", key, err)
	}
	return nil
}

// Validate checks what can only be checked once every option is set.
func (c *Config) Validate() error {
	if c.DBFile == "" {
		return errors.New("db-file is not set")
	}
	v := c.Valkey
	if (v.TLSCA != "" || v.TLSCert != "" || v.TLSKey != "") && !v.TLS {
		return errors.New("valkey-tls-ca, valkey-tls-cert and valkey-tls-key need valkey-tls=on")
	}
	if (v.TLSCert == "") != (v.TLSKey == "") {
		return errors.New("valkey-tls-cert and valkey-tls-key go together")
	}
	return nil
}

// Keys lists every option with its help text, sorted, for documentation.
func Keys() [][2]string {
	out := make([][2]string, 0, len(options))
	for k, o := range options {
		out = append(out, [2]string{k, o.help})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func path(v string, dst *string) error {
	if v == "" {
		return errors.New("empty path")
	}
	*dst = v
	return nil
}

func intRange(v string, lo, hi int, dst *int) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("%q: want an integer from %d to %d", v, lo, hi)
	}
	*dst = n
	return nil
}

func durationMS(v string, lo, hi int, dst *time.Duration) error {
	var n int
	if err := intRange(v, lo, hi, &n); err != nil {
		return err
	}
	*dst = time.Duration(n) * time.Millisecond
	return nil
}

// off parses an on|off option whose field says whether it is off, so that
// the zero Config has it on.
func off(v string, isOff *bool) error {
	switch v {
	case "on":
		*isOff = false
	case "off":
		*isOff = true
	default:
		return fmt.Errorf("%q: want on or off", v)
	}
	return nil
}
