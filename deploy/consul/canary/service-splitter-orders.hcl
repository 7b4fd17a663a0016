# A canary of orders, step 2: 10% of the calls to v2 (the subsets of service-resolver-orders.hcl).
# Raise v2's weight step by step (weights must add up to 100: Consul refuses the entry otherwise,
# and the split in force keeps applying); `consul config delete -kind service-splitter -name
# orders` sends every call back to the DefaultSubset. Needs service-defaults Protocol = "grpc".
Kind = "service-splitter"
Name = "orders"

Splits = [
  {
    Weight        = 90
    ServiceSubset = "v1"
  },
  {
    Weight        = 10
    ServiceSubset = "v2"
  },
]
