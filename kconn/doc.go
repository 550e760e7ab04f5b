// Package kconn holds the connection settings every Stepwise program shares:
// which brokers to dial, how to secure the connection (TLS, SASL), and the
// topic prefix of the installation.
//
// # Where it sits
//
// It is at the edge of the data flow: nothing passes through it. Every
// command of the stepwise binary, the processors and the Go worker SDK build
// their Kafka clients from a Config, so one set of flags
// (--brokers, --client-id, --tls-*, --sasl-*, --prefix) means the same thing
// everywhere.
//
// # Use
//
//	var conn kconn.Config
//	conn.RegisterFlags(fs)
//	_ = fs.Parse(args)
//	opts, err := conn.Opts()          // []kgo.Opt: seeds, client id, TLS, SASL
//	cl, err := kgo.NewClient(append(opts, more...)...)
//
// Every setting may come from an environment variable instead
// (STEPWISE_BROKERS, STEPWISE_TLS_CA, ... : the Env* constants);
// RegisterFlags reads them as the flags' defaults, so a flag given on the
// command line wins. The SASL password belongs there
// (STEPWISE_SASL_PASSWORD) rather than on the command line, where other
// users of the machine could read it.
package kconn
