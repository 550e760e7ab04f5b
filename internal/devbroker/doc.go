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
// kfake compacts only when its log cleaner runs, hourly by default; a
// broker started in memory runs it every second so the compacted state
// topic stays small and processor restores stay fast (KAFKA-NOTES.md,
// pitfall 6). A broker keeping its data on disk never runs it: kfake
// compacts a partition by deleting its files and writing new ones, and a
// process killed in between would lose the partition's records.
package devbroker
