package kconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
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

	envErr     error  // an unusable environment variable seen by RegisterFlags
	envErrFlag string // the flag that overrides it
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

// Environment variables that set the connection settings of every command,
// so that an installation on non-default brokers needs no flag on each
// call. RegisterFlags reads them as the flags' defaults; a flag given on
// the command line wins.
const (
	EnvBrokers       = "STEPWISE_BROKERS"                  // --brokers
	EnvClientID      = "STEPWISE_CLIENT_ID"                // --client-id
	EnvTLS           = "STEPWISE_TLS"                      // --tls (true/false, 1/0)
	EnvTLSCA         = "STEPWISE_TLS_CA"                   // --tls-ca
	EnvTLSCert       = "STEPWISE_TLS_CERT"                 // --tls-cert
	EnvTLSKey        = "STEPWISE_TLS_KEY"                  // --tls-key
	EnvTLSInsecure   = "STEPWISE_TLS_INSECURE_SKIP_VERIFY" // --tls-insecure-skip-verify
	EnvSASLMechanism = "STEPWISE_SASL_MECHANISM"           // --sasl-mechanism
	EnvSASLUser      = "STEPWISE_SASL_USER"                // --sasl-user
	EnvPrefix        = "STEPWISE_PREFIX"                   // --prefix
	// PasswordEnv (STEPWISE_SASL_PASSWORD) is the default of --sasl-password.
)

// setting is one connection flag and the environment variable behind it.
type setting struct {
	flag, env, usage string
	isBool           bool
	set              func(c *Config, v string) error
}

func (c *Config) settings() []setting {
	str := func(dst *string) func(*Config, string) error {
		return func(_ *Config, v string) error { *dst = v; return nil }
	}
	boolean := func(dst *bool) func(*Config, string) error {
		return func(_ *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q is not true or false", v)
			}
			*dst = b
			return nil
		}
	}
	return []setting{
		{flag: "brokers", env: EnvBrokers, usage: "comma-separated seed brokers (default " + DefaultBrokers + ")",
			set: func(c *Config, v string) error {
				c.Brokers = splitList(v)
				if len(c.Brokers) == 0 {
					return errors.New("no broker given")
				}
				return nil
			}},
		{flag: "client-id", env: EnvClientID, usage: "client id reported to the brokers", set: str(&c.ClientID)},
		{flag: "tls", env: EnvTLS, isBool: true, usage: "connect with TLS (implied by the other --tls-* flags)", set: boolean(&c.TLS.Enabled)},
		{flag: "tls-ca", env: EnvTLSCA, usage: "PEM file of the CA certificates to trust (default: system roots)", set: str(&c.TLS.CAFile)},
		{flag: "tls-cert", env: EnvTLSCert, usage: "PEM client certificate (with --tls-key)", set: str(&c.TLS.CertFile)},
		{flag: "tls-key", env: EnvTLSKey, usage: "PEM client key (with --tls-cert)", set: str(&c.TLS.KeyFile)},
		{flag: "tls-insecure-skip-verify", env: EnvTLSInsecure, isBool: true, usage: "do not verify the server certificate (tests only)", set: boolean(&c.TLS.InsecureSkipVerify)},
		{flag: "sasl-mechanism", env: EnvSASLMechanism, usage: "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", set: str(&c.SASL.Mechanism)},
		{flag: "sasl-user", env: EnvSASLUser, usage: "SASL user name", set: str(&c.SASL.User)},
		{flag: "sasl-password", env: PasswordEnv, usage: "SASL password (better given in the environment, where other users cannot read it)", set: str(&c.SASL.Password)},
		{flag: "prefix", env: EnvPrefix, usage: "topic prefix of the installation (default " + string(topology.DefaultPrefix) + ")",
			set: func(c *Config, v string) error { c.Prefix = topology.Prefix(v); return nil }},
	}
}

// RegisterFlags adds the connection flags to fs, with their defaults stored
// in c: the built-in ones, overridden by the environment variables above
// that are set. Call once per FlagSet, before fs.Parse. An unusable value
// in the environment is reported by Opts, naming the variable.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	*c = Default()
	for _, st := range c.settings() {
		if v, ok := os.LookupEnv(st.env); ok {
			if err := st.set(c, v); err != nil && c.envErr == nil {
				c.envErr = fmt.Errorf("%w: $%s: %v (or give --%s)", ErrConfig, st.env, err, st.flag)
				c.envErrFlag = st.flag
			}
		}
		set := func(v string) error {
			if c.envErrFlag == st.flag {
				c.envErr, c.envErrFlag = nil, "" // the flag overrides it
			}
			return st.set(c, v)
		}
		usage := st.usage + " [$" + st.env + "]"
		if st.isBool {
			fs.BoolFunc(st.flag, usage, set)
		} else {
			fs.Func(st.flag, usage, set)
		}
	}
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
	if c.envErr != nil {
		return nil, c.envErr
	}
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
