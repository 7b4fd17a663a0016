# A single-node development agent, what `make infra-up` runs (there with ports from the
# environment, as command-line flags): server and client in one, UI on, loopback only.
datacenter     = "dc1"
node_name      = "meshkit-dev"
data_dir       = "/tmp/meshkit-consul-dev"
server         = true
bootstrap      = true
bind_addr      = "127.0.0.1"
client_addr    = "127.0.0.1"
log_level      = "WARN"

ui_config {
  enabled = true
}

ports {
  http     = 8500
  grpc     = 8502
  grpc_tls = 8503
  dns      = -1
}

# The service mesh (Connect) is on, so sidecars and intentions can be tried locally.
connect {
  enabled = true
}
