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
// # Isolation
//
// Tests share one cluster and may run in parallel. Each test names its
// topics and groups under a prefix of its own (see newEnv in env_test.go)
// and deletes its topics when it ends.
package integration
