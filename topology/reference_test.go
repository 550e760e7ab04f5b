package topology

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestYAMLReference keeps docs/yaml-reference.md in step with the loader:
// each kind of mapping has a section whose table lists exactly the keys the
// loader accepts (Keys), each with a type, a default and an example.
func TestYAMLReference(t *testing.T) {
	b, err := os.ReadFile("../docs/yaml-reference.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `([A-Za-z]+)` \\|([^|]+)\\|([^|]+)\\|([^|]+)\\|$")
	documented := map[string][]string{}
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "## "); ok {
			section = name
			continue
		}
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, cell := range m[2:] {
			if strings.TrimSpace(cell) == "" {
				t.Errorf("yaml-reference.md:%d: %s.%s has an empty cell", i+1, section, m[1])
			}
		}
		documented[section] = append(documented[section], m[1])
	}
	for kind, keys := range Keys {
		got := slices.Sorted(slices.Values(documented[kind]))
		want := slices.Sorted(slices.Values(keys))
		if !slices.Equal(got, want) {
			t.Errorf("section %q documents %v; the loader accepts %v", kind, got, want)
		}
	}
	for kind := range documented {
		if Keys[kind] == nil {
			t.Errorf("section %q documents a kind of mapping the loader does not have", kind)
		}
	}
}

// TestDurationsTakeDays: "7d" and "1d12h" are durations; a retention must
// be positive.
func TestDurationsTakeDays(t *testing.T) {
	for in, want := range map[string]string{"7d": "168h0m0s", "1d12h": "36h0m0s", "90s": "1m30s"} {
		d, err := ParseDuration(in)
		if err != nil || d.String() != want {
			t.Errorf("%s: %v, %v; want %s", in, d, err, want)
		}
	}
	for _, bad := range []string{"d", "1.5d", "-1d", "7dx"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	set, err := Parse("r.yaml", []byte("workflows:\n  - name: w\n    retention: 7d\n    steps: [{name: a}]\n"))
	if err != nil || set.Lookup("w").Retention.Hours() != 168 {
		t.Fatalf("retention: 7d: %v", err)
	}
	_, err = Parse("r.yaml", []byte("workflows:\n  - name: w\n    retention: 0s\n    steps: [{name: a}]\n"))
	if err == nil || !strings.Contains(err.Error(), "r.yaml:3:16: workflows[0].retention: must be positive") {
		t.Fatalf("retention: 0s: %v", err)
	}
}
