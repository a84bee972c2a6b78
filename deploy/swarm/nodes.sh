#!/usr/bin/env bash
# A local Docker Swarm of 1 to 3 nodes on this machine, for tests (see README.md).
# Node 1 is the host's own dockerd; nodes 2..N are extra dockerd daemons, each in a network
# namespace of its own joined to the host by a veth pair on 10.213.K.0/30.
#   bash deploy/swarm/nodes.sh up RUN_ID N           # N = 1..3; prints KEY=VALUE lines
#   bash deploy/swarm/nodes.sh down RUN_ID           # removes what `up` made; idempotent
#   bash deploy/swarm/nodes.sh load RUN_ID IMAGE...  # copies host images to nodes 2..N
#   bash deploy/swarm/nodes.sh stop RUN_ID K         # stops node K's daemon (K = 2..N)
#   bash deploy/swarm/nodes.sh start RUN_ID K        # starts it again; it rejoins the swarm
# Only KEY=VALUE lines go to stdout; progress and errors go to stderr. `up` prints
#   run=RUN_ID  state=DIR  nodes=N  manager=ADDR:2377
# and for each node K = 1..N (`start` prints node K's four lines):
#   node-K=SWARM_HOSTNAME  sock-K=DOCKER_HOST  addr-K=SWARM_ADDRESS  role-K=manager|worker
# Node K carries the label tgstack.node=node-K. Run as root; one run at a time per machine.
set -euo pipefail

STATE_BASE=${TGSTACK_SWARM_STATE:-/var/lib/tgstack-swarm}
LOCK=/run/tgstack-swarm.lock
NET=10.213            # the test subnet: 10.213.0.0/16, one /30 per extra node
MAX_NODES=3
WAIT=60               # seconds to wait for a daemon, a join, nodes to be Ready
HOST_SOCK=unix:///var/run/docker.sock
HERE=$(cd "$(dirname "$0")" && pwd)

log() { printf 'swarm: %s\n' "$*" >&2; }
die() { printf 'swarm: %s\n' "$*" >&2; exit 1; }
usage() {
  sed -n 's/^#   bash /usage: bash /p' "$0" >&2
  exit 2
}

# The next of 100 /16 pools 10.100-199.0.0/16 (a machine-wide sequence kept in STATE_BASE,
# under the lock), skipping any this machine routes; prints it.
next_addr_pool() {
  local seq=$STATE_BASE/addr-pool-sequence n i pool
  n=$(cat "$seq" 2>/dev/null || echo 0)
  [[ $n =~ ^[0-9]+$ ]] || n=0
  for ((i = 0; i < 100; i++)); do
    pool="10.$((100 + n % 100)).0.0/16"
    n=$((n + 1))
    if [ -z "$(ip -4 route show match "$pool" | grep -v '^default' || true)" ]; then
      echo "$n" >"$seq"
      echo "$pool"
      return 0
    fi
  done
  die "every pool 10.100-199.0.0/16 is routed on this machine"
}

# ---- names, all derived from RUN_ID ------------------------------------------------------
set_run() {
  RUN=$1
  [[ $RUN =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$ ]] \
    || die "RUN_ID must be 1-32 characters of [A-Za-z0-9_-], starting with a letter or digit"
  SHORT=$(printf '%s' "$RUN" | sha256sum | cut -c1-8)   # interface names are 15 chars at most
  STATE=$STATE_BASE/$RUN
  COMMENT="tgstack-swarm:$RUN"
}
ns_of() { echo "tgs-$RUN-n$1"; }              # network namespace, hostname and cgroup parent
veth_of() { echo "tgs$1$SHORT"; }             # host end of the veth (12 chars)
sock_of() { echo "unix:///run/tgs-$RUN-n$1.sock"; }
dir_of() { echo "$STATE/n$1"; }
host_ip() { echo "$NET.$1.1"; }               # host end of node K's veth
node_ip() { echo "$NET.$1.2"; }               # namespace end
dk() { local k=$1; shift; docker -H "$(sock_of "$k")" "$@"; }

lock() {
  exec 9>"$LOCK"
  flock -w 600 9 || die "another nodes.sh holds $LOCK"
}

need_docker() {
  docker info >/dev/null 2>&1 \
    || die "the host's docker does not answer: run 'bash scripts/test-env.sh' (installs docker.io and starts dockerd)"
}

# pid of node K's dockerd if it runs (checked against its command line, not just the pidfile)
daemon_pid() {
  local pidfile pid
  pidfile=$(dir_of "$1")/dockerd.pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--pidfile $pidfile" || return 1
  echo "$pid"
}

