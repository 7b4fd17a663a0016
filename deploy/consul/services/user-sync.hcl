# user-sync as a static service definition, for hosts where the service does not register itself
# (the meshkit services do, at start; this file is the equivalent, for a config-managed host).
# The sidecar_service block puts it in Consul's service mesh: an Envoy sidecar
# (consul connect envoy -sidecar-for user-sync-1) then fronts it, and intentions decide who may call.
service {
  name = "user-sync"
  id   = "user-sync-1"
  port = 7002
  tags = ["grpc", "grpc-web", "connect"]
  meta = {
    version   = "0.1.0"
    protocols = "grpc,grpc-web,connect"
  }

  check {
    name                              = "gRPC health of user-sync-1"
    grpc                              = "127.0.0.1:7002"
    grpc_use_tls                      = false
    interval                          = "5s"
    timeout                           = "2s"
    deregister_critical_service_after = "1m"
  }

  connect {
    sidecar_service {}
  }
}
