package api

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
)

// Scope is what a token may do. Every API endpoint needs exactly one scope;
// admin grants every scope.
type Scope string

// Scopes of API tokens.
const (
	ScopeRead    Scope = "read"    // status, lists, definitions, events
	ScopeStart   Scope = "start"   // start requests
	ScopeOperate Scope = "operate" // cancel, signal, retry running requests
	ScopeAdmin   Scope = "admin"   // apply definitions; implies every other scope
)

var knownScopes = []Scope{ScopeRead, ScopeStart, ScopeOperate, ScopeAdmin}

// MinTokenLen is the shortest token accepted: shorter ones are guessable.
const MinTokenLen = 16

// TokensEnv names the environment variable holding tokens in the format of
// a tokens file, entries separated by newlines or ';'.
const TokensEnv = "STEPWISE_API_TOKENS"

// Sentinel errors of token loading.
var ErrTokens = errors.New("stepwise: invalid API tokens")

// Token is one bearer token: a name (logged, shown to its holder) and its
// scopes. The secret itself is kept only as a SHA-256 digest, so that it is
// compared in constant time and can never be printed by mistake.
type Token struct {
	Name   string
	Scopes []Scope
	digest [sha256.Size]byte
}

// allows reports whether t grants scope.
func (t *Token) allows(scope Scope) bool {
	return slices.Contains(t.Scopes, ScopeAdmin) || slices.Contains(t.Scopes, scope)
}

// Tokens is the set of tokens an API server accepts. The zero value (or
// nil) accepts none and means "no authentication".
type Tokens struct {
	list []Token
}

// Len returns the number of tokens.
func (ts *Tokens) Len() int {
	if ts == nil {
		return 0
	}
	return len(ts.list)
}

// lookup returns the token whose secret is secret, or nil. Every configured
// digest is compared, in constant time, whatever matches: the time taken
// says nothing about which token (or how much of one) was right.
func (ts *Tokens) lookup(secret string) *Token {
	if ts == nil {
		return nil
	}
	d := sha256.Sum256([]byte(secret))
	var found *Token
	for i := range ts.list {
		if subtle.ConstantTimeCompare(d[:], ts.list[i].digest[:]) == 1 {
			found = &ts.list[i]
		}
	}
	return found
}

// ParseTokens reads tokens, one per line:
//
//	# name   scopes        token
//	ci       read,start    6f1c0d0e8a7b4c29b1f3d5e7a9c1b3d5
//	ops      admin         0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d
//
// Blank lines and lines starting with # are ignored. Names and tokens must
// be unique, tokens at least MinTokenLen characters. Errors name where
// (file:line) and never quote a token.
func ParseTokens(where, text string) (*Tokens, error) {
	ts := &Tokens{}
	names := map[string]bool{}
	digests := map[[sha256.Size]byte]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		at := fmt.Sprintf("%s:%d", where, line)
		f := strings.Fields(s)
		if len(f) != 3 {
			return nil, fmt.Errorf("%w: %s: want \"NAME SCOPE[,SCOPE...] TOKEN\", got %d fields", ErrTokens, at, len(f))
		}
		t := Token{Name: f[0]}
		if names[t.Name] {
			return nil, fmt.Errorf("%w: %s: token name %q repeats", ErrTokens, at, t.Name)
		}
		for _, sc := range strings.Split(f[1], ",") {
			if !slices.Contains(knownScopes, Scope(sc)) {
				return nil, fmt.Errorf("%w: %s: unknown scope %q (known: read, start, operate, admin)", ErrTokens, at, sc)
			}
			t.Scopes = append(t.Scopes, Scope(sc))
		}
		if len(f[2]) < MinTokenLen {
			return nil, fmt.Errorf("%w: %s: token of %q is shorter than %d characters", ErrTokens, at, t.Name, MinTokenLen)
		}
		t.digest = sha256.Sum256([]byte(f[2]))
		if digests[t.digest] {
			return nil, fmt.Errorf("%w: %s: token of %q is also another token's", ErrTokens, at, t.Name)
		}
		names[t.Name], digests[t.digest] = true, true
		ts.list = append(ts.list, t)
	}
	return ts, sc.Err()
}

