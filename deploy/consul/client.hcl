# A Consul client agent on each host that runs meshkit services. The services register with
# this local agent (CONSUL_HTTP_ADDR=127.0.0.1:8500), which runs their gRPC health checks.
datacenter  = "dc1"
data_dir    = "/var/lib/consul"
server      = false
retry_join  = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
client_addr = "127.0.0.1"
log_level   = "INFO"

ports {
  grpc = 8502
}

connect {
  enabled = true
}
