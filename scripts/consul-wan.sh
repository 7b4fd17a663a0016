#!/usr/bin/env bash
# Two Consul datacenters on loopback, joined over the WAN, as a second region is joined: dc1 and
# dc2, each one server (bootstrap_expect = 1) with its own ports and data dir, Connect on. dc2
# names dc1 its primary datacenter, so it takes dc1's Connect CA (one trust domain: a mesh client
# of dc1 accepts dc2's instances) and replicates dc1's config entries (a service-resolver written
# in dc1 applies in dc2 too). ACLs are off, as on the dev agent. Services register with the agent
# of their own datacenter; a client asks its own agent, which forwards `?dc=dc2` over the WAN.
# What it is for: service-resolver failover to another datacenter (README, "Traffic management
# from Consul"; test/integration/traffic-datacenters.test.ts starts a private pair of its own).
#
#   scripts/consul-wan.sh up      start both (fresh data), wait for leaders, `consul join -wan`
#   scripts/consul-wan.sh down    stop both
#
# CONSUL_WAN_DIR (default .run/consul-wan) holds each server's config, data, log and pid, and
# wan.env: DC1_HTTP_ADDR, DC2_HTTP_ADDR and CONSUL_HTTP_ADDR (dc1's). CONSUL_WAN_BASE_PORT
# (default 18600): dc i (1, 2) listens on base+10*(i-1)+{0 http, 1 serf_lan, 2 serf_wan,
# 3 server RPC, 4 grpc, 5 grpc_tls}; DNS is off.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

dir="${CONSUL_WAN_DIR:-$RUN_DIR/consul-wan}"
base="${CONSUL_WAN_BASE_PORT:-18600}"
dcs=(dc1 dc2)

port_of() { # port_of DC_INDEX(0-based) OFFSET
  echo $((base + 10 * $1 + $2))
}

running() { [[ -f "$dir/$1/pid" ]] && kill -0 "$(cat "$dir/$1/pid")" 2>/dev/null; }

write_config() { # write_config INDEX
  local i=$1 name=${dcs[$1]}
  mkdir -p "$dir/$name/data"
  cat >"$dir/$name/agent.hcl" <<HCL
datacenter         = "$name"
primary_datacenter = "dc1"
node_name          = "consul-$name"
server             = true
bootstrap_expect   = 1
data_dir           = "$dir/$name/data"
bind_addr          = "127.0.0.1"
advertise_addr     = "127.0.0.1"
client_addr        = "127.0.0.1"
log_level          = "WARN"
ui_config {
  enabled = true
}
connect {
  enabled = true
}
ports {
  http     = $(port_of "$i" 0)
  serf_lan = $(port_of "$i" 1)
  serf_wan = $(port_of "$i" 2)
  server   = $(port_of "$i" 3)
  grpc     = $(port_of "$i" 4)
  grpc_tls = $(port_of "$i" 5)
  dns      = -1
}
HCL
}

http() { # http DC_INDEX PATH
  curl -fsS "http://127.0.0.1:$(port_of "$1" 0)$2"
}

has_leader() { [[ "$(http "$1" /v1/status/leader)" == *:* ]]; }
sees_both() { [[ "$(http "$1" /v1/catalog/datacenters)" == *dc1* && "$(http "$1" /v1/catalog/datacenters)" == *dc2* ]]; }

case "${1:-}" in
  up)
    for name in "${dcs[@]}"; do
      if running "$name"; then
        log "$name is running already: 'scripts/consul-wan.sh down' first"
        exit 1
      fi
    done
    rm -rf "$dir"
    mkdir -p "$dir"
    for i in "${!dcs[@]}"; do
      name=${dcs[$i]}
      write_config "$i"
      nohup consul agent -config-file "$dir/$name/agent.hcl" >>"$dir/$name/consul.log" 2>&1 &
      echo $! >"$dir/$name/pid"
      log "$name: started (pid $!, http 127.0.0.1:$(port_of "$i" 0), log $dir/$name/consul.log)"
    done
    for i in "${!dcs[@]}"; do wait_for 60 "${dcs[$i]} to elect itself" has_leader "$i"; done
    consul join -wan -http-addr="127.0.0.1:$(port_of 1 0)" "127.0.0.1:$(port_of 0 2)" >/dev/null
    for i in "${!dcs[@]}"; do wait_for 60 "${dcs[$i]} to see both datacenters" sees_both "$i"; done
    {
      echo "DC1_HTTP_ADDR=127.0.0.1:$(port_of 0 0)"
      echo "DC2_HTTP_ADDR=127.0.0.1:$(port_of 1 0)"
      echo "CONSUL_HTTP_ADDR=127.0.0.1:$(port_of 0 0)"
    } >"$dir/wan.env"
    log "ready: dc1 at 127.0.0.1:$(port_of 0 0), dc2 at 127.0.0.1:$(port_of 1 0), joined over the WAN; addresses in $dir/wan.env"
    ;;
  down)
    for name in dc2 dc1; do
      running "$name" || continue
      pid=$(cat "$dir/$name/pid")
      kill "$pid"
      if ! wait_for 10 "$name to exit" bash -c "! kill -0 $pid"; then kill -9 "$pid" 2>/dev/null || true; fi
      log "$name: stopped"
    done
    rm -f "$dir"/*/pid
    ;;
  *)
    log "usage: $0 up | down"
    exit 2
    ;;
esac
