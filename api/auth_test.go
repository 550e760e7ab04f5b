package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stepwise-run/stepwise/client"
)

// Tokens of the auth tests: one per scope, and admin.
const testTokens = `
# name    scopes   token
reader    read     read-0123456789abcdef
starter   start    start-0123456789abcdef
operator  operate  operate-0123456789abcdef
boss      admin    admin-0123456789abcdef
`

var tokenOfScope = map[Scope]string{
	ScopeRead: "read-0123456789abcdef", ScopeStart: "start-0123456789abcdef",
	ScopeOperate: "operate-0123456789abcdef", ScopeAdmin: "admin-0123456789abcdef",
}

func mustTokens(t *testing.T) *Tokens {
	t.Helper()
	ts, err := ParseTokens("tokens", testTokens)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// call sends one request with the given bearer token ("" for none) and
// returns the answer, body read.
func (e *testEnv) call(method, path, token, contentType, body string, hdr ...string) (*http.Response, apiError) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ae apiError
	_ = json.Unmarshal(raw, &ae)
	if ae.Error == "" && resp.StatusCode >= 400 {
		ae.Error = string(raw)
	}
	return resp, ae
}

// TestAuthEveryEndpoint calls every guarded endpoint (the server's own
// table, so a new endpoint is covered without editing this test) with no
// token, an unknown token, a token of another scope, the right scope, and
// admin, and checks the answers.
func TestAuthEveryEndpoint(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.Tokens = mustTokens(t) })
	e.token = tokenOfScope[ScopeAdmin]
	var c struct{ Status string }
	if code, raw := e.do("POST", "/api/v1/workflows/other/requests?id=auth-1&wait=20s", `{}`, &c); code != 200 || c.Status != "succeeded" {
		t.Fatalf("start as admin: %d %s", code, raw)
	}
	e.token = ""

	// What each endpoint answers once past authentication.
	call := map[string]struct {
		path, body string
		ok         int
	}{
		"GET /api/v1/openapi.json":               {"/api/v1/openapi.json", "", 200},
		"GET /api/v1/stats":                      {"/api/v1/stats", "", 200},
		"GET /api/v1/workflows":                  {"/api/v1/workflows", "", 200},
		"GET /api/v1/workflows/{name}":           {"/api/v1/workflows/chain", "", 200},
		"GET /api/v1/workflows/{name}/versions":  {"/api/v1/workflows/chain/versions", "", 200},
		"GET /api/v1/workflows/{name}/diff":      {"/api/v1/workflows/chain/diff?from=1&to=1", "", 200},
		"POST /api/v1/workflows/{name}/requests": {"/api/v1/workflows/other/requests?id=auth-1", "{}", 200},
		"GET /api/v1/requests":                   {"/api/v1/requests", "", 200},
		"GET /api/v1/requests/{id}":              {"/api/v1/requests/auth-1", "", 200},
		"GET /api/v1/requests/{id}/payload":      {"/api/v1/requests/auth-1/payload?part=input", "", 200},
		"GET /api/v1/requests/{id}/events":       {"/api/v1/requests/auth-1/events", "", 200},
		"GET /api/v1/requests/{id}/history":      {"/api/v1/requests/auth-1/history", "", 200},
		"POST /api/v1/requests/{id}/cancel":      {"/api/v1/requests/auth-1/cancel", "{}", 409}, // already finished
		"POST /api/v1/requests/{id}/retry":       {"/api/v1/requests/auth-1/retry", "{}", 409},  // succeeded: nothing to retry
	}
	signal := call["POST /api/v1/requests/{id}/cancel"]
	signal.path = "/api/v1/requests/auth-1/signals/approve" // 409: finished
	call["POST /api/v1/requests/{id}/signals/{name}"] = signal
	if len(e.srv.routeScopes) != len(call) {
		t.Fatalf("the server has %d guarded endpoints, the test knows %d: add the new ones", len(e.srv.routeScopes), len(call))
	}
	for _, rt := range e.srv.routeScopes {
		c, ok := call[rt.Pattern]
		if !ok {
			t.Fatalf("endpoint %s is not known to this test", rt.Pattern)
		}
		method, _, _ := strings.Cut(rt.Pattern, " ")
		ct := ""
		if method == http.MethodPost {
			ct = "application/json"
		}
		other := ScopeRead
		if rt.Scope == ScopeRead {
			other = ScopeStart
		}
		cases := []struct {
			what, token string
			code        int
			reason      string
		}{
			{"no token", "", 401, "authentication required"},
			{"unknown token", "not-a-token-0123456789", 401, "unknown token"},
			{"wrong scope", tokenOfScope[other], 403, `lacks scope "` + string(rt.Scope) + `"`},
			{"right scope", tokenOfScope[rt.Scope], c.ok, ""},
			{"admin", tokenOfScope[ScopeAdmin], c.ok, ""},
		}
		for _, tc := range cases {
			resp, ae := e.call(method, c.path, tc.token, ct, c.body)
			if resp.StatusCode != tc.code || !strings.Contains(ae.Error, tc.reason) {
				t.Errorf("%s, %s: %d %q, want %d %q", rt.Pattern, tc.what, resp.StatusCode, ae.Error, tc.code, tc.reason)
			}
			if tc.code == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s, %s: no WWW-Authenticate: Bearer header", rt.Pattern, tc.what)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s: CORS header %q sent", rt.Pattern, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
	}

	// The UI's question: whose token is this?
	var id Identity
	resp, _ := e.call("GET", "/api/v1/auth", "", "", "")
	if resp.StatusCode != 401 {
		t.Errorf("GET /api/v1/auth without a token: %d, want 401", resp.StatusCode)
	}
	e.token = tokenOfScope[ScopeStart]
	if code, raw := e.do("GET", "/api/v1/auth", "", &id); code != 200 || !id.Required || id.Name != "starter" || len(id.Scopes) != 1 || id.Scopes[0] != "start" {
		t.Errorf("GET /api/v1/auth as starter: %d %s", code, raw)
	}
	// The web UI's files need no token: it asks for one.
	if resp, _ := e.call("GET", "/", "", "", ""); resp.StatusCode != 200 {
		t.Errorf("GET / without a token: %d", resp.StatusCode)
	}
}

