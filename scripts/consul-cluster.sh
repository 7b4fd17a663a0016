#!/usr/bin/env bash
# A real Consul cluster on loopback, as users run one: three servers and one client agent, each
# its own process with its own ports and data dir, built from the shipped deploy/consul/server.hcl
# and client.hcl (ACLs on with default deny, gossip encryption, Connect on). Services register
# through the client agent, as they would through the agent on their own host.
#
#   scripts/consul-cluster.sh up              start the cluster (fresh data) and wait for a leader
#   scripts/consul-cluster.sh down            stop every node this script started
#   scripts/consul-cluster.sh start-node NAME start one node again (same config and data dir)
#   scripts/consul-cluster.sh leader          print the name of the current leader
#
# CONSUL_CLUSTER_DIR (default .run/consul-cluster) holds each node's config, data, log and pid,
# and cluster.env: the ports, the client agent's CONSUL_HTTP_ADDR and the management token.
# CONSUL_CLUSTER_BASE_PORT (default 18500): node i (servers 0-2, client 3) listens on
# base+10*i+{0 http, 1 serf_lan, 2 serf_wan, 3 server RPC, 4 grpc, 5 grpc_tls}; DNS is off.
# How these files map onto deploy/consul: docs/consul.md, "A cluster on loopback".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir="${CONSUL_CLUSTER_DIR:-$RUN_DIR/consul-cluster}"
base="${CONSUL_CLUSTER_BASE_PORT:-18500}"
servers=(consul-server-1 consul-server-2 consul-server-3)
client=consul-client-1
nodes=("${servers[@]}" "$client")

port_of() { # port_of NODE_INDEX OFFSET
  echo $((base + 10 * $1 + $2))
}

running() { # running NAME: true when the node's recorded process is alive
  [[ -f "$dir/$1/pid" ]] && kill -0 "$(cat "$dir/$1/pid")" 2>/dev/null
}

start_node() { # start_node NAME
  local name=$1
  if running "$name"; then
    log "$name: already running (pid $(cat "$dir/$name/pid"))"
    return
  fi
  nohup consul agent -config-file "$dir/$name/base.hcl" -config-file "$dir/$name/node.hcl" >>"$dir/$name/consul.log" 2>&1 &
  echo $! >"$dir/$name/pid"
  log "$name: started (pid $!, log $dir/$name/consul.log)"
}

# write_configs: each node's config is the shipped file with its data_dir and retry_join pointed
# at this cluster, plus an overlay (node.hcl) with what differs between nodes on one host.
write_configs() {
  local key token joins="" i
  key=$(consul keygen)
  token=$(cat /proc/sys/kernel/random/uuid)
  for i in 0 1 2; do joins+="${joins:+, }\"127.0.0.1:$(port_of "$i" 1)\""; done
  for i in "${!nodes[@]}"; do
    local name=${nodes[$i]} shipped=server.hcl
    [[ $name == "$client" ]] && shipped=client.hcl
    mkdir -p "$dir/$name/data"
    sed -E -e "s|^data_dir[[:space:]]*=.*|data_dir = \"$dir/$name/data\"|" \
      -e "s|^retry_join[[:space:]]*=.*|retry_join = [$joins]|" \
      "$MESHKIT_ROOT/deploy/consul/$shipped" >"$dir/$name/base.hcl"
    cat >"$dir/$name/node.hcl" <<EOF
node_name      = "$name"
bind_addr      = "127.0.0.1"
advertise_addr = "127.0.0.1"
encrypt        = "$key"
log_level      = "WARN"
ports {
  http     = $(port_of "$i" 0)
  serf_lan = $(port_of "$i" 1)
  serf_wan = $(port_of "$i" 2)
  server   = $(port_of "$i" 3)
  grpc     = $(port_of "$i" 4)
  grpc_tls = $(port_of "$i" 5)
  dns      = -1
}
EOF
    if [[ $name == "$client" ]]; then
      # client.hcl has no acl block: a client agent of an ACL-enabled datacenter needs one.
      printf 'acl {\n  enabled = true\n  default_policy = "deny"\n  tokens {\n    agent = "%s"\n  }\n}\n' "$token" >>"$dir/$name/node.hcl"
    else
      printf 'acl {\n  tokens {\n    initial_management = "%s"\n    agent = "%s"\n  }\n}\n' "$token" "$token" >>"$dir/$name/node.hcl"
    fi
  done
  {
    echo "CONSUL_HTTP_ADDR=127.0.0.1:$(port_of 3 0)"
    echo "CONSUL_HTTP_TOKEN=$token"
    for i in "${!nodes[@]}"; do
      echo "${nodes[$i]//-/_}_HTTP_PORT=$(port_of "$i" 0)"
      echo "${nodes[$i]//-/_}_SERVER_PORT=$(port_of "$i" 3)"
    done
  } >"$dir/cluster.env"
}

http() { # http PATH: GET from the client agent with the management token
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
  curl -fsS -H "X-Consul-Token: $CONSUL_HTTP_TOKEN" "http://$CONSUL_HTTP_ADDR$1"
}

has_leader() { [[ "$(http /v1/status/leader)" == *:* ]]; }
all_alive() { [[ "$(http /v1/agent/members | grep -o '"Status":1' | wc -l)" -eq ${#nodes[@]} ]]; }
client_in_catalog() { http "/v1/catalog/node/$client" | grep -q "\"Node\":\"$client\""; }

leader() {
  local address i
  address=$(http /v1/status/leader | tr -d '"')
  for i in 0 1 2; do
    if [[ $address == "127.0.0.1:$(port_of "$i" 3)" ]]; then
      echo "${servers[$i]}"
      return
    fi
  done
  log "no leader known (status/leader answered '$address')"
  return 1
}

case "${1:-}" in
  up)
    for name in "${nodes[@]}"; do
      if running "$name"; then
        log "$name is running already: 'scripts/consul-cluster.sh down' first"
        exit 1
      fi
    done
    rm -rf "$dir"
    mkdir -p "$dir"
    write_configs
    for name in "${nodes[@]}"; do start_node "$name"; done
    wait_for 60 "the cluster to elect a leader" has_leader
    wait_for 60 "all ${#nodes[@]} agents to be alive members" all_alive
    wait_for 30 "the client agent in the catalog (its ACL token accepted)" client_in_catalog
    source "$dir/cluster.env"
    log "ready: leader $(leader); services register at CONSUL_HTTP_ADDR=$CONSUL_HTTP_ADDR with CONSUL_HTTP_TOKEN from $dir/cluster.env"
    ;;
  down)
    # The client first, so that it can leave while the servers still answer; then the servers.
    # Each gets 10 s to exit on SIGTERM, then SIGKILL.
    for name in "$client" "${servers[@]}"; do
      running "$name" || continue
      pid=$(cat "$dir/$name/pid")
      kill "$pid"
      if ! wait_for 10 "$name to exit" bash -c "! kill -0 $pid"; then kill -9 "$pid" 2>/dev/null || true; fi
      log "$name: stopped"
    done
    rm -f "$dir"/*/pid
    ;;
  start-node)
    [[ -n "${2:-}" && -f "$dir/${2}/node.hcl" ]] || { log "usage: $0 start-node NAME (one of: ${nodes[*]})"; exit 2; }
    start_node "$2"
    ;;
  leader)
    leader
    ;;
  *)
    log "usage: $0 up | down | start-node NAME | leader"
    exit 2
    ;;
esac
