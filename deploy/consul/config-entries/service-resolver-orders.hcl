# Inside Consul's service mesh: when no orders instance passes its checks in this datacenter,
# send calls to dc2's. (The meshkit mesh client does instance-level failover itself; this is the
# datacenter-level fallback that proxies apply.)
Kind           = "service-resolver"
Name           = "orders"
ConnectTimeout = "5s"

Failover = {
  "*" = {
    Datacenters = ["dc2"]
  }
}
