// The "range" partition assignment of the Kafka consumer protocol, as the
// Java, librdkafka (Python) and franz-go (Go) clients implement it: for
// each topic, members sorted by id take contiguous runs of partitions, the
// first ones one more when they do not divide evenly.
//
// Why: the workers of one queue form one consumer group, and a group forms
// only on a protocol every member offers. kafkajs offers only its own
// "RoundRobinAssigner"; offering "range" too lets TypeScript workers share
// a queue with Go and Python ones.
import kafkajs from "kafkajs";
import type { PartitionAssigner } from "kafkajs";

const { AssignerProtocol } = kafkajs;

/** rangeAssign computes the assignment: member id -> topic -> partitions. */
export function rangeAssign(
  memberIds: string[],
  partitionsByTopic: Map<string, number[]>,
): Map<string, Record<string, number[]>> {
  const members = [...memberIds].sort();
  const out = new Map<string, Record<string, number[]>>();
  for (const m of members) out.set(m, Object.create(null) as Record<string, number[]>);
  if (members.length === 0) return out;
  for (const [topic, parts] of partitionsByTopic) {
    const sorted = [...parts].sort((a, b) => a - b);
    const per = Math.floor(sorted.length / members.length);
    const extra = sorted.length % members.length;
    let next = 0;
    members.forEach((m, i) => {
      const n = per + (i < extra ? 1 : 0);
      if (n > 0) out.get(m)![topic] = sorted.slice(next, next + n);
      next += n;
    });
  }
  return out;
}

/** RangeAssigner is a kafkajs PartitionAssigner named "range". */
export const RangeAssigner: PartitionAssigner = ({ cluster }) => ({
  name: "range",
  version: 0,
  async assign({ members, topics }) {
    const parts = new Map<string, number[]>();
    for (const t of topics) {
      parts.set(t, cluster.findTopicPartitionMetadata(t).map((p) => p.partitionId));
    }
    const assignment = rangeAssign(members.map((m) => m.memberId), parts);
    return [...assignment].map(([memberId, a]) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment: a, userData: Buffer.alloc(0) }),
    }));
  },
  protocol({ topics }) {
    return { name: "range", metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }) };
  },
});