# ---- one extra node ----------------------------------------------------------------------
make_netns() {
  local k=$1 ns veth
  ns=$(ns_of "$k")
  veth=$(veth_of "$k")
  ip netns add "$ns"
  ip link add "$veth" type veth peer name "${veth}p" netns "$ns"
  ip addr add "$(host_ip "$k")/30" dev "$veth" noprefixroute
  ip link set "$veth" up
  # The host reaches every node from ONE address, the swarm's (node 2's host end): the overlay
  # driver's static VXLAN entries name each node by its advertised address, and the kernel
  # drops VXLAN packets whose source differs from that entry. Without `src` the host would
  # send to node 3 from 10.213.3.1 and node 3 would drop them (node 1 <-> 3 traffic lost).
  ip route add "$NET.$k.0/30" dev "$veth" src "$(host_ip 2)"
  ip -n "$ns" link set "${veth}p" name eth0
  ip -n "$ns" addr add "$(node_ip "$k")/30" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  # Every other node's address is reached through the host, which forwards between veths.
  # No default route: a pull from a registry fails at once instead of timing out (~20 s).
  ip -n "$ns" route add "$NET.0.0/16" via "$(host_ip "$k")"
  # The host daemon's FORWARD policy is DROP: let this node talk to the test subnet.
  iptables -I FORWARD 1 -i "$veth" -s "$NET.$k.0/30" -d "$NET.0.0/16" \
    -m comment --comment "$COMMENT" -j ACCEPT
}

start_daemon() {
  local k=$1 ns dir sock pid i
  ns=$(ns_of "$k")
  dir=$(dir_of "$k")
  sock=$(sock_of "$k")
  [ -e "/run/netns/$ns" ] || die "node $k: no network namespace $ns (run 'up' first)"
  if pid=$(daemon_pid "$k"); then die "node $k: dockerd already runs (pid $pid)"; fi
  mkdir -p "$dir/data" "$dir/exec"
  # nsenter, not `ip netns exec` (that remounts /sys and hides the cgroup mounts);
  # unshare --uts so that the node has a hostname (and swarm node name) of its own.
  # setsid and the redirections detach it from the caller (its stdout stays ours alone).
  # --dns: the node's own address, where refuse-dns.py answers every query with REFUSED.
  # The namespace has no route out, so a name the swarm does not know (a service whose
  # node is down) would otherwise wait 20 s for resolver timeouts, and a program that
  # resolves in its event loop (Redis Sentinel) would stall, go into TILT and fail its
  # healthcheck. (The stop below kills it with everything else in the namespace.)
  setsid nsenter --net="/run/netns/$ns" -- python3 "$HERE/refuse-dns.py" "$(node_ip "$k")" \
    </dev/null >>"$dir/dns.log" 2>&1 9>&- &
  # shellcheck disable=SC2016 # $1 and $@ are the inner shell's
  setsid nsenter --net="/run/netns/$ns" -- unshare --uts -- \
    sh -c 'hostname "$1" && shift && exec "$@"' sh "$ns" \
    dockerd --data-root "$dir/data" --exec-root "$dir/exec" -H "$sock" \
    --pidfile "$dir/dockerd.pid" --bridge=none --iptables=false --cgroup-parent "$ns" \
    --dns "$(node_ip "$k")" \
    </dev/null >>"$dir/dockerd.log" 2>&1 9>&- &
  pid=$!
  for ((i = 0; i < WAIT * 2; i++)); do
    timeout 5 docker -H "$sock" info >/dev/null 2>&1 && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$dir/dockerd.log" >&2
      die "node $k: dockerd exited (log: $dir/dockerd.log)"
    fi
    sleep 0.5
  done
  tail -n 20 "$dir/dockerd.log" >&2
  die "node $k: dockerd did not answer on $sock within ${WAIT}s (log: $dir/dockerd.log)"
}

