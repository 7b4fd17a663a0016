# When no orders instance in this datacenter is healthy (passing in Consul, breaker not open),
# send calls to dc2's: the meshkit mesh client applies it from the discovery chain, as Envoy
# proxies do (README, "Traffic management from Consul"; `make consul-wan` runs two datacenters).
# deploy/consul/canary/ has the same resolver with subsets, for a canary.
Kind           = "service-resolver"
Name           = "orders"
ConnectTimeout = "5s"

Failover = {
  "*" = {
    Datacenters = ["dc2"]
  }
}
