# Every target runs with the project's pinned tools first on PATH (scripts/lib.sh).
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
ENV := source scripts/lib.sh &&

.PHONY: up down setup infra-up infra-down consul-cluster consul-cluster-down consul-wan consul-wan-down test test-unit generate check-generated lint typecheck check clean bench bench-mesh bench-sync bench-balancers bench-intentions bench-routing bench-discovery bench-resilience bench-calls migrate build package-check conformance

## up: everything, then a sample service registered in Consul (the README's first command)
up: setup infra-up
	@$(ENV) scripts/up.sh

## down: stop what `make up` started
down:
	@$(ENV) scripts/infra-down.sh

## setup: install Node 24, npm packages, and build consul, jaeger, grpcurl; fetch prometheus
setup:
	@scripts/setup.sh

infra-up: setup
	@scripts/infra-up.sh

infra-down:
	@scripts/infra-down.sh

## consul-cluster: a real Consul cluster on loopback (3 servers + 1 client agent, deploy/consul configs), see docs/consul.md
consul-cluster: setup
	@$(ENV) scripts/consul-cluster.sh up

## consul-cluster-down: stop the nodes `make consul-cluster` started
consul-cluster-down:
	@$(ENV) scripts/consul-cluster.sh down

## consul-wan: two single-server datacenters (dc1, dc2) on loopback joined over the WAN (`consul join -wan`), for failover across datacenters; see scripts/consul-wan.sh
consul-wan: setup
	@$(ENV) scripts/consul-wan.sh up

## consul-wan-down: stop the datacenters `make consul-wan` started
consul-wan-down:
	@$(ENV) scripts/consul-wan.sh down

## test: the whole suite (unit + integration) against real servers (the README's second command)
test: setup infra-up
	@$(ENV) npm test --silent

test-unit: setup
	@$(ENV) npm run test:unit --silent

## generate: regenerate gen/ from proto/ with buf, and examples/gen from examples/proto
generate: setup
	@$(ENV) buf generate && cd examples && buf generate

## check-generated: fail when gen/ (or examples/gen) is not what proto/ (examples/proto) generates
check-generated: generate
	@git diff --exit-code --stat -- gen examples/gen && test -z "$$(git status --porcelain -- gen examples/gen)" || \
	  { echo "gen/ or examples/gen is stale or edited by hand: run 'make generate' and commit the result" >&2; exit 1; }

lint: setup
	@$(ENV) buf lint && eslint .

typecheck: setup
	@$(ENV) tsc -p . && tsc -p src/reference/services/dashboard/ui

## conformance: the Connect conformance suite against the server host and the mesh client
## (test/conformance/; needs no infrastructure)
conformance: setup
	@$(ENV) test/conformance/run.sh

## check: everything CI checks before the tests
check: check-generated lint typecheck

## build: the package's dist/ (ESM, .d.ts, source maps), as `npm pack` builds it
build: setup
	@$(ENV) npm run build --silent

## package-check: pack, install the tarball into a fresh project, run examples/ in plain Node 24
## and 22 against the running Consul, compile a strict TypeScript consumer (scripts/check-package.sh)
package-check: setup infra-up
	@$(ENV) scripts/check-package.sh

clean:
	rm -rf .run node_modules dist .bench-build

## migrate: apply the PostgreSQL schema (services also do it at start-up)
migrate: setup
	@$(ENV) node --import tsx scripts/migrate.ts

## bench: every benchmark in turn, each printing its table of ratios (needs infra-up)
bench: bench-mesh bench-balancers bench-intentions bench-routing bench-discovery bench-sync bench-resilience bench-calls

## bench-mesh: mesh client against raw Connect and grpc-js round_robin, tracing off and on, failover
bench-mesh: setup infra-up
	@$(ENV) node --import tsx bench/mesh-client.bench.ts

## bench-resilience: Linkerd's "Beyond Round Robin" (11 instances, one 2 s slow) per balancer, with and without hedging; client CPU with hedging
bench-resilience: setup infra-up
	@$(ENV) node --import tsx bench/beyond-round-robin.bench.ts

## bench-calls: server host and mesh client against bare @grpc/grpc-js, ghz as the load (ratios in one run); then the mesh identity's cost per call and per new connection
bench-calls: setup infra-up
	@$(ENV) node --import tsx bench/calls-server.bench.ts
	@$(ENV) node .bench-build/bench/calls-client.bench.js
	@$(ENV) node --import tsx bench/mesh-identity.bench.ts

## bench-discovery: time from a change in Consul to the mesh client's picks
bench-discovery: setup infra-up
	@$(ENV) node --import tsx bench/discovery.bench.ts

## bench-balancers: pick cost of every balancer at 10, 100 and 1000 instances
bench-balancers: setup
	@$(ENV) node --import tsx bench/balancers.bench.ts

## bench-intentions: cost of one intention decision (L4, `*`, L7 at the 10th permission, default) on 50 intentions
bench-intentions: setup
	@$(ENV) node --import tsx bench/intentions.bench.ts

## bench-routing: cost of one discovery-chain routing decision (10 routes and a 3-way split; the one-resolver fast path)
bench-routing: setup
	@$(ENV) node --import tsx bench/routing.bench.ts

## bench-sync: our batched user upsert against multi-row VALUES and COPY + INSERT SELECT (same event, same transaction), and a plain COPY ceiling
bench-sync: setup
	@$(ENV) node --import tsx bench/user-sync.bench.ts
