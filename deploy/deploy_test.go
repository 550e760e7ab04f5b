package deploy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stepwise-run/stepwise/api"
	"github.com/stepwise-run/stepwise/examples"
	"github.com/stepwise-run/stepwise/processors"
	"github.com/stepwise-run/stepwise/topology"
)

// stepwiseImage is the image name every Stepwise container uses, in the
// compose file and the manifests alike.
const stepwiseImage = "stepwise:dev"

// invocation is one stepwise command line found in a deployment file.
type invocation struct {
	where string   // file and container, for messages
	args  []string // after the entrypoint: subcommand first
}

// sub returns the subcommand ("run", "topics create"...) and the rest.
func (inv invocation) sub() (string, []string) {
	if len(inv.args) >= 2 && inv.args[0] == "topics" {
		return "topics " + inv.args[1], inv.args[2:]
	}
	return inv.args[0], inv.args[1:]
}

// flags returns the flags of inv by name, with their values ("" for a
// boolean flag).
func (inv invocation) flags(t *testing.T, help map[string]map[string]flagHelp) map[string][]string {
	t.Helper()
	sub, rest := inv.sub()
	out := map[string][]string{}
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if !strings.HasPrefix(a, "-") {
			t.Errorf("%s: stepwise %s: unexpected argument %q", inv.where, sub, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		h, ok := help[sub][name]
		if !ok {
			t.Errorf("%s: stepwise %s has no flag -%s", inv.where, sub, name)
			continue
		}
		if !hasValue && !h.boolean {
			if i+1 >= len(rest) {
				t.Errorf("%s: stepwise %s -%s has no value", inv.where, sub, name)
				continue
			}
			i++
			value = rest[i]
		}
		out[name] = append(out[name], value)
	}
	return out
}

// flagHelp is what `stepwise SUB -h` says of one flag.
type flagHelp struct{ boolean bool }

var helpLine = regexp.MustCompile(`^  -([a-z0-9-]+)( \S+)?`)

// stepwiseHelp builds the stepwise binary and returns the flags of each
// subcommand, read from its -h output.
func stepwiseHelp(t *testing.T, subs ...string) map[string]map[string]flagHelp {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stepwise")
	build := exec.Command("go", "build", "-o", bin, "./cmd/stepwise")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/stepwise: %v\n%s", err, out)
	}
	out := map[string]map[string]flagHelp{}
	for _, sub := range subs {
		b, err := exec.Command(bin, append(strings.Fields(sub), "-h")...).CombinedOutput()
		if err != nil {
			t.Fatalf("stepwise %s -h: %v\n%s", sub, err, b)
		}
		flags := map[string]flagHelp{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if m := helpLine.FindStringSubmatch(sc.Text()); m != nil {
				flags[m[1]] = flagHelp{boolean: m[2] == ""}
			}
		}
		if len(flags) == 0 {
			t.Fatalf("stepwise %s -h lists no flags:\n%s", sub, b)
		}
		out[sub] = flags
	}
	return out
}

// --- compose ------------------------------------------------------------------

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck     any    `yaml:"healthcheck"`
	Restart         string `yaml:"restart"`
	StopGracePeriod string `yaml:"stop_grace_period"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return c
}

// --- Kubernetes ---------------------------------------------------------------

// k8sDoc is one document of a manifest, decoded loosely: only what the
// checks read.
type k8sDoc struct {
	file       string
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		ScaleTargetRef struct {
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		Triggers []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
	Resources []string `yaml:"resources"`
}

// probe is a container's HTTP probe.
type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
}

type podSpec struct {
	Containers []struct {
		Name    string   `yaml:"name"`
		Image   string   `yaml:"image"`
		Args    []string `yaml:"args"`
		Command []string `yaml:"command"`
		EnvFrom []struct {
			ConfigMapRef struct {
				Name string `yaml:"name"`
			} `yaml:"configMapRef"`
		} `yaml:"envFrom"`
		Env []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom any    `yaml:"valueFrom"`
		} `yaml:"env"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
	} `yaml:"containers"`
	Volumes []struct {
		Name      string `yaml:"name"`
		ConfigMap struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

func loadManifests(t *testing.T) []k8sDoc {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/: %v", err)
	}
	var docs []k8sDoc
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var d k8sDoc
			err := dec.Decode(&d)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			d.file = f
			if d.Kind == "" || d.APIVersion == "" {
				t.Errorf("%s: a document without kind or apiVersion", f)
			}
			docs = append(docs, d)
		}
	}
	return docs
}