// LoadTokens reads the tokens file at path (when not empty) and the tokens
// in the TokensEnv environment variable (when set), together.
func LoadTokens(path string) (*Tokens, error) {
	var text strings.Builder
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrTokens, err)
		}
		text.Write(b)
	}
	ts, err := ParseTokens(path, text.String())
	if err != nil {
		return nil, err
	}
	if env := os.Getenv(TokensEnv); env != "" {
		more, err := ParseTokens("$"+TokensEnv+" entry", strings.ReplaceAll(env, ";", "\n"))
		if err != nil {
			return nil, err
		}
		for _, t := range more.list {
			if slices.ContainsFunc(ts.list, func(o Token) bool { return o.Name == t.Name || o.digest == t.digest }) {
				return nil, fmt.Errorf("%w: token %q of $%s repeats a name or token of %s", ErrTokens, t.Name, TokensEnv, path)
			}
			ts.list = append(ts.list, t)
		}
	}
	return ts, nil
}

// checkBind refuses to serve an unauthenticated API beyond this machine:
// without tokens, addr must be a loopback address unless insecure is set.
func checkBind(addr string, ts *Tokens, insecure bool) error {
	if ts.Len() > 0 || insecure {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: listen address %q: %v", ErrConfig, addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: no API token is configured, so the API serves loopback addresses only, not %q: "+
		"give tokens (--tokens-file, $%s) or, to serve it unauthenticated anyway, --insecure-no-auth", ErrConfig, addr, TokensEnv)
}

// guard wraps an API handler with the checks every endpoint passes, in
// order: cross-origin refusal of unsafe methods (Origin and Sec-Fetch-Site
// against Host, by net/http's CrossOriginProtection), a JSON body type on
// unsafe methods, then the bearer token and its scope. No CORS header is
// ever sent, so browsers keep other sites from reading any answer.
func (s *Server) guard(scope Scope, h http.HandlerFunc) http.Handler {
	checked := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !safeMethod(r.Method) {
			mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if mt != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, "send the body as Content-Type: application/json (an empty body may be {})")
				return
			}
		}
		if s.cfg.Tokens.Len() > 0 {
			tok, ok := s.tokenOf(w, r)
			if !ok {
				return
			}
			if !tok.allows(scope) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="stepwise", error="insufficient_scope", scope="`+string(scope)+`"`)
				writeError(w, http.StatusForbidden, fmt.Sprintf("token %q lacks scope %q", tok.Name, scope))
				return
			}
		}
		h(w, r)
	})
	return s.crossOrigin.Handler(checked)
}

// tokenOf returns the token r carries, or writes 401 with the reason and
// returns false. The token itself is never logged or echoed.
func (s *Server) tokenOf(w http.ResponseWriter, r *http.Request) (*Token, bool) {
	reason := ""
	kind, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	secret = strings.TrimSpace(secret)
	switch {
	case kind == "":
		reason = "authentication required: send Authorization: Bearer TOKEN"
	case !strings.EqualFold(kind, "Bearer") || secret == "":
		reason = "unsupported Authorization header: send Authorization: Bearer TOKEN"
	default:
		if tok := s.cfg.Tokens.lookup(secret); tok != nil {
			return tok, true
		}
		reason = "unknown token"
		s.log.Warn("API call with an unknown token refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="stepwise"`)
	writeError(w, http.StatusUnauthorized, reason)
	return nil, false
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// Identity is GET /api/v1/auth: who the caller's token is, so that the UI
// can tell whether it needs one.
type Identity struct {
	Required bool     `json:"required"` // false: the API accepts calls without a token
	Name     string   `json:"name,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
}

// identity answers with the caller's token (of any scope), 401 when a
// token is required and missing or unknown.
func (s *Server) identity(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Tokens.Len() == 0 {
		writeJSON(w, http.StatusOK, Identity{})
		return
	}
	tok, ok := s.tokenOf(w, r)
	if !ok {
		return
	}
	id := Identity{Required: true, Name: tok.Name}
	for _, sc := range tok.Scopes {
		id.Scopes = append(id.Scopes, string(sc))
	}
	writeJSON(w, http.StatusOK, id)
}
