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
    # The developer identity `make up` runs a `consul connect proxy` for, so grpcurl works.
    Name   = "developer"
    Action = "allow"
  },
  {
    Name   = "*"
    Action = "deny"
  },
]
