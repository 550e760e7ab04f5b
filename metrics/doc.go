// Package metrics defines every Prometheus metric Stepwise exposes, in one
// place: the processors', the API's, the Go worker SDK's, and the consumer
// lag of the groups that read Stepwise's topics. Components hold a pointer
// to their set (a nil pointer records nothing and costs nothing, which is
// what "metrics off" means) and call its methods at the points below.
//
// # Where the numbers come from
//
// Processor (stepwise run, stepwise dev) counts what its committed
// transactions did: an aborted batch is consumed again, so counting only
// on commit keeps the counters equal to what happened.
//
//	stepwise_requests_started_total{workflow}                counter
//	stepwise_requests_finished_total{workflow,status}        counter   succeeded, failed, cancelled
//	stepwise_request_duration_seconds{workflow,status}       histogram start to completion
//	stepwise_steps_started_total{workflow,step}              counter   task attempts dispatched
//	stepwise_steps_retried_total{workflow,step}              counter   attempts after the first
//	stepwise_steps_succeeded_total{workflow,step}            counter
//	stepwise_steps_failed_total{workflow,step}               counter   failed attempts (retried or not)
//	stepwise_steps_timed_out_total{workflow,step}            counter
//	stepwise_step_duration_seconds{workflow,step,outcome}    histogram dispatch to result, outcome succeeded|failed
//	stepwise_requests_in_flight{partition}                   gauge     running requests of an owned partition
//	stepwise_timers{partition}                               gauge     pending timers of an owned partition
//	stepwise_transaction_commit_seconds                      histogram flush and end of a committed transaction
//	stepwise_transaction_batch_records                       histogram input records per committed transaction
//	stepwise_transaction_aborts_total                        counter
//	stepwise_processor_restarts_total                        counter   group sessions started over
//	stepwise_partitions_disowned_total                       counter   partitions held outside the group's assignment, set aside
//	stepwise_restore_duration_seconds                        histogram one restore of assigned partitions
//	stepwise_restore_records_total                           counter   state records read by restores
//	stepwise_inputs_dropped_total{topic,reason}              counter   inputs answered by a log line and this only
//
// API (stepwise api, stepwise dev):
//
//	stepwise_api_requests_total{route,code}                  counter   route is the pattern, never a request id
//	stepwise_api_request_duration_seconds{route}             histogram
//	stepwise_api_view_requests                               gauge     requests held by the view
//
// Go worker SDK (package worker, option worker.WithMetrics):
//
//	stepwise_worker_tasks_total{queue,step,outcome}          counter   succeeded, failed, retryable
//	stepwise_worker_task_duration_seconds{queue,step}        histogram the handler's run
//	stepwise_worker_queue_wait_seconds{queue}                histogram dispatch (task record time) to handler start
//	stepwise_worker_tasks_in_flight{queue}                   gauge
//
// The Python and TypeScript SDKs export the same worker metrics under the
// same names (prometheus_client, prom-client).
//
// AMQP bridge (stepwise bridge amqp --metrics; RegisterBridge):
//
//	stepwise_bridge_tasks_published_total                    counter   confirmed by RabbitMQ, republished included
//	stepwise_bridge_tasks_republished_total                  counter   after a reconnect
//	stepwise_bridge_publishes_unconfirmed_total              counter   nacked or lost; published again
//	stepwise_bridge_replies_total{outcome}                   counter   ok, empty, garbage, unknown, late
//	stepwise_bridge_reconnects_total                         counter
//
// Its Kafka side is a Go SDK worker: the worker metrics above carry its
// queues.
//
// Consumer lag (LagCollector, in stepwise run): polled with kadm every
// LagInterval for the processors' group and every worker queue's group.
//
//	stepwise_consumer_lag{group,topic}                       gauge     records not yet consumed, summed over partitions
//
// Kafka client metrics of franz-go's kprom plugin carry the prefix
// stepwise_kafka_ (KafkaHooks).
//
// # Labels
//
// Label values come from the workflow definitions (workflow, step paths
// with fan-out indexes removed: "docs/pages/ocr"), fixed vocabularies
// (status, outcome, reason, topic kind) or partition numbers: the sets are
// bounded by the definitions and the topic plan. A request id is never a
// label.
package metrics
