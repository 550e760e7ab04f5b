// Package chaos is the chaos soak of Stepwise (build tag integration): a
// three-node KRaft cluster of real Apache Kafka on loopback (replication
// factor 3, min.insync.replicas=2, unclean leader election off), three
// `stepwise run` replicas, workers in Go (cmd/chaosworker), Python (the
// idp example's OCR) and TypeScript (its classify step), and a mixed load
// of linear3, fanout100 and idp requests whose outputs are known in
// advance.
//
// # Faults
//
// While the load runs, a fault loop injects, in a random order: kill -9 of
// a processor and of a worker (started again 3 s later), kill -9 of a
// broker node (started again 10 s later), SIGSTOP of a processor for 10 s,
// longer than its session and transaction timeouts (a zombie), then
// SIGCONT; a graceful rolling restart of all three brokers; partitions
// added to every topic. Each fault is healed before the next.
//
// # Checker
//
// The checker reads what clients can see, never the processors' state:
// the completions topic read_committed and the workers' own "step done"
// log lines. Every acknowledged start must complete exactly once with its
// expected output (idp: the output of an all-Go reference run on an
// in-process broker), every completed linear3 and fanout100 request must
// have each of its steps in a worker's log, and none of the records of the
// transaction a paused processor had open may become visible. It prints a
// table of faults, counts, the longest stall and takeover times.
//
// # Running
//
// The test starts its own cluster with integration/kafka/up --brokers 3
// --port-offset 5000 (ports 14092-14094, 14096-14098, 14192-14194) and
// stops it at the end. It needs a JDK and the broker jars, the Python SDK's
// venv and the TypeScript SDK's node_modules:
//
//	go test -tags integration ./integration/chaos/ -run TestChaosSoak -v -timeout 30m
//	go test -tags integration ./integration/chaos/ -run TestChaosSoak -v -timeout 60m -duration 30m -requests 40000
//	go test -tags integration ./integration/chaos/ -run TestChaosSoak -v -timeout 30m -broken
//
// -broken builds the processor with the chaosbroken tag, which keeps the
// state of transactions that aborted: the soak must then fail.
package chaos
