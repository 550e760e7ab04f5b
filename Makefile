GO ?= go

.PHONY: test ci vet build

build:
	$(GO) build -o bin/stepwise ./cmd/stepwise

vet:
	$(GO) vet ./...

# Fast suite: unit tests and in-process (kfake) runtime tests. Needs only Go.
test: vet
	$(GO) test -count=1 ./...

# Everything CI runs.
ci: test
