package topics

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/stepwise-run/stepwise/topology"
)

func TestWriteStrimzi(t *testing.T) {
	specs := []topology.TopicSpec{{Name: "stepwise.requests"}, {Name: "stepwise.state", Compacted: true}, {Name: "stepwise.tasks.OCR_fast"}}
	var b bytes.Buffer
	if err := WriteStrimzi(&b, specs, "my-cluster", 12, 3); err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(&b)
	var got []kafkaTopic
	for {
		var kt kafkaTopic
		err := dec.Decode(&kt)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, kt)
	}
	if len(got) != len(specs) {
		t.Fatalf("%d resources, want %d", len(got), len(specs))
	}
	dns := regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	for i, kt := range got {
		if kt.Kind != "KafkaTopic" || kt.APIVersion != "kafka.strimzi.io/v1beta2" || kt.Metadata.Labels["strimzi.io/cluster"] != "my-cluster" {
			t.Errorf("%d: %+v", i, kt)
		}
		if kt.Spec.TopicName != specs[i].Name || kt.Spec.Partitions != 12 || kt.Spec.Replicas != 3 || !dns.MatchString(kt.Metadata.Name) {
			t.Errorf("%d: spec %+v, name %q", i, kt.Spec, kt.Metadata.Name)
		}
		want := CleanupDelete
		if specs[i].Compacted {
			want = CleanupCompact
			for k, v := range CompactedConfigs() {
				if kt.Spec.Config[k] != *v {
					t.Errorf("%s: config %s = %q, want %q", kt.Spec.TopicName, k, kt.Spec.Config[k], *v)
				}
			}
		}
		if kt.Spec.Config["cleanup.policy"] != want {
			t.Errorf("%s: cleanup.policy %q, want %q", kt.Spec.TopicName, kt.Spec.Config["cleanup.policy"], want)
		}
	}
}
