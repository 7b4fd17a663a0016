# user-sync speaks gRPC: the mesh's proxies then route, retry and observe it per RPC (HTTP/2).
Kind     = "service-defaults"
Name     = "user-sync"
Protocol = "grpc"
