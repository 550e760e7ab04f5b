package topics

import (
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stepwise-run/stepwise/topology"
)

// kafkaTopic is a Strimzi KafkaTopic resource (kafka.strimzi.io/v1beta2).
type kafkaTopic struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		TopicName  string            `yaml:"topicName"`
		Partitions int               `yaml:"partitions"`
		Replicas   int               `yaml:"replicas"`
		Config     map[string]string `yaml:"config"`
	} `yaml:"spec"`
}

// notDNS matches what a Kubernetes resource name may not hold.
var notDNS = regexp.MustCompile(`[^a-z0-9.-]+`)

// WriteStrimzi writes the topic plan as Strimzi KafkaTopic resources of
// the Kafka cluster named cluster, one YAML document each, with the
// configs `stepwise topics create` gives (compaction settings included).
// The resource name is the topic name made a valid Kubernetes name; the
// topic's own name is spec.topicName.
func WriteStrimzi(w io.Writer, specs []topology.TopicSpec, cluster string, partitions, replicas int) error {
	for i, spec := range specs {
		var t kafkaTopic
		t.APIVersion, t.Kind = "kafka.strimzi.io/v1beta2", "KafkaTopic"
		t.Metadata.Name = strings.Trim(notDNS.ReplaceAllString(strings.ToLower(spec.Name), "-"), "-.")
		t.Metadata.Labels = map[string]string{"strimzi.io/cluster": cluster, "app.kubernetes.io/part-of": "stepwise"}
		t.Spec.TopicName, t.Spec.Partitions, t.Spec.Replicas = spec.Name, partitions, replicas
		t.Spec.Config = map[string]string{"cleanup.policy": CleanupDelete}
		if spec.Compacted {
			cfg := CompactedConfigs()
			for _, k := range slices.Sorted(maps.Keys(cfg)) {
				t.Spec.Config[k] = *cfg[k]
			}
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		b, err := yaml.Marshal(&t)
		if err != nil {
			return fmt.Errorf("stepwise: KafkaTopic %s: %w", spec.Name, err)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}
