// Package devbroker runs the embedded Kafka-protocol broker of `stepwise
// dev`: franz-go's kfake, one broker, listening on a TCP address so that
// workers in any language, and the stepwise client commands, connect to it
// as to a real cluster.
//
// # Where it sits
//
//	stepwise dev ──► devbroker.Start ──► kfake (requests, results, state, completions, tasks.<queue>)
//	                                      ▲            ▲
//	                       processor (in-process)   workers (in-process or external)
//
// It is for development and tests only: one broker, no replication, no
// security. Production points the same binary at a real Kafka cluster.
//
// # Persistence
//
// With WithDataDir the broker keeps its logs, offsets and group and
// transaction state in a directory and reloads them on the next start, so a
// dev session's requests survive a restart. Without it everything is in
// memory and gone on Close. Every batch is written to its segment file as
// it is produced (through the page cache; synced on Close), so a killed
// process loses nothing written; a machine crash can lose the last writes.
//
// A process killed while the broker wrote a transaction's markers leaves
// that transaction committed on some partitions and unfinished on others,
// and kfake's own load would abort the unfinished part in memory only.
// Start therefore first gives every unfinished transaction the marker it
// lacks, on disk: a commit where the same transaction committed elsewhere,
// an abort otherwise (recovery.go).
//
// # Compaction
//
// kfake compacts only when its log cleaner runs, and the embedded broker
// never runs it unless WithCleanerBackoff asks (`stepwise bench` does,
// hourly). kfake's cleaner compacts past the last stable offset: the record
// of a transaction still open replaces the committed record of its key,
// and if that transaction aborts the key is gone, so a processor's restore
// misses the request. On disk it also deletes a partition's files before
// writing the compacted ones, and a process killed in between would lose
// the partition. The cost is restores that read the state topic's whole
// history, which a development session keeps short.
package devbroker
