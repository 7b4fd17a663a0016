# orders as a static service definition, for hosts where the service does not register itself
# (the meshkit services do, at start; this file is the equivalent, for a config-managed host).
# The sidecar_service block puts it in Consul's service mesh: an Envoy sidecar
# (consul connect envoy -sidecar-for orders-1) then fronts it, and intentions decide who may call.
service {
  name = "orders"
  id   = "orders-1"
  port = 7001
  tags = ["grpc", "grpc-web", "connect"]
  meta = {
    version   = "0.1.0"
    protocols = "grpc,grpc-web,connect"
  }

  check {
    name                              = "gRPC health of orders-1"
    grpc                              = "127.0.0.1:7001"
    grpc_use_tls                      = false
    interval                          = "5s"
    timeout                           = "2s"
    deregister_critical_service_after = "1m"
  }

  connect {
    sidecar_service {}
  }
}
