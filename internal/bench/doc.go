// Package bench measures Stepwise against the physical limit of its broker:
// the same scenarios run through the transactional processors and through a
// relay that moves the same records over the same Kafka hops with nothing
// else, side by side in one run, so every figure is also a ratio that a
// noisy machine cannot fake.
//
// # What runs
//
// For each scenario (linear3, fanout100, fanout10k, idp) and each system
// (stepwise, relay) the driver creates fresh topics under a prefix of its
// own, starts the system (processor replicas or the relay, as separate OS
// processes when a command to run them is given, else in this process),
// runs echo workers in this process with the Go worker SDK, and drives
// starts at a fixed arrival rate (open loop) or with a concurrency bound
// (closed loop):
//
//	driver ──► requests ──► processors | relay ──► tasks.<queue> ──► workers
//	                          ▲                                         │
//	                          └──────────────── results ◄───────────────┘
//	driver ◄── completions ◄──┘
//
// # What comes out
//
// A Report: per scenario the requests and steps completed per second,
// end-to-end latency percentiles, orchestration overhead per step (end to
// end minus the time a worker handler of the request was running, divided
// by the steps), CPU and peak memory of the processors or relay, state bytes
// per request read back from the state topic, and the Stepwise / relay
// ratios. Scaling figures (replicas, restore of 100,000 in-flight requests)
// come from Scale. The report is written as JSON, markdown and PNG plots.
package bench
