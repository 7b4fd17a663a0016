# A canary of orders, step 1: the resolver of config-entries/service-resolver-orders.hcl (dc2 as
# the failover) with subsets by the version each instance registers (`Meta.version`: the
# service's version, or SERVICE_VERSION when set). Consul evaluates each filter itself: the mesh
# client passes it to the health query of the subset (`?filter=`), as Envoy's clusters get it.
# DefaultSubset v1: an instance of a new version takes no call until a splitter or a router
# sends it some. Walk-through: README, "Traffic management from Consul".
Kind           = "service-resolver"
Name           = "orders"
ConnectTimeout = "5s"
DefaultSubset  = "v1"

Subsets = {
  v1 = {
    Filter = "Service.Meta.version == \"0.1.0\""
  }
  v2 = {
    Filter = "Service.Meta.version == \"0.2.0\""
  }
}

Failover = {
  "*" = {
    Datacenters = ["dc2"]
  }
}
