#!/usr/bin/env bash
# CI, after the tests: build the Debian package, install it on this machine with dpkg, check what it installed
# (binary, man pages, completions, the systemd units of the exporter and the recorder, their capabilities and system
# call filters), run the exporter's
# end-to-end test (a real Prometheus scraping `kwatch serve`) against the installed /usr/bin/kwatch, then remove
# and purge it. Runs as root. The package is purged on exit, also when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
unit=/usr/lib/systemd/system/kwatch.service
record_unit=/usr/lib/systemd/system/kwatch-record.service
work=$(mktemp -d)
pids=()

step() { printf '\n== ci-deb: %s (%ss)\n' "$1" "$SECONDS"; }
fail() { echo "ci-deb: $*" >&2; exit 1; }
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  dpkg --purge kwatch >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

step "cargo-deb $CARGO_DEB_VERSION"
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  started=$SECONDS
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
  echo "ci-deb: installing cargo-deb took $((SECONDS - started)) s"
fi

step "build the package"
bash packaging/build-deb.sh
deb=$(ls -t target/debian/kwatch_*.deb | head -1)
dpkg-deb --info "$deb"

step "install $deb"
if dpkg -s kwatch >/dev/null 2>&1; then fail "a kwatch package is already installed: remove it first"; fi
dpkg -i "$deb"
[ "$(command -v kwatch)" = /usr/bin/kwatch ] || fail "kwatch on PATH is '$(command -v kwatch)', not /usr/bin/kwatch"

step "the installed binary"
kwatch --version
expected="kwatch $(cargo metadata --format-version 1 --no-deps --locked | python3 -c 'import json,sys; print(json.load(sys.stdin)["packages"][0]["version"])')"
if git rev-parse --short HEAD >/dev/null 2>&1; then expected="$expected ($(git rev-parse --short HEAD))"; fi
[ "$(kwatch --version)" = "$expected" ] || fail "kwatch --version says '$(kwatch --version)', expected '$expected'"
/usr/bin/kwatch --once >"$work/once.txt"
head -5 "$work/once.txt"
grep -q '^State' "$work/once.txt" || grep -qi 'socket' "$work/once.txt" || fail "kwatch --once printed no table"

step "man pages"
for page in kwatch kwatch-serve kwatch-kill kwatch-keepalive kwatch-record kwatch-replay kwatch-generate; do
  errors=$(MANWIDTH=80 MANPAGER=cat man --warnings "$page" 2>&1 >"$work/$page.txt") || fail "man $page failed: $errors"
  [ -z "$errors" ] || fail "man $page warns: $errors"
  grep -q "^NAME" "$work/$page.txt" || fail "man $page rendered no NAME section"
done
grep -q 'sport:443' "$work/kwatch-kill.txt" || fail "man kwatch-kill does not list the filter terms"
sed -n '1,12p' "$work/kwatch.txt"

step "completions"
for f in /usr/share/bash-completion/completions/kwatch /usr/share/zsh/vendor-completions/_kwatch \
  /usr/share/fish/vendor_completions.d/kwatch.fish; do
  [ -s "$f" ] || fail "missing completion $f"
