# Every target runs with the project's pinned tools first on PATH (scripts/lib.sh).
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
ENV := source scripts/lib.sh &&

.PHONY: up down setup infra-up infra-down test test-unit generate check-generated lint typecheck check clean bench bench-mesh bench-sync bench-balancers bench-discovery migrate conformance

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

## test: the whole suite (unit + integration) against real servers (the README's second command)
test: setup infra-up
	@$(ENV) npm test --silent

test-unit: setup
	@$(ENV) npm run test:unit --silent

## generate: regenerate gen/ from proto/ with buf
generate: setup
	@$(ENV) buf generate

## check-generated: fail when gen/ is not what proto/ generates
check-generated: generate
	@git diff --exit-code --stat -- gen && test -z "$$(git status --porcelain -- gen)" || \
	  { echo "gen/ is stale or edited by hand: run 'make generate' and commit the result" >&2; exit 1; }

lint: setup
	@$(ENV) buf lint && eslint .

typecheck: setup
	@$(ENV) tsc -p .

## conformance: the Connect conformance suite against the server host and the mesh client
## (test/conformance/; needs no infrastructure)
conformance: setup
	@$(ENV) test/conformance/run.sh

## check: everything CI checks before the tests
check: check-generated lint typecheck

clean:
	rm -rf .run node_modules

## migrate: apply the PostgreSQL schema (services also do it at start-up)
migrate: setup
	@$(ENV) node --import tsx scripts/migrate.ts

## bench: every benchmark in turn, each printing its table of ratios (needs infra-up)
bench: bench-mesh bench-balancers bench-discovery bench-sync

## bench-mesh: mesh client against raw Connect and grpc-js round_robin, tracing off and on, failover
bench-mesh: setup infra-up
	@$(ENV) node --import tsx bench/mesh-client.bench.ts

## bench-discovery: time from a change in Consul to the mesh client's picks
bench-discovery: setup infra-up
	@$(ENV) node --import tsx bench/discovery.bench.ts

## bench-balancers: pick cost of every balancer at 10, 100 and 1000 instances
bench-balancers: setup
	@$(ENV) node --import tsx bench/balancers.bench.ts

## bench-sync: batched user upserts against row-by-row and against a plain COPY, on the real PostgreSQL
bench-sync: setup
	@$(ENV) node --import tsx bench/user-sync.bench.ts
