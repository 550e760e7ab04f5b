GO ?= go

.PHONY: test ci vet build integration kafka-up kafka-down test-sdk browser race

build:
	$(GO) build -o bin/stepwise ./cmd/stepwise

vet:
	$(GO) vet ./...

# Fast suite: unit tests and in-process (kfake) runtime tests. Needs only Go.
test: vet
	$(GO) test -count=1 ./...

# The race detector over the packages whose code runs goroutines of its
# own beside the caller's (reader, view, client, worker SDK, HTTP API). The
# view's 26,000-record memory test runs in `test`; under -race it takes
# minutes, so it is left out here. The processors' fault tests measure
# timeouts, which -race's slowdown breaks; they run in `test`.
race:
	$(GO) test -race -count=1 -skip '^TestViewCatchUpAndMemory$$' ./internal/catchup/ ./view/ ./client/ ./worker/ ./api/

# Integration suite against a real Kafka (build tag integration). Needs
# KAFKA_BROKERS; the tests fail, never skip, without a reachable broker.
# The AMQP bridge tests also need a RabbitMQ started by rabbitmq-up
# (RABBITMQ_RUN_DIR names another run dir) and pika in the Python SDK's
# venv (make -C sdk/python venv-amqp).
#   make kafka-up rabbitmq-up && KAFKA_BROKERS=127.0.0.1:9092 make integration; make kafka-down rabbitmq-down
integration:
	@test -n "$(KAFKA_BROKERS)" || { echo "integration: KAFKA_BROKERS is not set; run 'make kafka-up' and export KAFKA_BROKERS=127.0.0.1:9092" >&2; exit 1; }
	$(GO) vet -tags integration ./integration/...
	@# The tracing test runs the Python and TypeScript idp workers.
	$(MAKE) -s -C sdk/python venv
	[ -d sdk/typescript/node_modules/@opentelemetry/sdk-trace-node ] || $(MAKE) -s -C sdk/typescript deps
	$(MAKE) -s -C sdk/typescript build
	KAFKA_BROKERS=$(KAFKA_BROKERS) $(GO) test -count=1 -v -timeout 40m -tags integration $$($(GO) list -tags integration ./integration/... | grep -v /integration/chaos) ./internal/catchup/

# The chaos soak (integration/chaos): its own 3-node cluster on ports
# 14092-14094, three processors, Go, Python and TypeScript workers, random
# faults. Needs a JDK, the broker jars, sdk/python's venv and
# sdk/typescript's node_modules. CHAOS_FLAGS="-duration 30m -requests 40000"
# for a long run, "-broken" for the variant that must fail.
.PHONY: chaos
CHAOS_FLAGS ?=
chaos:
	$(GO) test -count=1 -v -timeout 60m -tags integration ./integration/chaos/ -run TestChaosSoak $(CHAOS_FLAGS)

# A local Apache Kafka 4.x (KRaft) from Maven Central jars: 1 node on
# 127.0.0.1:9092 (SASL/SCRAM on 9096), or KAFKA_NODES=3 for 9092-9094.
KAFKA_NODES ?= 1
kafka-up:
	integration/kafka/up --brokers $(KAFKA_NODES)

kafka-down:
	integration/kafka/down

# A private RabbitMQ (Debian's rabbitmq-server) on 127.0.0.1:5682.
.PHONY: rabbitmq-up rabbitmq-down
rabbitmq-up:
	integration/rabbitmq/up

rabbitmq-down:
	integration/rabbitmq/down

# Worker SDKs in other languages (venvs and node_modules inside their
# directories). Their broker tests run only when KAFKA_BROKERS is set.
test-sdk:
	$(MAKE) -C sdk/python test
	$(MAKE) -C sdk/typescript test
	@if [ -n "$(KAFKA_BROKERS)" ]; then \
		$(MAKE) -C sdk/python test-integration KAFKA_BROKERS=$(KAFKA_BROKERS) && \
		$(MAKE) -C sdk/typescript test-integration KAFKA_BROKERS=$(KAFKA_BROKERS); \
	fi

# The web UI in a real browser (Debian chromium driven by playwright-core)
# against `stepwise dev --examples`. Screenshots: integration/browser/artifacts/.
browser:
	$(MAKE) -C integration/browser test

# Everything CI runs (.ci/run starts the broker and sets KAFKA_BROKERS).
ci: test race integration test-sdk browser test-mixed

# Benchmark: every scenario through Stepwise and the relay, side by side on
# the embedded broker, with scaling and restore figures. BENCH_FLAGS adds to
# or overrides the flags, e.g. BENCH_FLAGS="--brokers 127.0.0.1:9092".
.PHONY: bench
BENCH_OUT ?= bench/results/latest
bench: build
	bin/stepwise bench --scenario all --duration 10s --replicas 1,2,3 --restore 100000 --out $(BENCH_OUT) $(BENCH_FLAGS)

# The idp example with OCR in Python, classify in TypeScript and the rest in
# Go, checked against the all-Go pipeline: on the broker at KAFKA_BROKERS
# (topics of a prefix of its own, deleted after), else on a `stepwise dev`
# it starts. Needs Go, python3 and npm.
.PHONY: test-mixed
test-mixed:
	examples/idp/mixed/run.sh