done
# The installed bash completion, as bash-completion would load it, completes a long flag.
reply=$(bash --norc --noprofile -c '
  source /usr/share/bash-completion/completions/kwatch
  COMP_LINE="kwatch --sta"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(kwatch --sta); COMP_CWORD=1
  func=$(complete -p kwatch | sed -n "s/.*-F \([^ ]*\) .*/\1/p")
  "$func" kwatch --sta kwatch; echo "${COMPREPLY[*]}"')
[ "$reply" = "--state" ] || fail "bash completes 'kwatch --sta' to '$reply', not '--state'"

step "systemd unit"
systemd-analyze verify "$unit"
# docs/install.md states the score (2.1) and why it cannot go lower; fail if a change makes it worse.
systemd-analyze security --offline=true --threshold=21 "$unit" | tail -1
# The unit's capabilities are enough: as nobody with exactly those, kwatch finds the owner of a socket held by
# another user, and reads its keepalive options, as root does.
caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
[ -n "$caps" ] || fail "no AmbientCapabilities in $unit"
kwatch serve --listen 127.0.0.1:0 2>"$work/serve.err" & pids+=($!)
server=$!
for _ in $(seq 50); do grep -q 'serving metrics on' "$work/serve.err" && break; sleep 0.1; done
port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$work/serve.err")
[ -n "$port" ] || fail "kwatch serve did not start: $(cat "$work/serve.err")"
setpriv --reuid 4242 --regid 4242 --clear-groups bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; exec sleep 120" & pids+=($!)
holder=$!
owners() { python3 -c '
import json, sys
doc = json.load(sys.stdin)
port = int(sys.argv[1])
rows = sorted((s["local_port"], s["peer_port"], s["state"], sorted(o["pid"] for o in s["owners"])) for s in doc["sockets"])
print("\n".join(map(str, rows)))
print("unreadable", len(doc["unreadable_processes"]))' "$port"; }
# Both ends settled: the holder's socket, and the exporter's accepted one (owned by it once it has accepted), so
# that root and the capped run below see the same sockets.
for _ in $(seq 50); do
  kwatch --once --json --port "$port" | owners >"$work/root.txt"
  grep -q "\[$holder\]" "$work/root.txt" && grep -q "'established', \[$server\]" "$work/root.txt" && break
  sleep 0.1
done
grep -q "\[$holder\]" "$work/root.txt" || fail "root does not see the holder $holder: $(cat "$work/root.txt")"
grep -q "'established', \[$server\]" "$work/root.txt" ||
  fail "root does not see the exporter $server own its end of the holder's connection: $(cat "$work/root.txt")"
setpriv --reuid nobody --regid nogroup --clear-groups --inh-caps="-all,$caps" --ambient-caps="$caps" \
  kwatch --once --json --port "$port" | owners >"$work/capped.txt"
diff -u "$work/root.txt" "$work/capped.txt" || fail "with only $caps, kwatch sees less than root"
setpriv --reuid nobody --regid nogroup --clear-groups --inh-caps=-all \
  kwatch --once --json --port "$port" | owners >"$work/nocaps.txt"
if diff -q "$work/root.txt" "$work/nocaps.txt" >/dev/null; then fail "without capabilities kwatch sees as much as root: the check proves nothing"; fi
echo "ci-deb: with $caps as nobody, kwatch sees what root sees"
# Every system call the installed kwatch makes (a snapshot, a scrape) passes the unit's SystemCallFilter.
if command -v strace >/dev/null; then
  strace -f -qq -o "$work/once.trace" kwatch --once >/dev/null
  strace -f -qq -o "$work/serve.trace" kwatch serve --listen 127.0.0.1:0 2>"$work/serve2.err" & pids+=($!)
  for _ in $(seq 100); do grep -q 'serving metrics on' "$work/serve2.err" && break; sleep 0.1; done
  port2=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$work/serve2.err")
  [ -n "$port2" ] || fail "kwatch serve under strace did not start: $(cat "$work/serve2.err")"
  exec 3<>"/dev/tcp/127.0.0.1/$port2"
  printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
  grep -c '^kwatch_' <&3 || fail "no metrics from kwatch serve under strace"
  exec 3<&-
  # Stop kwatch itself (strace, signalled, would stay attached); strace ends with it.
  tracer=${pids[-1]}
  kill $(ps -o pid= --ppid "$tracer")
  wait "$tracer" 2>/dev/null || true
  python3 packaging/check-syscalls.py "$unit" "$work/once.trace" "$work/serve.trace"
else
  fail "strace not found (apt-get install strace)"
fi

step "the recorder's systemd unit"
systemd-analyze verify "$record_unit"
# docs/install.md states the score (1.7) and what remains; fail if a change makes it worse.
systemd-analyze security --offline=true --threshold=17 "$record_unit" | tail -1
grep -qx 'StateDirectory=kwatch' "$record_unit" || fail "$record_unit has no StateDirectory=kwatch"
grep -qx 'ExecStart=/usr/bin/kwatch record /var/lib/kwatch $KWATCH_RECORD_ARGS' "$record_unit" ||
  fail "$record_unit does not run 'kwatch record /var/lib/kwatch'"
record_caps=$(sed -n 's/^AmbientCapabilities=//p' "$record_unit" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
[ "$record_caps" = "$caps" ] || fail "the recorder's capabilities '$record_caps' are not the exporter's '$caps'"
# As nobody with exactly those capabilities (the unit's transient user), under strace: the recorder records the
# socket the other user holds with its owner, makes only calls the unit's filter allows, and opens only the
# socket family the unit allows.
chmod 711 "$work"
mkdir "$work/rec" "$work/rec-trace"
chown nobody:nogroup "$work/rec" "$work/rec-trace"
setpriv --reuid nobody --regid nogroup --clear-groups --inh-caps="-all,$caps" --ambient-caps="$caps" \
  strace -f -qq -o "$work/rec-trace/record.trace" kwatch record "$work/rec" --interval 200ms \
  2>"$work/record.err" & pids+=($!)
recorder_tracer=$!
for _ in $(seq 100); do
  # Until the first refresh is written, replay has nothing to show (an error line, no document).
  if kwatch replay "$work/rec" --once --json --port "$port" >"$work/replayed.json" 2>/dev/null; then
    owners <"$work/replayed.json" >"$work/replayed.txt"
    grep -q "\[$holder\]" "$work/replayed.txt" && break
  fi
  sleep 0.1
done
grep -qs "\[$holder\]" "$work/replayed.txt" ||
  fail "the recorder, as nobody with $caps, did not record the holder $holder: $(cat "$work/replayed.txt" "$work/record.err" 2>/dev/null)"
# Stop kwatch itself (SIGTERM: it ends its refresh and syncs); strace ends with it.
kill $(ps -o pid= --ppid "$recorder_tracer")
wait "$recorder_tracer" 2>/dev/null || true
families=$(grep -o 'socket(AF_[A-Z0-9]*' "$work/rec-trace/record.trace" | sort -u | sed 's/socket(//' | tr '\n' ' ')
[ "$families" = "AF_NETLINK " ] || fail "the recorder opened sockets of '$families'; $record_unit allows AF_NETLINK only"
python3 packaging/check-syscalls.py "$record_unit" "$work/rec-trace/record.trace"
echo "ci-deb: as nobody with $caps, the recorder recorded the holder; every call passes $record_unit"

step "the tests of the installed binary: scraped by a real Prometheus, --help, man pages, completions, dashboard"
# The tests, compiled to run /usr/bin/kwatch instead of target/debug/kwatch (tests/common/mod.rs: KWATCH).
KWATCH_TEST_BIN=/usr/bin/kwatch cargo test --locked --test cli_help --test generate --test deploy \
  --test serve_prometheus -- --test-threads 2 real_prometheus_ help_ version_ man_ bash_ dashboard_ 2>&1 |
  tee "$work/tests.txt"
grep -q '^test real_prometheus_scrapes_.* ok$' "$work/tests.txt" || fail "the Prometheus end-to-end test did not run"

step "remove and purge"
dpkg -r kwatch
[ ! -e /usr/bin/kwatch ] || fail "/usr/bin/kwatch is still there after dpkg -r"
[ -e /etc/default/kwatch ] || fail "dpkg -r removed the conffile /etc/default/kwatch (only --purge may)"
dpkg --purge kwatch
[ ! -e /etc/default/kwatch ] || fail "/etc/default/kwatch is still there after dpkg --purge"
echo "ci-deb: package built, installed, checked, removed (${SECONDS} s)"
