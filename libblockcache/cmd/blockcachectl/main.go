// Command blockcachectl creates, fills, queries and operates blocklists,
// with the same library code dnsmasq uses, so what it reports is what
// dnsmasq answers. Exit codes: 0 ok, 1 runtime error, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/libblockcache/libblockcache/libblockcache/blockcache"
	"github.com/libblockcache/libblockcache/libblockcache/config"
)

// usageError makes main exit with 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

type command struct {
	name, args, summary, examples string
	run                           func(ctx context.Context, c *cli, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"init", "", "create a database, or upgrade one made by other tools in place", "blockcachectl init --db /var/lib/blockcache/list.db", cmdInit},
		{"import", "--table TABLE [--ipv4 A] [--ipv6 B] [--server S] [--exceptions | --and-exceptions] [--strict] [--max-rejected P] [--replace [--max-removed P]] [--dry-run | --offline] FILE...", "import plain, hosts, AdBlock, dnsmasq address=, RPZ or regex lists, gzipped or not (- is stdin) in one transaction; a missing --db is made a new list",
			"blockcachectl import --db list.db --table domain hosts.txt adblock-dns.txt\n  blockcachectl import --replace --db list.db --table domain feed1.txt feed2.txt   # daily: drop what the feeds dropped\n  blockcachectl import --replace --and-exceptions --db list.db --table domain feed.txt   # its @@ rules too, one change\n  blockcachectl import --replace --dry-run --db list.db --table domain feed1.txt feed2.txt   # what it would add and remove\n  curl -s URL | blockcachectl import --db list.db --table domain_exact -\n  blockcachectl import --db list.db --table domain_regex patterns.txt\n  blockcachectl import --offline --db /srv/new.db --table domain billion.txt   # a file nothing reads yet: half the disk\n  blockcachectl import --db list.db --table domain_dns_allow allow.txt   # an allowlist: resolved as usual, never blocked\n  blockcachectl import --db list.db --table domain_dns_allow --exceptions feed.txt   # its @@ rules\n  blockcachectl import --db list.db --table domain_dns_allow --server 9.9.9.9 allow.txt", cmdImport},
		{"add", "--table TABLE [--ipv4 A] [--ipv6 B] [--server S] NAME...", "add single entries to an existing list", "blockcachectl add --db list.db --table domain ads.example tracker.example\n  blockcachectl add --db list.db --table domain_dns_allow cdn.ads.example   # never blocked, resolved as usual", cmdAdd},
		{"rm", "--table TABLE NAME...", "remove single entries", "blockcachectl rm --db list.db --table domain ads.example", cmdRm},
		{"export", "--table TABLE", "write a table back as a list, one key a line (per-rule addresses and servers are not written)", "blockcachectl export --db list.db --table domain > domains.txt", cmdExport},
		{"publish", "DEST", "replace the list at DEST with a consistent copy of --db; running dnsmasqs switch to it as a whole",
			"blockcachectl publish --db /srv/master.db /var/lib/blockcache/list.db\n  blockcachectl publish --db /srv/master.db /srv/out/list.db && rsync /srv/out/list.db node:/var/lib/blockcache/list.db", cmdPublish},
		{"fork", "", "give the list a new identity, keeping its rows: for a restored backup (an older copy of a list) before it replaces the list, so that no cache serves it a verdict of the other history",
			"cp /backup/list.db /var/lib/blockcache/list.db.new && blockcachectl fork --db /var/lib/blockcache/list.db.new && mv /var/lib/blockcache/list.db.new /var/lib/blockcache/list.db\n  cp /backup/master.db /srv/master.db && blockcachectl fork --db /srv/master.db && blockcachectl publish --db /srv/master.db /srv/out/list.db", cmdFork},
		{"filter", "[--if-needed]", "save the membership filter of listed names in the list, so that dnsmasq starts load it instead of reading every row",
			"blockcachectl filter --db /srv/master.db && blockcachectl publish --db /srv/master.db /var/lib/blockcache/list.db\n  blockcachectl filter --if-needed --db /var/lib/blockcache/list.db   # from a timer", cmdFilter},
		{"explain", "NAME...", "show the verdict, the rule and table that matched, and which tier answers", "blockcachectl explain --conf /etc/dnsmasq.conf www.ads.example", cmdExplain},
		{"stats", "[--no-count]", "row counts, list version, database size, Valkey figures", "blockcachectl stats --conf /etc/dnsmasq.conf\n  blockcachectl stats --no-count --db /srv/billion.db   # at once: counting reads every row", cmdStats},
		{"warm", "[--top N] FILE...", "pre-load Valkey with the verdicts of names (plain list or dnsmasq query log, gzipped or not)", "blockcachectl warm --conf /etc/dnsmasq.conf --top 50000 /var/log/dnsmasq.log /var/log/dnsmasq.log.2.gz", cmdWarm},
	}
}

// cli holds what every command shares.
type cli struct {
	fs     *flag.FlagSet
	cfg    config.Config
	db     string
	conf   string
	sets   []string
	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		topUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintf(stdout, "blockcachectl: %s\n", blockcache.ReadBuild())
		return 0
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == args[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "blockcachectl: unknown command %q\n\n", args[0])
		topUsage(stderr)
		return 2
	}
	c := &cli{cfg: config.Default(), stdout: stdout, stderr: stderr, stdin: stdin}
	c.fs = flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	c.fs.SetOutput(stderr)
	c.fs.StringVar(&c.db, "db", "", "blocklist database (default: db-file from --conf)")
	c.fs.StringVar(&c.conf, "conf", "", "dnsmasq configuration to read db-file and valkey-* from (with its conf-file= and conf-dir= includes)")
	c.fs.Var((*multi)(&c.sets), "set", "library option KEY=VALUE, as in dnsmasq.conf (repeatable; overrides --conf)")
	c.fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: blockcachectl %s [--db FILE | --conf FILE] %s\n\n%s\n\nflags:\n", cmd.name, cmd.args, cmd.summary)
		c.fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nexamples:\n  %s\n", cmd.examples)
	}
	err := cmd.run(ctx, c, args[1:])
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "blockcachectl %s: %v\n", cmd.name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "blockcachectl %s: %v\n", cmd.name, err)
		return 1
	}
}

func topUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: blockcachectl COMMAND [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-8s %s\n", "version", "the build: source revision and Go release (the library's SIGUSR1 line and metrics name theirs)")
	fmt.Fprintf(w, "\nEvery command takes --db FILE or --conf /etc/dnsmasq.conf; `blockcachectl COMMAND --help` shows its flags and examples.\nExit codes: 0 ok, 1 runtime error, 2 usage error.\n")
}

// parse parses flags and resolves the configuration: --conf first, then
// --set, then --db.
func (c *cli) parse(args []string) error {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if c.conf != "" {
		if err := c.cfg.LoadDnsmasqConf(c.conf); err != nil {
			return err
		}
	}
	for _, kv := range c.sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return usagef("--set %q: want KEY=VALUE", kv)
		}
		if err := c.cfg.Set(k, v); err != nil {
			return usageError{err.Error()}
		}
	}
	if c.db != "" {
		c.cfg.DBFile = c.db
	}
	if c.cfg.DBFile == "" {
		return usagef("no database: give --db FILE or --conf with a db-file line")
	}
	return nil
}
