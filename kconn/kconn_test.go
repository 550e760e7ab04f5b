package kconn

import (
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"

	"github.com/stepwise-run/stepwise/topology"
)

func parse(t *testing.T, args ...string) *Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &c
}

func TestDefaults(t *testing.T) {
	c := parse(t)
	if len(c.Brokers) != 1 || c.Brokers[0] != DefaultBrokers {
		t.Fatalf("brokers = %v", c.Brokers)
	}
	if c.Prefix != topology.DefaultPrefix {
		t.Fatalf("prefix = %q", c.Prefix)
	}
	opts, err := c.Opts()
	if err != nil {
		t.Fatal(err)
	}
	if len(opts) != 1 { // seeds only
		t.Fatalf("got %d options, want 1", len(opts))
	}
}

func TestFlags(t *testing.T) {
	c := parse(t, "--brokers", " a:1, b:2 ,", "--prefix", "x.", "--client-id", "me",
		"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "u")
	if len(c.Brokers) != 2 || c.Brokers[0] != "a:1" || c.Brokers[1] != "b:2" {
		t.Fatalf("brokers = %q", c.Brokers)
	}
	if c.Prefix != "x." || c.ClientID != "me" {
		t.Fatalf("prefix %q client id %q", c.Prefix, c.ClientID)
	}
	t.Setenv(PasswordEnv, "secret")
	opts, err := c.Opts()
	if err != nil {
		t.Fatal(err)
	}
	if len(opts) != 3 { // seeds, client id, sasl
		t.Fatalf("got %d options, want 3", len(opts))
	}
}

func TestInvalid(t *testing.T) {
	cases := map[string][]string{
		"unknown mechanism":  {"--sasl-mechanism", "GSSAPI", "--sasl-user", "u"},
		"mechanism, no user": {"--sasl-mechanism", "PLAIN"},
		"user, no mechanism": {"--sasl-user", "u"},
		"cert without key":   {"--tls-cert", "c.pem"},
		"missing CA file":    {"--tls-ca", "/nonexistent/ca.pem"},
	}
	for name, args := range cases {
		c := parse(t, args...)
		if _, err := c.Opts(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
	c := parse(t)
	c.Brokers = nil
	if _, err := c.Opts(); !errors.Is(err, ErrConfig) {
		t.Errorf("no brokers: err = %v", err)
	}
}

func TestTLS(t *testing.T) {
	c := parse(t, "--tls", "--sasl-mechanism", "plain", "--sasl-user", "u", "--sasl-password", "p")
	opts, err := c.Opts()
	if err != nil {
		t.Fatal(err)
	}
	if len(opts) != 3 { // seeds, tls, sasl
		t.Fatalf("got %d options, want 3", len(opts))
	}
}

// Every connection setting can come from the environment; a flag wins.
func TestEnvironment(t *testing.T) {
	t.Setenv(EnvBrokers, "e1:1,e2:2")
	t.Setenv(EnvClientID, "from-env")
	t.Setenv(EnvTLS, "true")
	t.Setenv(EnvTLSCA, "/env/ca.pem")
	t.Setenv(EnvTLSCert, "/env/c.pem")
	t.Setenv(EnvTLSKey, "/env/k.pem")
	t.Setenv(EnvTLSInsecure, "1")
	t.Setenv(EnvSASLMechanism, "PLAIN")
	t.Setenv(EnvSASLUser, "env-user")
	t.Setenv(PasswordEnv, "env-pass")
	t.Setenv(EnvPrefix, "env.")
	c := parse(t)
	want := Config{Brokers: []string{"e1:1", "e2:2"}, ClientID: "from-env",
		TLS:  TLS{Enabled: true, CAFile: "/env/ca.pem", CertFile: "/env/c.pem", KeyFile: "/env/k.pem", InsecureSkipVerify: true},
		SASL: SASL{Mechanism: "PLAIN", User: "env-user", Password: "env-pass"}, Prefix: "env."}
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("from the environment:\n got %+v\nwant %+v", *c, want)
	}
	c = parse(t, "--brokers", "f:1", "--client-id", "from-flag", "--tls=false", "--tls-ca", "/flag/ca.pem",
		"--tls-insecure-skip-verify=false", "--sasl-user", "flag-user", "--prefix", "flag.")
	if got := c.Brokers; len(got) != 1 || got[0] != "f:1" || c.ClientID != "from-flag" || c.TLS.Enabled ||
		c.TLS.CAFile != "/flag/ca.pem" || c.TLS.InsecureSkipVerify || c.SASL.User != "flag-user" || c.Prefix != "flag." {
		t.Fatalf("flags do not override the environment: %+v", *c)
	}
	if c.TLS.CertFile != "/env/c.pem" || c.SASL.Mechanism != "PLAIN" {
		t.Fatalf("settings without a flag lost their environment value: %+v", *c)
	}
}

func TestUnusableEnvironment(t *testing.T) {
	t.Setenv(EnvTLS, "maybe")
	c := parse(t)
	if _, err := c.Opts(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "$STEPWISE_TLS") {
		t.Fatalf("unusable $%s: err = %v", EnvTLS, err)
	}
	c = parse(t, "--tls")
	if _, err := c.Opts(); err != nil {
		t.Fatalf("--tls overriding an unusable $%s: %v", EnvTLS, err)
	}
	t.Setenv(EnvBrokers, " , ")
	c = parse(t, "--tls")
	if _, err := c.Opts(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "$STEPWISE_BROKERS: no broker given") {
		t.Fatalf("empty $%s: err = %v", EnvBrokers, err)
	}
}