func findDoc(t *testing.T, docs []k8sDoc, kind, name string) k8sDoc {
	t.Helper()
	for _, d := range docs {
		if d.Kind == kind && d.Metadata.Name == name {
			return d
		}
	}
	t.Fatalf("no %s %s in deploy/", kind, name)
	return k8sDoc{}
}

// --- shared expectations ------------------------------------------------------------

// exampleFiles maps the file names the deployments give the examples'
// workflows to their content.
func exampleFiles(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, e := range examples.All() {
		b, err := os.ReadFile(filepath.Join("..", "examples", e.Name, "workflows.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name+".yaml"] = b
	}
	return out
}

var exampleSet = sync.OnceValues(examples.Definitions)

// expectDuration checks that a flag, when given, says want.
func expectDuration(t *testing.T, where, flag string, got []string, want time.Duration) {
	t.Helper()
	if len(got) == 0 {
		t.Errorf("%s: -%s not set; the deployment should spell out the tested %s", where, flag, want)
		return
	}
	d, err := time.ParseDuration(got[len(got)-1])
	if err != nil || d != want {
		t.Errorf("%s: -%s %s, but the tested setting is %s", where, flag, got[len(got)-1], want)
	}
}

// checkProcessor checks the settings a processor runs with against the
// tested defaults.
func checkProcessor(t *testing.T, inv invocation, flags map[string][]string) {
	t.Helper()
	expectDuration(t, inv.where, "session-timeout", flags["session-timeout"], processors.DefaultSessionTimeout)
	expectDuration(t, inv.where, "heartbeat", flags["heartbeat"], processors.DefaultHeartbeat)
	expectDuration(t, inv.where, "txn-timeout", flags["txn-timeout"], processors.DefaultTxnTimeout)
	if len(flags["replica-id"]) == 0 {
		t.Errorf("%s: a processor without --replica-id takes the hostname; set a stable, unique id", inv.where)
	}
}

func checkExamplesFlag(t *testing.T, inv invocation, flags map[string][]string) {
	t.Helper()
	for _, v := range flags["example"] {
		for _, name := range strings.Split(v, ",") {
			if _, err := examples.Lookup(name); err != nil && name != "all" {
				t.Errorf("%s: --example %s: %v", inv.where, name, err)
			}
		}
	}
}

// brokerSettings are the broker settings Stepwise's takeover time and
// correctness depend on, with the values of the tested broker.
var brokerSettings = []string{
	"transaction.abort.timed.out.transaction.cleanup.interval.ms",
	"group.min.session.timeout.ms",
	"group.initial.rebalance.delay.ms",
	"group.consumer.session.timeout.ms",
	"group.consumer.min.session.timeout.ms",
	"group.consumer.heartbeat.interval.ms",
	"group.consumer.min.heartbeat.interval.ms",
	"auto.create.topics.enable",
}

func readProperties(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// hostPort splits "host:port".
func hostPort(t *testing.T, where, s string) (string, int) {
	t.Helper()
	i := strings.LastIndex(s, ":")
	if i < 0 {
		t.Errorf("%s: %q is not host:port", where, s)
		return s, 0
	}
	p, err := strconv.Atoi(s[i+1:])
	if err != nil {
		t.Errorf("%s: %q: bad port", where, s)
	}
	return s[:i], p
}

// checkAPIAuth checks that an API serving beyond loopback has tokens (a
// tokens file or the environment variable) and is not told to go without.
func checkAPIAuth(t *testing.T, where string, flags map[string][]string, tokensEnv bool) {
	t.Helper()
	if _, ok := flags["insecure-no-auth"]; ok {
		t.Errorf("%s: --insecure-no-auth in a deployment file", where)
	}
	if !tokensEnv && len(flags["tokens-file"]) == 0 {
		t.Errorf("%s: stepwise api without tokens: set $%s or --tokens-file", where, api.TokensEnv)
	}
}

// TestCompose checks docker-compose.yml: the broker image and settings
// match the tested broker, every stepwise command line uses existing flags
// with the tested processor settings, addresses point at the broker's
// listeners and published ports, and workflow files are mounted from the
// examples.
func TestCompose(t *testing.T) {
	c := loadCompose(t)
	help := stepwiseHelp(t, "run", "topics create", "workers", "api")

	kafka, ok := c.Services["kafka"]
	if !ok {
		t.Fatal("docker-compose.yml: no kafka service")
	}
	// The image's Kafka version is the one the integration suite runs.
	pom, err := os.ReadFile("../integration/kafka/pom.xml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<kafka.version>([^<]+)</kafka.version>`).FindSubmatch(pom)
	if m == nil {
		t.Fatal("integration/kafka/pom.xml: no kafka.version")
	}
	if want := "apache/kafka:" + string(m[1]); kafka.Image != want {
		t.Errorf("kafka image %s, but the integration suite runs Kafka %s (want %s)", kafka.Image, m[1], want)
	}
	if id, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(kafka.Environment["CLUSTER_ID"])); err != nil || len(id) != 16 {
		t.Errorf("kafka CLUSTER_ID %q is not 16 bytes of URL-safe base64", kafka.Environment["CLUSTER_ID"])
	}

	// Broker settings that matter are those of the tested broker.
	tested := readProperties(t, "../integration/kafka/server.properties")
	env := map[string]string{}
	for k, v := range kafka.Environment {
		if rest, ok := strings.CutPrefix(k, "KAFKA_"); ok {
			env[strings.ToLower(strings.ReplaceAll(rest, "_", "."))] = v
		}
	}
	for _, key := range brokerSettings {
		want, ok := tested[key]
		if !ok {
			t.Errorf("integration/kafka/server.properties does not set %s; update brokerSettings", key)
			continue
		}
		if env[key] != want {
			t.Errorf("kafka: %s = %q, the tested broker has %q", key, env[key], want)
		}
	}

	// Listeners: name -> port, and the advertised address of each.
	listeners := map[string]int{}
	for _, l := range strings.Split(env["listeners"], ",") {
		name, addr, _ := strings.Cut(l, "://")
		_, p := hostPort(t, "kafka listeners", addr)
		listeners[name] = p
	}
	advertised := map[string]bool{}
	for _, l := range strings.Split(env["advertised.listeners"], ",") {
		name, addr, _ := strings.Cut(l, "://")
		host, p := hostPort(t, "kafka advertised listeners", addr)
		if listeners[name] != p {
			t.Errorf("kafka: advertised %s port %d, but the listener binds %d", name, p, listeners[name])
		}
		if host == "kafka" {
			advertised[addr] = true
		}
	}
	published := map[int]int{} // container port -> host port
	for _, p := range kafka.Ports {
		h, cp, _ := strings.Cut(strings.Fields(p)[0], ":")
		hp, _ := strconv.Atoi(strings.Trim(h, `"`))
		cpn, _ := strconv.Atoi(strings.Trim(cp, `"`))
		published[cpn] = hp
	}
	if hp := published[listeners["HOST"]]; hp == 0 || !strings.Contains(env["advertised.listeners"], fmt.Sprintf("HOST://localhost:%d", hp)) {
		t.Errorf("kafka: the HOST listener (port %d) must be published on the same host port it advertises; ports %v", listeners["HOST"], kafka.Ports)
	}

	files := exampleFiles(t)
	roles := map[string]int{}
	for name, svc := range c.Services {
		if name == "kafka" {
			continue
		}
		where := "docker-compose.yml services." + name
		if svc.Image != stepwiseImage {
			t.Errorf("%s: image %q, want %s", where, svc.Image, stepwiseImage)
		}
		if len(svc.Command) == 0 {
			t.Errorf("%s: no command", where)
			continue
		}
		inv := invocation{where: where, args: svc.Command}
		sub, _ := inv.sub()
		if _, ok := help[sub]; !ok {
			t.Errorf("%s: stepwise %s is not a checked subcommand", where, sub)
			continue
		}
		roles[sub]++
		flags := inv.flags(t, help)
		for _, b := range flags["brokers"] {
			for _, addr := range strings.Split(b, ",") {
				if !advertised[addr] {
					t.Errorf("%s: --brokers %s is not an advertised listener of the kafka service", where, addr)
				}
			}
		}
		if len(flags["brokers"]) == 0 {
			t.Errorf("%s: no --brokers (the default, 127.0.0.1:9092, is not the broker in compose)", where)
		}
		mounts := map[string]string{}
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Errorf("%s: volume %q", where, v)
				continue
			}
			mounts[parts[1]] = parts[0]
			if _, err := os.Stat(filepath.Join("..", parts[0])); err != nil {
				t.Errorf("%s: volume source %s: %v", where, parts[0], err)
			}
		}
		for _, f := range flags["f"] {
			src, ok := mounts[f]
			if !ok {
				t.Errorf("%s: -f %s is not mounted", where, f)
				continue
			}
			b, _ := os.ReadFile(filepath.Join("..", src))
			if want, ok := files[filepath.Base(f)]; !ok || !bytes.Equal(b, want) {
				t.Errorf("%s: -f %s is mounted from %s, not the example of that name", where, f, src)
			}
		}
		switch sub {
		case "run":
			checkProcessor(t, inv, flags)
		case "workers":
			checkExamplesFlag(t, inv, flags)
		case "api":
			_, tokensEnv := svc.Environment[api.TokensEnv]
			checkAPIAuth(t, where, flags, tokensEnv)
			for _, a := range flags["http"] {
				_, p := hostPort(t, where, a)
				if !slices.ContainsFunc(svc.Ports, func(s string) bool { return strings.HasSuffix(s, fmt.Sprintf(":%d", p)) }) {
					t.Errorf("%s: --http port %d is not published (ports %v)", where, p, svc.Ports)
				}
			}
		}
		if sub != "topics create" {
			if d, ok := svc.DependsOn["topics"]; !ok || d.Condition != "service_completed_successfully" {
				t.Errorf("%s: must start after the topics service completed", where)
			}
		}
	}
	for _, sub := range []string{"topics create", "run", "workers"} {
		if roles[sub] == 0 {
			t.Errorf("docker-compose.yml: no service runs stepwise %s", sub)
		}
	}
}

// TestManifests checks deploy/*.yaml: they parse, every stepwise container
// uses the one image and existing flags with the tested processor
// settings, workflow files come from the ConfigMap holding the examples'
// files verbatim, and the autoscaler watches task topics and worker groups
// of the topic plan.
func TestManifests(t *testing.T) {
	docs := loadManifests(t)
	help := stepwiseHelp(t, "run", "topics create", "workers", "api")
	files := exampleFiles(t)

	// Every manifest is listed in the kustomization, and every listed
	// file exists.
	kust := findDoc(t, docs, "Kustomization", "")
	listed := map[string]bool{}
	for _, r := range kust.Resources {
		listed[r] = true
		if _, err := os.Stat(r); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
	for _, d := range docs {
		if d.Kind != "Kustomization" && !listed[d.file] {
			t.Errorf("%s is not listed in kustomization.yaml", d.file)
		}
	}

	wf := findDoc(t, docs, "ConfigMap", "stepwise-workflows")
	for name, want := range files {
		if got, ok := wf.Data[name]; !ok || got != string(want) {
			t.Errorf("ConfigMap stepwise-workflows: key %s differs from examples/%s/workflows.yaml", name, strings.TrimSuffix(name, ".yaml"))
		}
	}
	conn := findDoc(t, docs, "ConfigMap", "stepwise-kafka")
	prefix := topology.Prefix(conn.Data["STEPWISE_PREFIX"])
	if prefix != topology.DefaultPrefix {
		t.Errorf("ConfigMap stepwise-kafka: STEPWISE_PREFIX %q; the autoscaler's topic names assume %q", prefix, topology.DefaultPrefix)
	}
	bootstrap := conn.Data["STEPWISE_BROKERS"]
	hostPort(t, "ConfigMap stepwise-kafka STEPWISE_BROKERS", bootstrap)

	roles := map[string]string{} // subcommand -> workload
	for _, d := range docs {
		if d.Kind != "Deployment" && d.Kind != "Job" {
			continue
		}
		pod := d.Spec.Template.Spec
		cmVolumes := map[string]string{}
		for _, v := range pod.Volumes {
			cmVolumes[v.Name] = v.ConfigMap.Name
		}
		for _, c := range pod.Containers {
			where := fmt.Sprintf("%s %s %s container %s", d.file, d.Kind, d.Metadata.Name, c.Name)
			if c.Image != stepwiseImage {
				t.Errorf("%s: image %q, want %s", where, c.Image, stepwiseImage)
			}
			if len(c.Command) > 0 {
				t.Errorf("%s: sets command; the image's entrypoint is stepwise, give args", where)
			}
			inv := invocation{where: where, args: c.Args}
			sub, _ := inv.sub()
			if _, ok := help[sub]; !ok {
				t.Errorf("%s: stepwise %s is not a checked subcommand", where, sub)
				continue
			}
			roles[sub] = d.Metadata.Name
			flags := inv.flags(t, help)

			// $(VAR) references resolve to variables the container has.
			vars := map[string]bool{}
			for _, e := range c.Env {
				vars[e.Name] = true
			}
			for _, ef := range c.EnvFrom {
				cm := findDoc(t, docs, "ConfigMap", ef.ConfigMapRef.Name)
				for k := range cm.Data {
					vars[k] = true
				}
			}
			for _, a := range c.Args {
				for _, ref := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(a, -1) {
					if !vars[ref[1]] {
						t.Errorf("%s: %s refers to $(%s), which the container does not define", where, a, ref[1])
					}
				}
			}
			if !slices.Equal(flags["brokers"], []string{"$(STEPWISE_BROKERS)"}) || !slices.Equal(flags["prefix"], []string{"$(STEPWISE_PREFIX)"}) {
				t.Errorf("%s: --brokers %v --prefix %v; take both from the stepwise-kafka ConfigMap", where, flags["brokers"], flags["prefix"])
			}
			if !vars["STEPWISE_SASL_PASSWORD"] {
				t.Errorf("%s: no STEPWISE_SASL_PASSWORD from the stepwise-kafka Secret", where)
			}

			// -f files come from the workflows ConfigMap.
			mounted := map[string]bool{}
			for _, vm := range c.VolumeMounts {
				if cmVolumes[vm.Name] == "stepwise-workflows" {
					for name := range wf.Data {
						mounted[filepath.Join(vm.MountPath, name)] = true
					}
				}
			}
			for _, f := range flags["f"] {
				if !mounted[f] {
					t.Errorf("%s: -f %s is not a key of the mounted stepwise-workflows ConfigMap", where, f)
				}
			}
			// run and api serve /healthz and /readyz on --http; the
			// probes ask them there.
			if sub == "run" || sub == "api" {
				ports := map[string]int{}
				for _, p := range c.Ports {
					ports[p.Name] = p.ContainerPort
				}
				httpPort := 0
				for _, a := range flags["http"] {
					_, httpPort = hostPort(t, where, a)
				}
				for _, pc := range []struct {
					kind, path string
					p          *probe
				}{{"livenessProbe", "/healthz", c.LivenessProbe}, {"readinessProbe", "/readyz", c.ReadinessProbe}} {
					if pc.p == nil {
						t.Errorf("%s: no %s", where, pc.kind)
						continue
					}
					port, ok := pc.p.HTTPGet.Port.(int)
					if !ok {
						port = ports[fmt.Sprint(pc.p.HTTPGet.Port)]
					}
					if pc.p.HTTPGet.Path != pc.path || port == 0 || port != httpPort {
						t.Errorf("%s: %s asks %s on port %d; stepwise %s --http serves %s on port %d", where, pc.kind, pc.p.HTTPGet.Path, port, sub, pc.path, httpPort)
					}
				}
			}
			switch sub {
			case "run":
				checkProcessor(t, inv, flags)
				if !slices.Equal(flags["replica-id"], []string{"$(POD_NAME)"}) {
					t.Errorf("%s: --replica-id %v; use the pod name", where, flags["replica-id"])
				}
			case "workers":
				checkExamplesFlag(t, inv, flags)
			case "api":
				checkAPIAuth(t, where, flags, vars[api.TokensEnv])
			}
		}
	}
	for _, sub := range []string{"topics create", "run", "workers"} {
		if roles[sub] == "" {
			t.Errorf("deploy/: no workload runs stepwise %s", sub)
		}
	}

	// The autoscaler watches the tasks topics of the workers it scales,
	// under the group names the Go SDK uses.
	set, err := exampleSet()
	if err != nil {
		t.Fatal(err)
	}
	plan := map[string]bool{}
	for _, spec := range set.Topics(prefix) {
		plan[spec.Name] = true
	}
	so := findDoc(t, docs, "ScaledObject", "stepwise-workers-idp")
	target := findDoc(t, docs, "Deployment", so.Spec.ScaleTargetRef.Name)
	idpExample, _ := examples.Lookup("idp")
	idpSet, err := idpExample.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	if len(so.Spec.Triggers) == 0 {
		t.Error("ScaledObject stepwise-workers-idp has no triggers")
	}
	for _, tr := range so.Spec.Triggers {
		md := tr.Metadata
		where := fmt.Sprintf("ScaledObject %s trigger %s", so.Metadata.Name, md["topic"])
		if tr.Type != "kafka" {
			t.Errorf("%s: type %s, want kafka (consumer lag)", where, tr.Type)
		}
		if !plan[md["topic"]] {
			t.Errorf("%s: topic %s is not in the examples' topic plan", where, md["topic"])
		}
		queue := prefix.QueueOf(md["topic"])
		if !slices.Contains(idpSet.Queues(), queue) {
			t.Errorf("%s: queue %q is not one the idp workers of %s serve", where, queue, target.Metadata.Name)
		}
		if want := string(prefix) + "workers." + queue; md["consumerGroup"] != want {
			t.Errorf("%s: consumerGroup %s, but the workers of queue %s join %s", where, md["consumerGroup"], queue, want)
		}
		if md["bootstrapServers"] != bootstrap {
			t.Errorf("%s: bootstrapServers %s, the pods use %s", where, md["bootstrapServers"], bootstrap)
		}
		if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n < 1 {
			t.Errorf("%s: lagThreshold %q", where, md["lagThreshold"])
		}
	}
}

// TestDockerfile checks that the image builds with a Go at least as new as
// go.mod asks for, from the command the deployments run.
func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindSubmatch(mod)
	from := regexp.MustCompile(`(?m)^FROM golang:(\d+)\.(\d+)`).FindSubmatch(df)
	if goLine == nil || from == nil {
		t.Fatalf("go.mod go line %q, Dockerfile golang image %q", goLine, from)
	}
	atoi := func(b []byte) int { n, _ := strconv.Atoi(string(b)); return n }
	if atoi(from[1]) < atoi(goLine[1]) || (atoi(from[1]) == atoi(goLine[1]) && atoi(from[2]) < atoi(goLine[2])) {
		t.Errorf("Dockerfile builds with golang:%s.%s, go.mod needs go %s.%s", from[1], from[2], goLine[1], goLine[2])
	}
	if !bytes.Contains(df, []byte("./cmd/stepwise")) || !bytes.Contains(df, []byte(`ENTRYPOINT ["/stepwise"]`)) {
		t.Error("Dockerfile must build ./cmd/stepwise and use it as the entrypoint (the deployments give only its arguments)")
	}
	for _, e := range examples.All() {
		if src := fmt.Sprintf("examples/%s/workflows.yaml", e.Name); !bytes.Contains(df, []byte(src)) {
			t.Errorf("Dockerfile does not copy %s", src)
		}
	}
}

// TestDashboard checks deploy/grafana-dashboard.json: it parses, and every
// Stepwise metric its queries use is one package metrics defines.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	doc, err := os.ReadFile("../metrics/doc.go")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^//\s+(stepwise_[a-z_]+)`).FindAllSubmatch(doc, -1) {
		defined[string(m[1])] = true
	}
	name := regexp.MustCompile(`stepwise_[a-z_]+`)
	used := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
				if !defined[base] {
					t.Errorf("panel %q: %s is not a metric of package metrics", p.Title, m)
				}
				used++
			}
		}
	}
	if used == 0 {
		t.Fatal("the dashboard queries no Stepwise metric")
	}
}
