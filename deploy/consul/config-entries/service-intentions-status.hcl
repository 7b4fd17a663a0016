# Who may call status inside the service mesh: the traffic generator and the developer identity
# (grpcurl through `make up`'s developer proxy); nobody else.
Kind = "service-intentions"
Name = "status"
Sources = [
  {
    Name   = "traffic"
    Action = "allow"
  },
  {
    Name   = "developer"
    Action = "allow"
  },
  {
    Name   = "*"
    Action = "deny"
  },
]
