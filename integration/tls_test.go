//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-run/stepwise/kconn"
	"github.com/stepwise-run/stepwise/schemas"
)

// tlsPortOffset moves the TLS test's private broker clear of the shared
// cluster and of TestBrokerRestart's: plaintext 15092, TLS 15099, mutual
// TLS 15102.
const tlsPortOffset = 6000

// testPKI is a CA made for one test, a server certificate for 127.0.0.1
// and a client certificate, as PEM files in dir.
type testPKI struct {
	ca, server            string // ca.pem; server.pem: PKCS#8 key, then the certificate (integration/kafka/up --tls-dir)
	clientCert, clientKey string
}

func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(1)
	sign := func(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	certPEM := func(c *x509.Certificate) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	write := func(name string, parts ...[]byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, bytes.Join(parts, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	caKey := key()
	caTmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "stepwise test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caTmpl.SerialNumber = big.NewInt(1)
	ca := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)

	srvKey := key()
	srv := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		ca, &srvKey.PublicKey, caKey)

	cliKey := key()
	cli := sign(&x509.Certificate{Subject: pkix.Name{CommonName: "stepwise-client"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		ca, &cliKey.PublicKey, caKey)

	return testPKI{
		ca:         write("ca.pem", certPEM(ca)),
		server:     write("server.pem", keyPEM(srvKey), certPEM(srv), certPEM(ca)),
		clientCert: write("client.pem", certPEM(cli)),
		clientKey:  write("client-key.pem", keyPEM(cliKey)),
	}
}

// TestTLS runs a whole installation over TLS on a broker of its own whose
// certificates the test made: topic creation, a processor, the API and the
// CLI of the stepwise binary, and a worker of each SDK (Go for step a,
// Python for b, TypeScript for c), first with server authentication
// (--tls-ca), then with mutual TLS on a listener that requires a client
// certificate. The API takes its settings from the environment
// (STEPWISE_TLS_CA, ...). Connections without the CA, or without the client
// certificate where one is required, are refused.
func TestTLS(t *testing.T) {
	binaries(t) // built first: the build must not eat into a subtest's time
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	b := startPrivateBrokerAt(t, tlsPortOffset, "--tls-dir", dir)
	py := filepath.Join("..", "sdk", "python", ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("the Python SDK's venv is missing (%v): run make -C sdk/python venv", err)
	}
	sdkJS := buildTypeScriptSDK(t)

	for _, mode := range []struct {
		name   string
		port   int
		client []string // client certificate flags
	}{
		{"server-auth", 9099 + tlsPortOffset, nil},
		{"mutual", 9102 + tlsPortOffset, []string{"--tls-cert", pki.clientCert, "--tls-key", pki.clientKey}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", mode.port)
			tlsFlags := append([]string{"--tls-ca", pki.ca}, mode.client...)
			e := newEnvAt(t, b.seeds()) // the test's own observer reads the plaintext listener
			// The commands get time of their own: on a loaded machine the
			// first TLS handshakes and group joins take a while.
			cmdCtx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			s := e.newStack(chainYAML, 2, append([]string{"--brokers", addr}, tlsFlags...)...)
			prefix := string(e.Prefix)

			refused := func(what string, flags []string, want string) {
				args := append([]string{"topics", "describe", "--brokers", addr, "--prefix", prefix}, flags...)
				out, err := exec.CommandContext(cmdCtx, s.stepwise, append(args, s.fileFlags()...)...).CombinedOutput()
				if err == nil || !strings.Contains(string(out), want) {
					t.Errorf("%s: stepwise %s: %v, want refused with %q:\n%s", what, strings.Join(args, " "), err, want, out)
				}
			}
			refused("TLS without the test's CA", []string{"--tls"}, "certificate signed by unknown authority")
			if mode.client != nil {
				refused("no client certificate", []string{"--tls-ca", pki.ca}, "certificate")
			}

			s.processor("p1")
			s.e.spawn("worker-go", s.echo, nil, append([]string{"--queues", "a"}, s.conn...)...)
			sdkArgs := func(queue string) []string {
				return append([]string{"--brokers", addr, "--prefix", prefix, "--queue", queue, "--tls-ca", pki.ca}, mode.client...)
			}
			s.e.spawn("worker-python", py, nil, append([]string{filepath.Join("testdata", "sdkworkers", "echo.py")}, sdkArgs("b")...)...)
			s.e.spawn("worker-typescript", "node", nil, append([]string{filepath.Join("testdata", "sdkworkers", "echo.mjs"), "--sdk", sdkJS}, sdkArgs("c")...)...)

			want := func(from string) map[string]any {
				return map[string]any{"from": from, "a": float64(1), "b": "python", "c": "typescript"}
			}

			// The CLI: start and wait, then get.
			args := append([]string{"start", "chain", "--id", "tls-cli", "--input", `{"from": "cli"}`, "--wait", "--timeout", "180s"}, s.conn...)
			out, err := exec.CommandContext(cmdCtx, s.stepwise, args...).Output()
			var comp schemas.Completion
			if err != nil || json.Unmarshal(out, &comp) != nil || comp.Status != schemas.Succeeded {
				t.Fatalf("stepwise start --wait over TLS: %v\n%s", err, out)
			}
			checkOutput(t, "CLI", comp.Output, want("cli"))
			out, err = exec.CommandContext(cmdCtx, s.stepwise, append([]string{"get", "tls-cli"}, s.conn...)...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "status    succeeded") {
				t.Errorf("stepwise get over TLS: %v\n%s", err, out)
			}

			// The API, its connection settings from the environment.
			httpAddr := freeLoopbackAddr(t)
			apiEnv := []string{kconn.EnvBrokers + "=" + addr, kconn.EnvPrefix + "=" + prefix, kconn.EnvTLSCA + "=" + pki.ca}
			if mode.client != nil {
				apiEnv = append(apiEnv, kconn.EnvTLSCert+"="+pki.clientCert, kconn.EnvTLSKey+"="+pki.clientKey)
			}
			api := s.e.spawn("api", s.stepwise, apiEnv, append([]string{"api", "--http", httpAddr}, s.fileFlags()...)...)
			base := "http://" + httpAddr
			waitHTTP(t, base+"/api/v1/workflows/chain", api) // once the API has read the definitions
			resp, err := http.Post(base+"/api/v1/workflows/chain/requests?id=tls-api&wait=180s", "application/json", strings.NewReader(`{"from": "api"}`))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			comp = schemas.Completion{}
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &comp) != nil || comp.Status != schemas.Succeeded {
				t.Fatalf("API start and wait over TLS: %d %s", resp.StatusCode, body)
			}
			checkOutput(t, "API", comp.Output, want("api"))
			resp, err = http.Get(base + "/api/v1/requests/tls-cli")
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"succeeded"`) {
				t.Errorf("API status of the CLI's request: %d %s", resp.StatusCode, body)
			}
			fmt.Printf("tls %s: topics, processor, Go/Python/TypeScript workers, CLI and API all connected to %s\n", mode.name, addr)
		})
	}
}

// checkOutput compares a request's output with want, key by key.
func checkOutput(t *testing.T, who string, raw json.RawMessage, want map[string]any) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%s: output %s: %v", who, raw, err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: output %s: %q is %v, want %v", who, raw, k, got[k], v)
		}
	}
}

// buildTypeScriptSDK compiles sdk/typescript (its node_modules must be
// installed) and returns the path of its entry point.
func buildTypeScriptSDK(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "sdk", "typescript")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		t.Fatalf("the TypeScript SDK's dependencies are missing (%v): run make -C sdk/typescript deps", err)
	}
	cmd := exec.Command("npm", "run", "build")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm run build in sdk/typescript: %v\n%s", err, out)
	}
	abs, err := filepath.Abs(filepath.Join(dir, "dist", "src", "index.js"))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// freeLoopbackAddr returns a loopback address with a port free right now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHTTP waits until url answers 200, failing when p exits first.
func waitHTTP(t *testing.T, url string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if !p.running() {
			t.Fatalf("%s exited before serving %s: %v", p.name, url, p.err)
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within 60s", url)
}
