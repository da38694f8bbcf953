#!/usr/bin/env bash
# Regenerates assets/kwatch.svg, the picture at the top of the README, from a real run: the staged scene of
# assets/scene.py in two network namespaces of its own joined by a veth pair (192.0.2.0/24), the link then cut so
# that keepalive probes and retransmissions go unanswered, and the real live view in a tmux pane, captured with its
# colours and drawn as SVG by assets/ansi2svg.py. Needs root, iproute2, tmux, python3; builds kwatch if needed.
#   sudo bash assets/screenshot.sh [OUTPUT.svg]
# Everything it starts it stops, by PID, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-assets/kwatch.svg}
kwatch=${KWATCH:-target/release/kwatch}
[ -x "$kwatch" ] || cargo build --release --locked
kwatch=$(realpath "$kwatch")
py=$(command -v python3)

tag=$$
a=kwatch-shot-$tag-a
b=kwatch-shot-$tag-b
tmux_socket=kwatch-shot-$tag
scenes=()
cleanup() {
  local pid
  tmux -L "$tmux_socket" kill-server 2>/dev/null || true
  # Each scene is the leader of its own process group (setsid): the group holds its named children.
  for pid in "${scenes[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ip netns add "$a"
ip netns add "$b"
ip link add "kwa$tag" netns "$a" type veth peer name "kwb$tag" netns "$b"
ip -n "$a" addr add 192.0.2.1/24 dev "kwa$tag"
ip -n "$b" addr add 192.0.2.2/24 dev "kwb$tag"
for ns in "$a" "$b"; do
  ip -n "$ns" link set lo up
done
ip -n "$a" link set "kwa$tag" up
ip -n "$b" link set "kwb$tag" up

setsid ip netns exec "$b" "$py" assets/scene.py far & scenes+=($!)
for _ in $(seq 50); do ip netns exec "$b" ss -Htln | grep -q ':5672' && break; sleep 0.1; done
# The live view as a user would start it, with thresholds short enough for a scene seconds old, in a PID
# namespace of its own with the near side of the scene: only the scene's processes are listed (not this host's),
# and all of them end with kwatch (unshare --kill-child, kwatch being PID 1 there).
cols=132 rows=30
tmux -L "$tmux_socket" new-session -d -s shot -x "$cols" -y "$rows" \
  env TERM=xterm-256color unshare --pid --fork --kill-child --mount-proc ip netns exec "$a" \
  sh -c '"$1" "$2" near & exec "$3" --close-wait-after 1s --idle-after 5s --interval 500ms' \
  sh "$py" "$(realpath assets/scene.py)" "$kwatch"
for _ in $(seq 100); do [ "$(ip netns exec "$a" ss -Htn state established | wc -l)" -ge 14 ] && break; sleep 0.1; done
# The far side vanishes without a word: probes and retransmissions go unanswered from now on.
ip -n "$b" link set "kwb$tag" down

# Wait for every kind of row the picture is for: CLOSE-WAIT, a dead peer suspect, a retransmitting socket.
capture=""
for _ in $(seq 120); do
  sleep 0.5
  capture=$(tmux -L "$tmux_socket" capture-pane -p -t shot)
  if grep -q 'dead_peer_suspect\|dead peer' <<<"$capture" && grep -q 'CLOSE-WAIT' <<<"$capture" &&
    grep -qi 'retransmit' <<<"$capture"; then
    break
  fi
done
grep -q 'CLOSE-WAIT' <<<"$capture" || { echo "screenshot.sh: the scene never showed up:"; echo "$capture"; exit 1; } >&2
# The cursor on the first row (it follows the socket it was on when the view opened).
tmux -L "$tmux_socket" send-keys -t shot Home
sleep 1
tmux -L "$tmux_socket" capture-pane -e -p -t shot | "$py" assets/ansi2svg.py --title "kwatch live view" >"$out.tmp"
mv "$out.tmp" "$out"
echo "screenshot.sh: wrote $out"