// TestCrossSiteRefused replays the attack of a page on another site: a
// "simple" cross-origin POST (text/plain, so the browser sends it without
// asking first) that cancelled a running request. It is refused, by its
// origin and by its body type, even with authentication off; the request
// keeps running.
func TestCrossSiteRefused(t *testing.T) {
	e := newTestEnv(t) // no tokens: loopback, unauthenticated
	var acc Accepted
	if code, raw := e.do("POST", "/api/v1/workflows/chain/requests?id=x-1", `{"hold": true}`, &acc); code != 202 {
		t.Fatalf("start: %d %s", code, raw)
	}
	e.waitStatus("x-1", "running")
	for _, tc := range []struct {
		what   string
		ct     string
		hdr    []string
		code   int
		reason string
	}{
		{"form from another site", "text/plain", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403, "cross-origin"},
		{"JSON from another site", "application/json", []string{"Origin", "https://evil.example"}, 403, "cross-origin"},
		{"text/plain without Origin", "text/plain", nil, 415, "application/json"},
		{"no body type", "", nil, 415, "application/json"},
	} {
		resp, ae := e.call("POST", "/api/v1/requests/x-1/cancel", "", tc.ct, `{"reason":"csrf"}`, tc.hdr...)
		if resp.StatusCode != tc.code || !strings.Contains(strings.ToLower(ae.Error), tc.reason) {
			t.Errorf("%s: %d %q, want %d %q", tc.what, resp.StatusCode, ae.Error, tc.code, tc.reason)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: CORS header sent", tc.what)
		}
	}
	// A preflight gets no permission either.
	resp, _ := e.call("OPTIONS", "/api/v1/requests/x-1/cancel", "", "", "",
		"Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("preflight answered with CORS permission: %v", resp.Header)
	}
	// A refused cancel is never written: the sender saw none.
	if n := e.sender.cancels.Load(); n != 0 {
		t.Fatalf("%d cancels written for refused calls", n)
	}
	if st := e.waitStatus("x-1", "running"); st.Status != "running" {
		t.Fatalf("request %s after refused cancels", st.Status)
	}
	// The same origin (the UI) may.
	resp, ae := e.call("POST", "/api/v1/requests/x-1/cancel", "", "application/json", `{}`, "Origin", e.base, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != 202 {
		t.Fatalf("same-origin cancel: %d %s", resp.StatusCode, ae.Error)
	}
	e.waitStatus("x-1", "cancelled")
	close(e.release)
}

func TestBindWithoutTokens(t *testing.T) {
	base := Config{Set: mustParse(t, testYAML), Conn: testConn(), Sender: nopSender{}}
	for _, tc := range []struct {
		addr     string
		tokens   *Tokens
		insecure bool
		ok       bool
	}{
		{"127.0.0.1:8080", nil, false, true},
		{"[::1]:8080", nil, false, true},
		{"localhost:8080", nil, false, true},
		{"0.0.0.0:8080", nil, false, false},
		{":8080", nil, false, false},
		{"10.1.2.3:8080", nil, false, false},
		{"0.0.0.0:8080", nil, true, true},
		{"0.0.0.0:8080", mustTokens(t), false, true},
	} {
		cfg := base
		cfg.Addr, cfg.Tokens, cfg.InsecureNoAuth = tc.addr, tc.tokens, tc.insecure
		_, err := New(cfg)
		if (err == nil) != tc.ok {
			t.Errorf("addr %s, %d tokens, insecure %v: %v", tc.addr, tc.tokens.Len(), tc.insecure, err)
		}
		if err != nil && (!errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--insecure-no-auth")) {
			t.Errorf("addr %s: error %v does not say how to proceed", tc.addr, err)
		}
	}
}

func TestParseTokens(t *testing.T) {
	ts := mustTokens(t)
	if ts.Len() != 4 || ts.lookup("read-0123456789abcdef").Name != "reader" || ts.lookup("read-0123456789abcdeF") != nil {
		t.Fatalf("tokens %d, lookups wrong", ts.Len())
	}
	secret := "s3cret-s3cret-s3cret"
	for _, tc := range []struct{ text, want string }{
		{"a read", "tokens:1: want \"NAME SCOPE[,SCOPE...] TOKEN\""},
		{"a write " + secret, `tokens:1: unknown scope "write"`},
		{"\n\na read short", `tokens:3: token of "a" is shorter than 16`},
		{"a read " + secret + "\na start " + secret + "x", `tokens:2: token name "a" repeats`},
		{"a read " + secret + "\nb start " + secret, `tokens:2: token of "b" is also another token's`},
	} {
		_, err := ParseTokens("tokens", tc.text)
		if err == nil || !errors.Is(err, ErrTokens) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%q: the error quotes the token: %v", tc.text, err)
		}
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "tokens")
	if err := os.WriteFile(path, []byte("file read "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(TokensEnv, "env1 start start-token-0123456789;env2 operate,read operate-token-0123456789")
	ts, err := LoadTokens(path)
	if err != nil || ts.Len() != 3 || ts.lookup("operate-token-0123456789").Name != "env2" || !ts.lookup("operate-token-0123456789").allows(ScopeRead) {
		t.Fatalf("file and env: %v, %d tokens", err, ts.Len())
	}
	t.Setenv(TokensEnv, "file start start-token-0123456789")
	if _, err := LoadTokens(path); err == nil {
		t.Error("a name in both the file and the environment was accepted")
	}
}

// TestTokenNeverLogged sends an unknown token and a known one and checks
// that neither appears in the server's log.
func TestTokenNeverLogged(t *testing.T) {
	var logs lockedBuffer
	e := newTestEnv(t, func(c *Config) {
		c.Tokens = mustTokens(t)
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	e.call("GET", "/api/v1/workflows", "guess-0123456789abcdef", "", "")
	e.call("GET", "/api/v1/workflows", tokenOfScope[ScopeRead], "", "")
	e.call("POST", "/api/v1/workflows/chain/requests", tokenOfScope[ScopeRead], "application/json", "{}")
	out := logs.String()
	if !strings.Contains(out, "unknown token") {
		t.Fatalf("refusal not logged: %q", out)
	}
	for _, secret := range []string{"guess-0123456789abcdef", tokenOfScope[ScopeRead]} {
		if strings.Contains(out, secret) {
			t.Errorf("token %q in the log", secret)
		}
	}
}

// nopSender is a Sender that is never called (servers built, not run).
type nopSender struct{}

func (nopSender) Start(context.Context, string, string, json.RawMessage, ...client.StartOption) (string, error) {
	return "", errors.New("not sending")
}
func (nopSender) Retry(context.Context, string, int, string) error { return nil }
func (nopSender) Cancel(context.Context, string, string) error     { return errors.New("not sending") }
func (nopSender) Close()                                           {}

// lockedBuffer is a log destination safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
