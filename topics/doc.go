// Package topics administers the topic plan of a workflow set on a Kafka
// cluster: the topics every part of the data flow reads and writes
// (requests, results, state, completions, definitions, one tasks.<queue>
// per queue), with their partition counts and cleanup policies.
//
// # Where it sits
//
// Before any record flows: `stepwise topics create` and `stepwise dev`
// create the plan (Ensure), `stepwise topics check` compares it with the
// cluster (Describe), and a processor refuses to join its group when the
// cluster differs from it (Check), because running on a wrong plan (a state
// topic that is not compacted, fewer results partitions than requests)
// would lose requests instead of failing loudly. The plan itself — names
// and which topics are compacted — comes from topology.Set.Topics.
package topics
