# Overlay for client agents whose meshkit services require client certificates
# (TLS_REQUIRE_CLIENT_CERT=true). Load it after client.hcl:
#   consul agent -config-file=client.hcl -config-file=checks-mtls.hcl
#
# With enable_agent_tls_for_checks, the gRPC checks this agent runs use its internal-RPC TLS
# material: they verify each instance's certificate against ca_file (by the name the instance
# registered, CONSUL_CHECK_TLS_SERVER_NAME, default its advertised address) and present
# cert_file, which the instances must trust (their TLS_CA_FILE). Without it, such a check fails
# the handshake and the instance never turns passing.
#
# This is the agent's own internal-RPC certificate: where the cluster already runs RPC over TLS,
# keep that block and give the services a TLS_CA_FILE that trusts its CA instead.
enable_agent_tls_for_checks = true

tls {
  internal_rpc {
    ca_file   = "/etc/consul.d/tls/ca.pem"
    cert_file = "/etc/consul.d/tls/agent.pem"
    key_file  = "/etc/consul.d/tls/agent-key.pem"
  }
}
