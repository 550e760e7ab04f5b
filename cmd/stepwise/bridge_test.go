package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/stepwise-run/stepwise/internal/bridge"
	"github.com/stepwise-run/stepwise/topology"
)

func TestBridgedQueues(t *testing.T) {
	set, err := topology.Parse("wf.yaml", []byte(`workflows:
  - name: w
    steps:
      - name: ocr
        queue: {name: ocr, transport: amqp}
        timeout: 30s
      - name: classify
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := bridgedQueues(set, queueSet{}); err != nil || !slices.Equal(got, []string{"ocr"}) {
		t.Errorf("marked queues: %v, %v; want [ocr]", got, err)
	}
	if got, err := bridgedQueues(set, queueSet{"classify": true}); err != nil || !slices.Equal(got, []string{"classify"}) {
		t.Errorf("--queues classify: %v, %v", got, err)
	}
	if _, err := bridgedQueues(set, queueSet{"ocrr": true}); err == nil || !strings.Contains(err.Error(), `no queue "ocrr" in the files; their queues are classify, ocr`) {
		t.Errorf("unknown queue: %v", err)
	}
	if got := stepsWithoutTimeout(set, []string{"ocr", "classify"}); !slices.Equal(got, []string{"w/classify"}) {
		t.Errorf("steps without timeout: %v", got)
	}
	plain, _ := topology.Parse("wf.yaml", []byte("workflows:\n  - name: w\n    steps: [{name: s}]\n"))
	if _, err := bridgedQueues(plain, queueSet{}); err == nil || !strings.Contains(err.Error(), "no queue to bridge") {
		t.Errorf("nothing marked, no --queues: %v", err)
	}
}

func TestVHostRoutes(t *testing.T) {
	set, err := topology.Parse("wf.yaml", []byte(`workflows:
  - name: w
    vhosts: [/, /tenant]
    steps:
      - name: ocr
        queue: {name: pages, transport: amqp}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := set.QueuesOver(topology.TransportAMQP), []string{"pages", "tenant.pages"}; !slices.Equal(got, want) {
		t.Fatalf("bridged queues %v, want %v", got, want)
	}
	routes := vhostRoutes(set, []string{"pages", "tenant.pages"})
	if len(routes) != 1 || routes["tenant.pages"] != (bridge.Route{VHost: "/tenant", Queue: "pages"}) {
		t.Errorf("routes %v: want tenant.pages to queue pages of vhost /tenant, and pages in the URL's vhost", routes)
	}
}
