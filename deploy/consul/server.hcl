# A Consul server of a three-server cluster. Run one per host:
#   consul agent -config-file=server.hcl -bind=<this host's address>
# Set CONSUL_ENCRYPT_KEY (consul keygen) and change retry_join to your servers' addresses.
datacenter       = "dc1"
data_dir         = "/var/lib/consul"
server           = true
bootstrap_expect = 3
retry_join       = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
client_addr      = "127.0.0.1"
log_level        = "INFO"

ui_config {
  enabled = true
}

ports {
  grpc     = 8502
  grpc_tls = 8503
}

connect {
  enabled = true
}

performance {
  raft_multiplier = 1
}

# Production clusters run with ACLs on; services then register and watch with a token
# (CONSUL_HTTP_TOKEN, which the meshkit services and mesh client send on every request).
acl {
  enabled                  = true
  default_policy           = "deny"
  enable_token_persistence = true
}
