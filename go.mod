module github.com/libblockcache/libblockcache

go 1.26.8

require github.com/mattn/go-sqlite3 v1.14.53

require (
	github.com/hashicorp/golang-lru/v2 v2.0.7 // indirect
	github.com/valkey-io/valkey-go v1.0.79 // indirect
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.41.0 // indirect
)