# Stops node K's daemon and everything it left: SIGTERM (it stops its containers and its
# containerd), bounded wait, SIGKILL; then any process left in its namespace or cgroups, and
# its mounts. What is on disk stays (start brings the node back as it was).
stop_daemon() {
  local k=$1 dir ns pid i cpid pids cg
  dir=$(dir_of "$k")
  ns=$(ns_of "$k")
  if pid=$(daemon_pid "$k"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "node $k: dockerd (pid $pid) still runs after 30s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  # containerd that dockerd started, then anything else in the namespace (shims) and in the
  # node's cgroups (container processes, which have network namespaces of their own).
  if [ -s "$dir/exec/containerd/containerd.pid" ]; then
    cpid=$(cat "$dir/exec/containerd/containerd.pid")
    if [[ $cpid =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$cpid/cmdline" 2>/dev/null | grep -qF "$dir/exec/"; then
      kill -KILL "$cpid" 2>/dev/null || true
    fi
  fi
  for ((i = 0; i < 10; i++)); do
    pids=$( { if [ -e "/run/netns/$ns" ]; then ip netns pids "$ns" 2>/dev/null || true; fi
              find /sys/fs/cgroup -maxdepth 2 -type d -name "$ns" -print0 2>/dev/null \
                | xargs -0 -r -I{} find {} -name cgroup.procs -exec cat {} + 2>/dev/null || true; } \
            | sort -u)
    [ -n "$pids" ] || break
    # shellcheck disable=SC2086 # one pid a word
    kill -KILL $pids 2>/dev/null || true
    sleep 0.5
  done
  rm -f "$dir/dockerd.pid" "/run/tgs-$RUN-n$k.sock"
  unmount_under "$dir"
  # the node's cgroups (dockerd makes them under --cgroup-parent); deepest first
  while IFS= read -r -d '' cg; do
    rmdir "$cg" 2>/dev/null || true
  done < <(find /sys/fs/cgroup -maxdepth 2 -type d -name "$ns" -print0 2>/dev/null \
           | xargs -0 -r -I{} find {} -depth -type d -print0 2>/dev/null)
}

unmount_under() {
  local dir=$1 m
  [ -d "$dir" ] || return 0
  # deepest first; lazy, as a killed daemon may leave busy overlay and nsfs mounts
  while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

remove_node() {
  local k=$1 ns veth
  ns=$(ns_of "$k")
  veth=$(veth_of "$k")
  if timeout 5 docker -H "$(sock_of "$k")" info >/dev/null 2>&1; then
    timeout 30 docker -H "$(sock_of "$k")" swarm leave --force >/dev/null 2>&1 || true
  fi
  stop_daemon "$k"
  while iptables -C FORWARD -i "$veth" -s "$NET.$k.0/30" -d "$NET.0.0/16" \
      -m comment --comment "$COMMENT" -j ACCEPT 2>/dev/null; do
    iptables -D FORWARD -i "$veth" -s "$NET.$k.0/30" -d "$NET.0.0/16" \
      -m comment --comment "$COMMENT" -j ACCEPT
  done
  if ip link show "$veth" >/dev/null 2>&1; then ip link del "$veth"; fi
  if [ -e "/run/netns/$ns" ]; then ip netns del "$ns"; fi
}

# ---- the whole swarm ---------------------------------------------------------------------
node_count() {
  local n
  n=$(cat "$STATE/nodes" 2>/dev/null) || die "no run $RUN (no $STATE/nodes): run 'up' first"
  echo "$n"
}

wait_ready() {
  local want=$1 i ready=0
  for ((i = 0; i < WAIT * 2; i++)); do
    ready=$(docker node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true)
    [ "$ready" -ge "$want" ] && return 0
    sleep 0.5
  done
  docker node ls >&2 || true
  die "only $ready of $want swarm nodes are Ready after ${WAIT}s"
}

print_node() {
  local k=$1 n=$2 role=manager
  if [ "$k" = 1 ]; then
    echo "node-1=$(docker node inspect self --format '{{.Description.Hostname}}')"
    echo "sock-1=$HOST_SOCK"
    if [ "$n" -gt 1 ]; then echo "addr-1=$(host_ip 2)"; else echo "addr-1=127.0.0.1"; fi
  else
    [ "$n" = 2 ] && role=worker
    echo "node-$k=$(ns_of "$k")"
    echo "sock-$k=$(sock_of "$k")"
    echo "addr-$k=$(node_ip "$k")"
  fi
  echo "role-$k=$role"
}

cmd_up() {
  [ $# = 2 ] || usage
  set_run "$1"
  local n=$2 k i state advertise token role id old clash fs pool
  if ! [[ $n =~ ^[1-9]$ ]] || [ "$n" -gt "$MAX_NODES" ]; then die "N must be 1..$MAX_NODES"; fi
  need_docker
  lock
  [ ! -e "$STATE" ] || die "run $RUN exists ($STATE): run 'down $RUN' first"
  state=$(docker info --format '{{.Swarm.LocalNodeState}}')
  if [ "$state" != inactive ]; then
    die "the host's dockerd is already in a swarm (state $state): this script builds a swarm of its own and will not join or change that one. If it is a leftover of a run, 'down' that run (runs: $(find "$STATE_BASE" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)); otherwise 'docker swarm leave --force' first"
  fi
  if [ "$n" -gt 1 ]; then
    clash=$( { ip -4 route show root "$NET.0.0/16"
               ip -4 route show match "$NET.0.0/16" | grep -v '^default'
               ip -4 -o addr show | grep " inet $NET\."; } | sort -u || true)
    if [ -n "$clash" ]; then
      printf '%s\n' "$clash" >&2
      die "$NET.0.0/16 is in use on this machine (above; another run? see $STATE_BASE)"
    fi
    # the nodes' overlay2 data roots cannot sit on overlayfs (as in a container's rootfs)
    fs=$STATE_BASE
    while [ ! -e "$fs" ]; do fs=$(dirname "$fs"); done
    fs=$(stat -f -c %T "$fs")
    [ "$fs" != overlayfs ] \
      || die "$STATE_BASE is on overlayfs: set TGSTACK_SWARM_STATE to a directory on a real filesystem"
  fi
  mkdir -p "$STATE"
  echo "$n" >"$STATE/nodes"
  # From here on a failure undoes everything made so far.
  trap undo_failed_up EXIT
  docker network inspect docker_gwbridge >/dev/null 2>&1 || touch "$STATE/gwbridge-ours"

  if [ "$n" -gt 1 ]; then
    old=$(sysctl -n net.ipv4.ip_forward)
    if [ "$old" != 1 ]; then
      echo "$old" >"$STATE/ip_forward.old"
      sysctl -qw net.ipv4.ip_forward=1
    fi
    for ((k = 2; k <= n; k++)); do
      log "node $k: namespace $(ns_of "$k"), $(veth_of "$k") $(host_ip "$k") <-> $(node_ip "$k")"
      make_netns "$k"
    done
    for ((k = 2; k <= n; k++)); do
      log "node $k: starting dockerd"
      start_daemon "$k"
    done
    advertise=$(host_ip 2)
  else
    advertise=127.0.0.1
  fi

  # The swarm's own address pool (its ingress network comes from it), new for every run: a
  # swarm left while a task was still attached can keep its ingress pool claimed in the
  # host's dockerd, and a next swarm's ingress on the same subnet then fails every task on
  # this node with "Pool overlaps with other one on this address space".
  pool=$(next_addr_pool)
  log "node 1: swarm init --advertise-addr $advertise --default-addr-pool $pool"
  docker swarm init --advertise-addr "$advertise" --listen-addr "$advertise:2377" \
    --default-addr-pool "$pool" >/dev/null
  touch "$STATE/swarm-ours"
  # The daemon sets up its ingress sandbox after init returns; leaving the swarm before that
  # is done leaves a stale `ingress` network on the host daemon (until the next init). Wait.
  for ((i = 0; i < WAIT * 2; i++)); do
    docker network inspect ingress --format '{{range $k, $v := .Containers}}{{$k}} {{end}}' \
      2>/dev/null | grep -q ingress-sbox && break
    sleep 0.5
  done
  docker node update --label-add tgstack.node=node-1 \
    "$(docker info --format '{{.Swarm.NodeID}}')" >/dev/null

  # Three managers keep a raft quorum (2 of 3) when one node stops; with two nodes a second
  # manager would make either one's loss fatal (quorum 2 of 2), so node 2 is then a worker.
  role=worker
  [ "$n" -ge 3 ] && role=manager
  token=$(docker swarm join-token -q "$role")
  for ((k = 2; k <= n; k++)); do
    log "node $k: swarm join as $role"
    timeout "$WAIT" docker -H "$(sock_of "$k")" swarm join --token "$token" \
      --advertise-addr "$(node_ip "$k")" --listen-addr "$(node_ip "$k"):2377" \
      "$advertise:2377" >/dev/null
    id=$(dk "$k" info --format '{{.Swarm.NodeID}}')
    docker node update --label-add "tgstack.node=node-$k" "$id" >/dev/null
  done
  wait_ready "$n"
  trap - EXIT
  echo "run=$RUN"
  echo "state=$STATE"
  echo "nodes=$n"
  echo "manager=$advertise:2377"
  for ((k = 1; k <= n; k++)); do print_node "$k" "$n"; done
}

undo_failed_up() {
  local rc=$?
  [ "$rc" = 0 ] && return 0
  log "up failed: undoing it"
  undo_run || true
  exit "$rc"
}

undo_run() {
  local k i
  for ((k = MAX_NODES; k >= 2; k--)); do remove_node "$k"; done
  if [ -e "$STATE/swarm-ours" ]; then
    if [ "$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" != inactive ]; then
      log "node 1: swarm leave --force (this run initialised the swarm)"
      timeout 60 docker swarm leave --force >/dev/null
    fi
    for ((i = 0; i < 40; i++)); do
      [ -z "$(docker network ls -q --filter scope=swarm)" ] && break
      sleep 0.5
    done
    # made by the host daemon for the swarm's containers; stays after leaving (and keeps the
    # ingress sandbox's endpoint for a moment after it)
    if [ -e "$STATE/gwbridge-ours" ]; then
      for ((i = 0; i < 40; i++)); do
        docker network inspect docker_gwbridge >/dev/null 2>&1 || break
        docker network rm docker_gwbridge >/dev/null 2>&1 || sleep 0.5
      done
      if docker network inspect docker_gwbridge >/dev/null 2>&1; then
        log "docker_gwbridge is still in use after 20s: left in place"
      fi
    fi
  fi
  if [ -s "$STATE/ip_forward.old" ]; then
    sysctl -qw "net.ipv4.ip_forward=$(cat "$STATE/ip_forward.old")"
  fi
  unmount_under "$STATE"
  rm -rf "$STATE"
  rmdir "$STATE_BASE" 2>/dev/null || true
}

cmd_down() {
  [ $# = 1 ] || usage
  set_run "$1"
  lock
  undo_run
  log "run $RUN: down"
}

cmd_load() {
  [ $# -ge 2 ] || usage
  set_run "$1"
  shift
  local n k img id tmp pid pids fifos missing targets
  n=$(node_count)
  need_docker
  # The images some node lacks (by id; a node that has the id only gets the name).
  missing=()
  targets=()
  for ((k = 2; k <= n; k++)); do
    local lacks=0
    for img in "$@"; do
      id=$(docker image inspect --format '{{.Id}}' "$img" 2>/dev/null) \
        || die "no image $img on the host's daemon"
      if dk "$k" image inspect "$id" >/dev/null 2>&1; then
        dk "$k" tag "$id" "$img"
      else
        lacks=1
        [[ " ${missing[*]} " == *" $img "* ]] || missing+=("$img")
      fi
    done
    [ "$lacks" = 1 ] && targets+=("$k")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  # One `docker save` of every missing image (shared layers once), streamed into the
  # `docker load` of every node that lacks one, all at once.
  tmp=$(mktemp -d)
  fifos=()
  pids=()
  for k in "${targets[@]}"; do
    mkfifo "$tmp/$k"
    dk "$k" load -q <"$tmp/$k" >"$tmp/$k.log" 2>&1 &
    pids+=("$!")
    fifos+=("$tmp/$k")
  done
  log "load ${#missing[@]} image(s) into ${#targets[@]} node(s)"
  docker save "${missing[@]}" | tee "${fifos[@]}" >/dev/null \
    || { cat "$tmp"/*.log >&2; rm -rf "$tmp"; die "save of ${missing[*]} failed"; }
  for pid in "${pids[@]}"; do
    wait "$pid" || { cat "$tmp"/*.log >&2; rm -rf "$tmp"; die "load into a node failed"; }
  done
  rm -rf "$tmp"
}

node_arg() {
  local n k=$1
  n=$(node_count)
  if ! [[ $k =~ ^[0-9]+$ ]] || [ "$k" -lt 2 ] || [ "$k" -gt "$n" ]; then
    die "K must be 2..$n (node 1 is the host's own daemon)"
  fi
}

cmd_stop() {
  [ $# = 2 ] || usage
  set_run "$1"
  node_arg "$2"
  lock
  log "node $2: stopping dockerd"
  stop_daemon "$2"
}

cmd_start() {
  [ $# = 2 ] || usage
  set_run "$1"
  node_arg "$2"
  local k=$2 n i
  n=$(node_count)
  lock
  log "node $k: starting dockerd"
  start_daemon "$k"
  for ((i = 0; i < WAIT * 2; i++)); do
    [ "$(dk "$k" info --format '{{.Swarm.LocalNodeState}}')" = active ] && break
    sleep 0.5
  done
  wait_ready "$n"
  print_node "$k" "$n"
}

case "${1:-}" in
  up | down | load | stop | start)
    c=$1
    shift
    "cmd_$c" "$@"
    ;;
  *) usage ;;
esac
