package kconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/stepwise-run/stepwise/topology"
)

// DefaultBrokers is dialled when no broker is configured: a local Kafka or
// `stepwise dev`.
const DefaultBrokers = "127.0.0.1:9092"

// PasswordEnv is read for the SASL password when --sasl-password is empty.
const PasswordEnv = "STEPWISE_SASL_PASSWORD"

// SASL mechanisms accepted in SASL.Mechanism.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// ErrConfig is wrapped by every error Opts returns.
var ErrConfig = errors.New("stepwise: invalid connection settings")

// Config says how to reach the Kafka cluster of one Stepwise installation.
// The zero value is not usable; use RegisterFlags or Default.
type Config struct {
	Brokers  []string // seed brokers, host:port
	ClientID string   // reported to the brokers; "" keeps franz-go's default
	TLS      TLS
	SASL     SASL
	Prefix   topology.Prefix // topic prefix, e.g. "stepwise."
}

// TLS enables TLS when any field is set.
type TLS struct {
	Enabled            bool   // set when only the system roots are needed
	CAFile             string // PEM roots; "" uses the system pool
	CertFile           string // PEM client certificate, with KeyFile
	KeyFile            string
	InsecureSkipVerify bool // accept any server certificate; tests only
}

// SASL enables SASL authentication when Mechanism is set.
type SASL struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	User      string
	Password  string
}

// Default returns the settings of a local development broker.
func Default() Config {
	return Config{Brokers: []string{DefaultBrokers}, Prefix: topology.DefaultPrefix}
}

// RegisterFlags adds the connection flags to fs, with their defaults stored
// in c. Call once per FlagSet, before fs.Parse.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	*c = Default()
	fs.Func("brokers", "comma-separated seed brokers (default "+DefaultBrokers+")", func(s string) error {
		c.Brokers = splitList(s)
		if len(c.Brokers) == 0 {
			return errors.New("no broker given")
		}
		return nil
	})
	fs.StringVar(&c.ClientID, "client-id", "", "client id reported to the brokers")
	fs.BoolVar(&c.TLS.Enabled, "tls", false, "connect with TLS (implied by the other --tls-* flags)")
	fs.StringVar(&c.TLS.CAFile, "tls-ca", "", "PEM file of the CA certificates to trust (default: system roots)")
	fs.StringVar(&c.TLS.CertFile, "tls-cert", "", "PEM client certificate (with --tls-key)")
	fs.StringVar(&c.TLS.KeyFile, "tls-key", "", "PEM client key (with --tls-cert)")
	fs.BoolVar(&c.TLS.InsecureSkipVerify, "tls-insecure-skip-verify", false, "do not verify the server certificate (tests only)")
	fs.StringVar(&c.SASL.Mechanism, "sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&c.SASL.User, "sasl-user", "", "SASL user name")
	fs.StringVar(&c.SASL.Password, "sasl-password", "", "SASL password (default $"+PasswordEnv+")")
	fs.Func("prefix", "topic prefix of the installation (default "+string(topology.DefaultPrefix)+")", func(s string) error {
		c.Prefix = topology.Prefix(s)
		return nil
	})
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// Opts validates c and returns the franz-go options for seeds, client id,
// TLS and SASL. Callers append their own (group, transactions, ...).
func (c *Config) Opts() ([]kgo.Opt, error) {
	if len(c.Brokers) == 0 {
		return nil, fmt.Errorf("%w: no broker; set --brokers", ErrConfig)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if c.TLS.wanted() {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL.Mechanism != "" {
		m, err := c.SASL.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	} else if c.SASL.User != "" {
		return nil, fmt.Errorf("%w: --sasl-user given without --sasl-mechanism", ErrConfig)
	}
	return opts, nil
}

func (t *TLS) wanted() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

func (t *TLS) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --tls-ca: %v", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: --tls-ca %s: no PEM certificate found", ErrConfig, t.CAFile)
		}
		tc.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("%w: --tls-cert and --tls-key go together", ErrConfig)
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %v", ErrConfig, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (s *SASL) mechanism() (sasl.Mechanism, error) {
	pass := s.Password
	if pass == "" {
		pass = os.Getenv(PasswordEnv)
	}
	if s.User == "" {
		return nil, fmt.Errorf("%w: --sasl-mechanism %s needs --sasl-user", ErrConfig, s.Mechanism)
	}
	switch strings.ToUpper(s.Mechanism) {
	case MechanismPlain:
		return plain.Auth{User: s.User, Pass: pass}.AsMechanism(), nil
	case MechanismScramSHA256:
		return scram.Auth{User: s.User, Pass: pass}.AsSha256Mechanism(), nil
	case MechanismScramSHA512:
		return scram.Auth{User: s.User, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("%w: unknown --sasl-mechanism %q; use %s, %s or %s",
		ErrConfig, s.Mechanism, MechanismPlain, MechanismScramSHA256, MechanismScramSHA512)
}
