# Who may call orders inside the service mesh: status and the traffic generator; nobody else.
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
    Name   = "*"
    Action = "deny"
  },
]
