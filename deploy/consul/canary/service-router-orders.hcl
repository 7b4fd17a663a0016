# A canary of orders, optional: calls that carry `x-canary: true` (request metadata) go to v2
# whatever the split, so a tester reaches the canary on purpose; GetOrder gets a 2 s budget and up
# to two retries on UNAVAILABLE (the mesh client's retry budget still caps them, and only methods
# the proto marks idempotent are retried once sent). Routes are tried in order; calls no route
# matches go on to the splitter (or the resolver's DefaultSubset).
Kind = "service-router"
Name = "orders"

Routes = [
  {
    Match {
      HTTP {
        Header = [
          {
            Name  = "x-canary"
            Exact = "true"
          },
        ]
      }
    }
    Destination {
      ServiceSubset = "v2"
    }
  },
  {
    Match {
      HTTP {
        PathExact = "/meshkit.orders.v1.OrderService/GetOrder"
      }
    }
    Destination {
      RequestTimeout = "2s"
      NumRetries     = 2
      RetryOn        = ["unavailable"]
    }
  },
]
