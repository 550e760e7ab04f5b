package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fuzzToken is the one token of the fuzzed server: every scope.
const fuzzToken = "f0a1b2c3d4e5f60718293a4b5c6d7e8f"

// fuzzRoutes are the shapes of request the fuzzer fills in: a path
// segment (%s first) and a query or body. Raw paths reach the rest.
var fuzzRoutes = []struct{ method, path string }{
	{"GET", "/api/v1/workflows/%s"},
	{"GET", "/api/v1/workflows/%s/versions"},
	{"GET", "/api/v1/workflows/%s/diff?%s"},
	{"POST", "/api/v1/workflows/%s/requests?%s"},
	{"GET", "/api/v1/requests?%s"},
	{"GET", "/api/v1/requests/%s?%s"},
	{"GET", "/api/v1/requests/%s/payload?%s"},
	{"GET", "/api/v1/requests/%s/events?%s"},
	{"POST", "/api/v1/requests/%s/cancel"},
	{"GET", "/api/v1/auth"},
	{"GET", "/api/v1/stats"},
	{"DELETE", "/api/v1/requests/%s"},
	{"GET", "%s"},
	{"POST", "%s"},
}

// FuzzHandlers sends arbitrary requests to the API of a running
// installation (embedded broker, processor, workers). Whatever comes in,
// no handler panics or answers 500; every /api/ answer but the event
// stream is JSON, and every error answer names its reason; a request
// without the token is refused with 401 and a challenge.
func FuzzHandlers(f *testing.F) {
	e := newTestEnv(f, func(c *Config) {
		c.MaxWait = 50 * time.Millisecond
		ts, err := ParseTokens("fuzz", "fuzz read,start,operate,admin "+fuzzToken)
		if err != nil {
			f.Fatal(err)
		}
		c.Tokens = ts
	})
	h := e.srv.Handler()
	f.Add(uint8(3), "chain", "id=f-1&wait=40ms", []byte(`{"n": 2}`), uint8(0), "application/json")
	f.Add(uint8(3), "chain", "id=bad/id", []byte(`{}`), uint8(0), "application/json")
	f.Add(uint8(3), "other", "", []byte(`[1]`), uint8(0), "application/json; charset=utf-8")
	f.Add(uint8(3), "chain", "wait=-1s", []byte(`{"a":`), uint8(0), "text/plain")
	f.Add(uint8(4), "", "status=running&limit=2&workflow=chain", []byte(nil), uint8(0), "")
	f.Add(uint8(4), "", "limit=-5&after=zz&status=%zz", []byte(nil), uint8(0), "")
	f.Add(uint8(5), "f-1", "children=1&preview=0", []byte(nil), uint8(0), "")
	f.Add(uint8(6), "f-1", "step=a&field=output", []byte(nil), uint8(0), "")
	f.Add(uint8(7), "f-1", "", []byte(nil), uint8(0), "")
	f.Add(uint8(8), "f-1", "", []byte(`{"reason": "fuzz"}`), uint8(0), "application/json")
	f.Add(uint8(2), "chain", "from=1&to=x", []byte(nil), uint8(1), "")
	f.Add(uint8(9), "", "", []byte(nil), uint8(2), "")
	f.Add(uint8(12), "/api/v1/../../etc/passwd", "", []byte(nil), uint8(0), "")
	f.Add(uint8(13), "/api/v1/workflows/chain/requests", "", []byte(`{}`), uint8(3), "application/json")
	f.Fuzz(func(t *testing.T, route uint8, seg, query string, body []byte, auth uint8, contentType string) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := strings.Replace(rt.path, "%s", seg, 1)
		path = strings.Replace(path, "%s", query, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, rt.method, "http://api.test"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request any client could send
		}
		req.RemoteAddr = "127.0.0.1:4242"
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		switch auth % 4 {
		case 0:
			req.Header.Set("Authorization", "Bearer "+fuzzToken)
		case 1:
			req.Header.Set("Authorization", "Bearer "+seg)
		case 2:
			req.Header.Set("Authorization", seg)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		code, got := rec.Code, rec.Body.Bytes()
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s: %d %s", rt.method, path, code, got)
		}
		if !strings.HasPrefix(req.URL.Path, "/api/") {
			return // the web UI's files
		}
		if code >= 300 && code < 400 {
			// The mux sends an unclean path (dots, double slashes) to
			// its clean form.
			if rec.Header().Get("Location") == "" {
				t.Fatalf("%s %s: %d without a Location", rt.method, path, code)
			}
			return
		}
		if code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("%s %s: 401 without a challenge", rt.method, path)
		}
		if auth%4 == 3 && code < 400 && req.URL.Path != "/api/v1/auth" && !strings.HasPrefix(req.URL.Path, "/api/v1/health") {
			t.Fatalf("%s %s without a token: %d %s", rt.method, path, code, got)
		}
		ct := rec.Header().Get("Content-Type")
		if strings.HasPrefix(ct, "text/event-stream") || code == http.StatusNoContent || code == http.StatusNotModified || rt.method == http.MethodHead {
			return
		}
		if !strings.HasPrefix(ct, "application/json") || !json.Valid(got) {
			t.Fatalf("%s %s: %d with Content-Type %q and a body that is not JSON: %.300s", rt.method, path, code, ct, got)
		}
		if code >= 400 {
			var ae apiError
			if json.Unmarshal(got, &ae) != nil || ae.Error == "" {
				t.Fatalf("%s %s: %d without a reason: %.300s", rt.method, path, code, got)
			}
		}
	})
}
