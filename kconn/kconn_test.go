package kconn

import (
	"errors"
	"flag"
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
