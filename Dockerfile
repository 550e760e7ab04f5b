# The stepwise image: one static binary that runs every role (topic
# creation, processor, example workers, API). docker-compose.yml and the
# manifests in deploy/ use it as stepwise:dev; push it under your own
# registry name for a cluster.
#
#   docker build -t stepwise:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/stepwise ./cmd/stepwise

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/stepwise /stepwise
# The examples' workflow files, for `stepwise run -f /workflows/...` when
# no ConfigMap or volume provides others.
COPY examples/word-counts/workflows.yaml /workflows/word-counts.yaml
COPY examples/idp/workflows.yaml /workflows/idp.yaml
USER nonroot
ENTRYPOINT ["/stepwise"]
