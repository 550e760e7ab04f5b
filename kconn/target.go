package kconn

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stepwise-run/stepwise/topology"
)

// ErrNoBrokers means a client was given nowhere to connect.
var ErrNoBrokers = errors.New("stepwise: no brokers; use WithBrokers, WithConn or WithKafkaOpts(kgo.SeedBrokers(...))")

// Target collects what the options of a Stepwise library client (worker
// SDK, client) say about where to connect: any mix of seed brokers, shared
// connection settings, raw franz-go options and a topic prefix. Those
// packages keep their own typed options and resolve them here, once.
type Target struct {
	Brokers   []string
	Conn      *Config
	KafkaOpts []kgo.Opt
	Prefix    topology.Prefix
	PrefixSet bool // Prefix was given explicitly and wins over Conn.Prefix
}

// Resolve returns the franz-go options to start every client from, and the
// topic prefix to use (DefaultPrefix when none was given). KafkaOpts come
// last, so they override what Conn and Brokers set.
func (t Target) Resolve() ([]kgo.Opt, topology.Prefix, error) {
	prefix := topology.DefaultPrefix
	if t.PrefixSet {
		prefix = t.Prefix
	}
	var opts []kgo.Opt
	if t.Conn != nil {
		o, err := t.Conn.Opts()
		if err != nil {
			return nil, "", err
		}
		opts = append(opts, o...)
		if !t.PrefixSet && t.Conn.Prefix != "" {
			prefix = t.Conn.Prefix
		}
	}
	if len(t.Brokers) > 0 {
		opts = append(opts, kgo.SeedBrokers(t.Brokers...))
	}
	if len(opts) == 0 && len(t.KafkaOpts) == 0 {
		return nil, "", ErrNoBrokers
	}
	return append(opts, t.KafkaOpts...), prefix, nil
}
