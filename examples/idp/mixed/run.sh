#!/usr/bin/env bash
# The idp example with workers in three languages: OCR in Python
# (examples/idp/python/ocr.py), classification in TypeScript
# (sdk/typescript/examples/idp-classify.ts), split, render, layout, extract,
# assemble and notify in Go (`stepwise workers --skip-queues ocr,classify`).
#
#   examples/idp/mixed/run.sh            # starts `stepwise dev` (embedded broker)
#   KAFKA_BROKERS=127.0.0.1:9092 examples/idp/mixed/run.sh
#                                        # a real broker: topics of a prefix of
#                                        # its own, a `stepwise run` processor
#
# It builds the binary, the Python venv and the TypeScript worker, runs
# IDP_MIXED_REQUESTS (default 6) requests of the default bundle and one of
# bundle.json at once, and checks that each succeeds with the output the
# all-Go pipeline gives (`stepwise dev --examples`, run first), that the
# Python worker logged every OCR step, and that the consumer groups of ocr
# and classify had only the Python and TypeScript clients as members
# (crosscheck/). Every process it starts is stopped on exit, failure or
# Ctrl-C; on a real broker the run's topics and groups are deleted. On
# failure the logs' tails are printed and the logs kept.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
cd "$root"

requests=${IDP_MIXED_REQUESTS:-6}
workflows=examples/idp/workflows.yaml
work=$(mktemp -d "${TMPDIR:-/tmp}/idp-mixed.XXXXXX")
bin=$work/stepwise
check=$work/crosscheck
py=$root/sdk/python/.venv/bin/python
run_id=mixed-$(date +%Y%m%d%H%M%S)-$$
prefix=stepwise.$run_id.
brokers=""
clean_prefix="" # set once topics of our prefix may exist on a shared broker
pids=()         # long-running processes, in start order
names=()
clients=()      # `stepwise start` processes

log() { printf '%s mixed: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

# start NAME CMD...: runs CMD in the background, output in $work/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$work/$name.log" 2>&1 &
	pids+=($!)
	names+=("$name")
}

# stop_all stops the started processes, newest first: SIGTERM, up to 15 s
# to finish, then SIGKILL.
stop_all() {
	local i pid deadline
	for pid in "${clients[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	clients=()
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[i]}
		kill -TERM "$pid" 2>/dev/null || true
		deadline=$((SECONDS + 15))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			log "${names[i]} (pid $pid) still running after SIGTERM; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	pids=()
	names=()
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_all
	if [[ -n $clean_prefix ]]; then
		"$check" clean --brokers "$brokers" --prefix "$clean_prefix" >&2 || log "could not delete every topic and group of $clean_prefix"
	fi
	if ((rc != 0)); then
		local f
		for f in "$work"/*.log "$work"/*.err; do
			[[ -s $f ]] || continue
			log "--- last lines of $(basename "$f")"
			tail -n 20 "$f" >&2
		done
		log "logs kept in $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_line NAME PATTERN SECONDS: waits for PATTERN in NAME's log while the
# process lives.
wait_line() {
	local name=$1 pattern=$2 deadline=$((SECONDS + $3)) i
	until grep -q -- "$pattern" "$work/$name.log" 2>/dev/null; do
		for i in "${!names[@]}"; do
			if [[ ${names[i]} == "$name" ]] && ! kill -0 "${pids[i]}" 2>/dev/null; then
				die "$name exited before printing '$pattern'"
			fi
		done
		((SECONDS < deadline)) || die "$name did not print '$pattern' within $3 s"
		sleep 0.1
	done
}

# dev_broker NAME: the address an embedded broker started on port 0 printed.
dev_broker() {
	wait_line "$1" "Kafka broker:" 30
	sed -n 's/^ *Kafka broker: *\([^ ]*\).*/\1/p' "$work/$1.log" | head -n 1
}

# run_requests BROKERS PREFIX TAG: starts the requests at once, waits for
# each; outputs in $work/TAG-default-N.json and $work/TAG-bundle.json.
run_requests() {
	local b=$1 p=$2 tag=$3 i pid rc failed=0
	local ids=()
	clients=()
	for ((i = 1; i <= requests; i++)); do
		ids+=("$tag-default-$i")
		"$bin" start idp --id "$run_id-$tag-default-$i" --input '{}' --wait --timeout 120s --brokers "$b" --prefix "$p" \
			>"$work/$tag-default-$i.json" 2>"$work/$tag-default-$i.err" &
		clients+=($!)
	done
	ids+=("$tag-bundle")
	"$bin" start idp --id "$run_id-$tag-bundle" --input "@$here/bundle.json" --wait --timeout 120s --brokers "$b" --prefix "$p" \
		>"$work/$tag-bundle.json" 2>"$work/$tag-bundle.err" &
	clients+=($!)
	# A worker or processor that dies fails the run now, not at the timeout.
	while :; do
		local running=0
		for pid in "${clients[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
		((running)) || break
		for i in "${!pids[@]}"; do
			kill -0 "${pids[i]}" 2>/dev/null || die "${names[i]} exited while requests were running"
		done
		sleep 0.2
	done
	for i in "${!clients[@]}"; do
		pid=${clients[i]}
		rc=0
		wait "$pid" || rc=$?
		if ((rc != 0)); then
			log "request ${ids[i]}: stepwise start exited $rc: $(jq -c '{status, error}' "$work/${ids[i]}.json" 2>/dev/null || true) $(head -c 300 "$work/${ids[i]}.err")"
			failed=1
		fi
	done
	clients=()
	((failed == 0)) || die "requests of the $tag run failed"
}

