module github.com/libblockcache/libblockcache

go 1.26.8

require (
	github.com/hashicorp/golang-lru/v2 v2.0.7
	github.com/mattn/go-sqlite3 v1.14.53
	github.com/miekg/dns v1.1.73
	github.com/valkey-io/valkey-go v1.0.79
	golang.org/x/net v0.57.0
	golang.org/x/sys v0.47.0
)

require golang.org/x/text v0.41.0 // indirect
