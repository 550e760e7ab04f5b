// Package deploy holds the Kubernetes manifests of Stepwise (this
// directory's YAML files, applied with `kubectl apply -k deploy/`) and the
// test that keeps them, docker-compose.yml and the Dockerfile honest: they
// cannot run in CI, so deploy_test.go checks that they parse, that every
// stepwise subcommand and flag they use exists, that every topic, consumer
// group and workflow file they name belongs to the examples' topic plan,
// that ports and images agree, and that the broker and processor settings
// are those the integration suite runs with.
//
// See README.md in this directory for what each manifest does.
package deploy