# --- build -------------------------------------------------------------------
log "building stepwise and crosscheck"
go build -o "$bin" ./cmd/stepwise
go build -o "$check" ./examples/idp/mixed/crosscheck
log "Python venv (sdk/python) and the OCR worker's tests"
make -s -C sdk/python venv
(cd examples/idp/python && "$py" -m pytest -q -p no:cacheprovider . >"$work/pytest.log" 2>&1) || die "examples/idp/python tests failed"
log "TypeScript build (sdk/typescript)"
# `npm ci` replaces node_modules: only when they are missing (a clean clone).
[[ -d sdk/typescript/node_modules/kafkajs ]] || make -s -C sdk/typescript deps
make -s -C sdk/typescript build >"$work/tsc.log" 2>&1 || die "sdk/typescript build failed"
classify_js=sdk/typescript/dist/examples/idp-classify.js
[[ -f $classify_js ]] || die "$classify_js was not built"

# --- reference: the all-Go pipeline ------------------------------------------
log "reference run: stepwise dev --examples (every worker in Go)"
STEPWISE_IDP_LATENCY=0 start ref-dev "$bin" dev --examples --in-memory --kafka-addr 127.0.0.1:0 --http ""
ref_brokers=$(dev_broker ref-dev)
run_requests "$ref_brokers" stepwise. ref
stop_all

# --- the mixed pipeline ------------------------------------------------------
if [[ -n ${KAFKA_BROKERS:-} ]]; then
	brokers=$KAFKA_BROKERS
	log "broker $brokers (KAFKA_BROKERS), topic prefix $prefix"
	clean_prefix=$prefix
	"$bin" topics create -f "$workflows" --brokers "$brokers" --prefix "$prefix" --partitions 4 >"$work/topics.log" 2>&1 ||
		die "stepwise topics create failed"
	start processor "$bin" run -f "$workflows" --brokers "$brokers" --prefix "$prefix" --replica-id "$run_id"
else
	log "no KAFKA_BROKERS: stepwise dev -f $workflows (no in-process workers), topic prefix $prefix"
	start dev "$bin" dev -f "$workflows" --in-memory --kafka-addr 127.0.0.1:0 --http "" --prefix "$prefix"
	brokers=$(dev_broker dev)
	log "embedded broker $brokers"
fi
start ocr-python "$py" examples/idp/python/ocr.py --brokers "$brokers" --prefix "$prefix" --client-id idp-ocr-python
start classify-ts node "$classify_js" --brokers "$brokers" --prefix "$prefix"
start go-workers "$bin" workers --example idp --skip-queues ocr,classify --brokers "$brokers" --prefix "$prefix" --client-id idp-go
wait_line go-workers "example workers registered" 30
grep -q 'queues=assemble,extract,layout,notify,render,split' "$work/go-workers.log" ||
	die "the Go workers did not register exactly assemble, extract, layout, notify, render, split: $(grep 'workers registered' "$work/go-workers.log")"

log "$requests requests of the default bundle and one of bundle.json, at once"
t0=$(date +%s.%N)
run_requests "$brokers" "$prefix" mixed
t1=$(date +%s.%N)

# --- checks ------------------------------------------------------------------
for f in "$work"/mixed-*.json; do
	tag=$(basename "$f" .json)
	ref=$work/ref-${tag#mixed-}.json
	[[ $tag == mixed-default-* ]] && ref=$work/ref-default-1.json
	[[ $(jq -r .status "$f") == succeeded ]] || die "$tag: status $(jq -c '{status, error}' "$f")"
	if ! diff <(jq -S .output "$ref") <(jq -S .output "$f") >"$work/$tag.diff"; then
		die "$tag: output differs from the all-Go pipeline's:$(printf '\n')$(head -n 40 "$work/$tag.diff")"
	fi
done
pages=$(jq -s 'map(.output.summary.pages) | add' "$work"/mixed-*.json)
documents=$(jq -s 'map(.output.summary.documents) | add' "$work"/mixed-*.json)
ocr_steps=$(grep 'msg="step done"' "$work/ocr-python.log" | grep -c ' queue=ocr' || true)
((ocr_steps >= pages)) || die "the Python worker logged $ocr_steps OCR steps for $pages pages"
log "outputs match the all-Go pipeline; Python logged $ocr_steps OCR steps for $pages pages"
"$check" groups --brokers "$brokers" --prefix "$prefix" --timeout 30s \
	--expect ocr=idp-ocr-python,classify=idp-classify-ts,'*'=idp-go | tee "$work/groups.log" >&2 ||
	die "the consumer groups do not show the work split by language"

log "$(printf 'ok: %d requests (%d documents, %d pages) in %.2f s; ocr in Python, classify in TypeScript, the rest in Go; %s' \
	$((requests + 1)) "$documents" "$pages" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$([[ -n $clean_prefix ]] && echo "broker $brokers" || echo "stepwise dev")")"
