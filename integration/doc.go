// Package integration tests Stepwise against a real Apache Kafka broker:
// the behaviour that kfake, the in-process broker of the fast suite, may not
// reproduce faithfully (transactions and read_committed, SASL/SCRAM, the
// KIP-848 consumer group protocol, replication and failover).
//
// # Running
//
// The tests carry the build tag integration and read the seed brokers from
// KAFKA_BROKERS. They fail, never skip, when it is unset or nothing answers
// there, so a CI run without a broker cannot pass by testing nothing.
//
//	make kafka-up                      # integration/kafka/up: Kafka 4.x on 127.0.0.1:9092
//	KAFKA_BROKERS=127.0.0.1:9092 make integration
//	make kafka-down
//
// integration/kafka/up --brokers 3 starts three nodes (9092-9094) with a
// three-voter controller quorum for replication tests. Every node also has a
// SASL_PLAINTEXT listener (first node 127.0.0.1:9096, or KAFKA_SASL_BROKERS)
// accepting SCRAM-SHA-256 and SCRAM-SHA-512 for the user stepwise with the
// password stepwise-secret.
//
// # Process tests
//
// The end-to-end and fault tests run Stepwise as separate OS processes, as
// it is deployed: `go build` makes the stepwise binary and
// integration/cmd/echoworker (a Go SDK worker answering every task with its
// input) once per run into a temporary directory; each test creates its
// topic plan with `stepwise topics create`, starts `stepwise run` replicas
// and workers as child processes, produces starts keyed by request id and
// counts completions per id, read_committed (count_test.go): every request
// must complete exactly once. The kill tests send SIGKILL and measure
// takeover: from the kill to the first completion produced on each of the
// dead replica's partitions. Every test prints its counts.
//
// TestBrokerRestart stops and restarts a broker, so it never uses the
// shared cluster: it starts a private one-node cluster with
// `integration/kafka/up --run-dir DIR --port-offset 1000` (ports 10092,
// 10096, 10192), stops it with `down --keep` and starts it again with
// `up --resume`. It needs only what `up` needs (a JDK and the jars).
//
// TestTLS (tls_test.go) makes a CA, a server and a client certificate with
// crypto/x509 and starts a private broker with TLS listeners
// (`up --port-offset 6000 --tls-dir DIR`: TLS on 15099, mutual TLS on
// 15102). Topic creation, a processor, the CLI, the API (its settings from
// STEPWISE_* variables) and an echo worker of each SDK
// (testdata/sdkworkers: Go for step a, Python for b, TypeScript for c)
// run one request each way over both listeners. It needs the Python SDK's
// venv and the TypeScript SDK's node_modules, as .ci/run installs them.
//
// # RabbitMQ
//
// The AMQP bridge tests (bridge_test.go) also need a RabbitMQ node started
// by integration/rabbitmq/up (Debian's rabbitmq-server on 127.0.0.1:5682,
// with its own data directory, Erlang node name, cookie and ports), because
// TestBridgeWordCounts restarts it with `down --keep` and `up --resume`;
// RABBITMQ_RUN_DIR names the run directory when it is not the default. The
// Python worker of the original AMQP protocol runs in the Python SDK's venv
// with pika (make -C sdk/python venv-amqp). Without either the tests fail.
//
// # Isolation
//
// Tests share one cluster and may run in parallel. Each test names its
// topics and groups under a prefix of its own (see newEnv in env_test.go)
// and deletes its topics when it ends.
package integration
