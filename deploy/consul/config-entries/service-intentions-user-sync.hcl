# Who may call user-sync inside the service mesh.
Kind = "service-intentions"
Name = "user-sync"
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
