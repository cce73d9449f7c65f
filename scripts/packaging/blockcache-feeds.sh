#!/bin/sh
# Imports the day's blocklist feeds into the list, replacing what they
# listed before: a name every feed dropped is unlisted in the same
# transaction, and running dnsmasqs switch to the new list as a whole.
# Runs from blockcache-feeds.service. It changes nothing when a feed fails
# to download, when the feeds hold no name, when they would unlist more
# than MAX_REMOVED percent of the table and more than 100 names (a feed
# cut short), or when more than MAX_REJECTED percent of one file's entries
# are rejected (an error page or a file of another format saved as a feed).
#
# Environment:
#   FEEDS        the feeds' URLs, separated by spaces (required)
#   LOCAL        files of hand-made entries, imported with the feeds
#   DB           the list (default /var/lib/blockcache/list.db)
#   TABLE        the table the feeds fill (default domain)
#   MAX_REMOVED  percentage (default 50)
#   MAX_REJECTED percentage (default 50)
#   EXCEPTIONS   1: also import the feeds' exceptions (AdBlock @@ rules, RPZ
#                rpz-passthru, server=/name/#) into domain_dns_allow, to
#                dnsmasq's usual servers, where they outrank the blocks, in
#                the same transaction. They replace the allow rules to "#"
#                (rules to a server of your own stay): keep hand-made ones
#                in a LOCAL file, written as @@||name^ or server=/name/#.
#                MAX_REMOVED guards them too (removing up to 100 names is
#                always allowed, so a handful of exceptions dropped is fine)
#   DRY_RUN      1: print what the import would add and remove, change nothing
#   CTL          blockcachectl (default /usr/local/bin/blockcachectl)
#   TMPDIR       holds the downloads and, unless SQLITE_TMPDIR is set,
#                the import's table of the keys it read (~30 bytes a name):
#                point it at a disk with room for both on large feeds
set -eu
: "${FEEDS:?FEEDS: the feeds URLs, separated by spaces}"
db=${DB:-/var/lib/blockcache/list.db}
ctl=${CTL:-/usr/local/bin/blockcachectl}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
i=0
for url in $FEEDS; do
	i=$((i + 1))
	curl -fsSL --retry 3 --max-time 600 -o "$dir/feed$i.txt" "$url"
	echo "feed$i.txt: $url" # import's reports name the file
done
dry=
ex=
[ "${DRY_RUN:-}" = 1 ] && dry=--dry-run
[ "${EXCEPTIONS:-}" = 1 ] && ex=--and-exceptions
# shellcheck disable=SC2086 # LOCAL is a list of files; dry and ex are one flag or none
"$ctl" import --replace $dry $ex --max-removed "${MAX_REMOVED:-50}" --max-rejected "${MAX_REJECTED:-50}" --quiet --db "$db" --table "${TABLE:-domain}" "$dir"/feed*.txt ${LOCAL:-}
[ -n "$dry" ] && exit 0
# A large import may have left the saved filter past its bound.
"$ctl" filter --if-needed --db "$db"
