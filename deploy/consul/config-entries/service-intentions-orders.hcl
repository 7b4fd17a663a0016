# Who may call orders inside the service mesh: status, the traffic generator and the developer
# identity; nobody else. Enforced by every orders instance itself (MESH_IDENTITY=true).
Kind = "service-intentions"
Name = "orders"
Sources = [
  {
    Name   = "status"
    Action = "allow"
  },
  {
    Name   = "traffic"
    Action = "allow"
  },
  {
    # The developer identity `make up` runs a `consul connect proxy` for, so grpcurl works.
    Name   = "developer"
    Action = "allow"
  },
  {
    Name   = "*"
    Action = "deny"
  },
]
