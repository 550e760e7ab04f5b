package topology

import (
	"slices"
	"testing"
)

func TestQueueTransport(t *testing.T) {
	src := `workflows:
  - name: w
    steps:
      - name: ocr
        queue: {name: pages, transport: amqp}
      - name: again
        queue: pages
      - name: layout
        queue: {transport: amqp}
      - name: classify
        queue: {name: classify, transport: kafka}
      - name: each
        task: t
    tasks:
      - name: t
        itemListKey: items
        steps:
          - name: extract
`
	set, err := Parse("wf.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	g := set.Lookup("w").Graph
	want := map[string][2]string{ // step -> queue, transport
		"ocr": {"pages", TransportAMQP}, "again": {"pages", TransportAMQP},
		"layout": {"layout", TransportAMQP}, "classify": {"classify", TransportKafka},
	}
	for name, w := range want {
		st := g.ByName[name]
		if st.Queue != w[0] || st.Transport != w[1] {
			t.Errorf("step %s: queue %q transport %q, want %q %q", name, st.Queue, st.Transport, w[0], w[1])
		}
	}
	if got := set.Lookup("w").Tasks["t"].Graph.ByName["extract"].Transport; got != TransportKafka {
		t.Errorf("unmarked task step: transport %q, want kafka", got)
	}
	if got, want := set.QueuesOver(TransportAMQP), []string{"layout", "pages"}; !slices.Equal(got, want) {
		t.Errorf("QueuesOver(amqp) = %v, want %v", got, want)
	}
	if got, want := set.QueuesOver(TransportKafka), []string{"classify", "extract"}; !slices.Equal(got, want) {
		t.Errorf("QueuesOver(kafka) = %v, want %v", got, want)
	}
}

func TestQueueTransportErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      string // the one problem, formatted
	}{
		{
			name: "unknown transport",
			src: `workflows:
  - name: w
    steps:
      - name: ocr
        queue: {name: ocr, transport: smtp}
`,
			want: `wf.yaml:5:39: workflows[0].steps[0].queue.transport: unknown transport "smtp": must be "kafka" or "amqp"`,
		},
		{
			name: "two transports for one queue",
			src: `workflows:
  - name: w
    steps:
      - name: ocr
        queue: {name: pages, transport: amqp}
      - name: again
        queue: {name: pages, transport: kafka}
`,
			want: `wf.yaml:7:41: workflows[0].steps[1].queue.transport: queue "pages" is served over amqp at wf.yaml:5:41 (workflows[0].steps[0].queue.transport); a queue has one transport`,
		},
		{
			name: "unknown key",
			src: `workflows:
  - name: w
    steps:
      - name: ocr
        queue: {name: ocr, transprt: amqp}
`,
			want: `wf.yaml:5:28: workflows[0].steps[0].queue.transprt: unknown field "transprt"; did you mean "transport"?`,
		},
		{
			name: "fan-out step with a transport",
			src: `workflows:
  - name: w
    steps:
      - name: each
        task: t
        queue: {transport: amqp}
    tasks:
      - name: t
        itemListKey: items
        steps: [{name: s}]
`,
			want: `wf.yaml:6:16: workflows[0].steps[0].queue: a fan-out step (task: t) has no queue: its task's steps are dispatched, each to its own queue`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ve := parseErrors(t, tt.src)
			if len(ve) != 1 || ve[0].Error() != tt.want {
				t.Errorf("got %v\nwant %s", ve, tt.want)
			}
		})
	}
}
