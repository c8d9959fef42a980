// Shared by the v1.5 and v1.6 modules (each holds a symlink to this file). Only the standard
// library and packages the driver module itself requires may be imported here, so that neither
// module's dependency graph (and with it the gRPC version the driver client is built with)
// moves away from what the driver release pins.

package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	region    = "us-west-2"
	accessKey = "testing"
	secretKey = "testing"
)

// env is the world every test runs in: one moto server and two providers (provider-writes and
// driver-writes), each serving `aws.sock` in its own provider directory, sharing one kubelet dir.
type env struct {
	root        string // temporary directory of the run
	kubelet     string // --kubelet-path of both providers
	motoURL     string
	python      string // the venv's python, for seeding moto with boto3
	providerBin string

	providerWrites *provider // --driver-writes-secrets=false (default)
	driverWrites   *provider // --driver-writes-secrets=true
}

var world *env

// TestMain starts moto and both providers once for the whole package.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	repo, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}
	root, err := os.MkdirTemp("", "driver-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}
	defer os.RemoveAll(root)

	e := &env{
		root:        root,
		kubelet:     filepath.Join(root, "kubelet"),
		providerBin: envOr("PROVIDER_BIN", filepath.Join(repo, "target", "debug", "csi-provider-aws")),
	}
	motoBin := envOr("MOTO_SERVER", filepath.Join(repo, ".venv", "bin", "moto_server"))
	e.python = envOr("VENV_PYTHON", filepath.Join(filepath.Dir(motoBin), "python"))
	for _, bin := range []string{e.providerBin, motoBin, e.python} {
		if _, err := os.Stat(bin); err != nil {
			// Never skip silently: scripts/test.sh builds the provider and the venv first.
			fmt.Fprintf(os.Stderr, "conformance: %v (set PROVIDER_BIN / MOTO_SERVER, or run scripts/test.sh conformance)\n", err)
			return 1
		}
	}

	var procs []*process
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		for _, p := range procs {
			fmt.Fprintf(os.Stderr, "----- log of %s -----\n%s\n", p.name, p.log())
		}
		return 1
	}

	moto, url, err := startMoto(motoBin, root)
	if moto != nil {
		procs = append(procs, moto)
	}
	if err != nil {
		return fail(err)
	}
	e.motoURL = url

	for _, spec := range []struct {
		name         string
		driverWrites bool
		slot         **provider
	}{
		{"provider-writes", false, &e.providerWrites},
		{"driver-writes", true, &e.driverWrites},
	} {
		p, err := e.startProvider(spec.name, spec.driverWrites)
		if p != nil {
			procs = append(procs, p.process)
		}
		if err != nil {
			return fail(err)
		}
		*spec.slot = p
	}

	world = e
	code := m.Run()
	if code != 0 {
		for _, p := range procs {
			fmt.Fprintf(os.Stderr, "----- log of %s -----\n%s\n", p.name, p.log())
		}
	}
	return code
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// repoRoot finds the crate root (the directory holding Cargo.toml) above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "Cargo.toml")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no Cargo.toml above %s", dir)
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Processes

type process struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(name string, cmd *exec.Cmd) (*process, error) {
	p := &process{name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to 5 s, then kills.
func (p *process) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) log() string {
	const max = 8000
	s := p.out.String()
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}

// waitFor polls ready until it succeeds, the process exits, or the timeout passes.
func (p *process) waitFor(what string, timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ready() {
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before %s", p.name, p.err, what)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s within %v", p.name, what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cleanEnv is the test process's environment without any AWS_* variable, so that nothing from
// the machine (profiles, real credentials, endpoints) leaks into moto or the provider.
func cleanEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

func startMoto(bin, root string) (*process, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Env = cleanEnv()
	cmd.Dir = root
	p, err := start("moto", cmd)
	if err != nil {
		return nil, "", err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: time.Second}
	err = p.waitFor("answer on "+url, 30*time.Second, func() bool {
		resp, err := client.Get(url + "/moto-api/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return p, url, err
}

// ---------------------------------------------------------------------------------------------
// Providers

type provider struct {
	*process
	dir    string // provider directory holding aws.sock
	socket string
}

func (e *env) startProvider(name string, driverWrites bool) (*provider, error) {
	dir := filepath.Join(e.root, name, "providers")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(e.kubelet, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command(e.providerBin,
		"--provider-volume", dir,
		"--kubelet-path", e.kubelet,
		"--local-credentials",
		fmt.Sprintf("--driver-writes-secrets=%t", driverWrites),
	)
	cmd.Env = cleanEnv(
		"AWS_ENDPOINT_URL="+e.motoURL,
		"AWS_REGION="+region,
		"AWS_ACCESS_KEY_ID="+accessKey,
		"AWS_SECRET_ACCESS_KEY="+secretKey,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(e.root, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(e.root, "no-aws-credentials"),
		"CSI_PROVIDER_AWS_METRICS_ADDR=127.0.0.1:0",
		// Rotation assertions need every mount to read AWS: no value cache (through the
		// environment, so a binary from before the cache existed still starts).
		"CSI_PROVIDER_AWS_CACHE_TTL=0",
	)
	cmd.Dir = e.root
	p, err := start(name, cmd)
	if err != nil {
		return nil, err
	}
	pr := &provider{process: p, dir: dir, socket: filepath.Join(dir, "aws.sock")}
	err = p.waitFor("socket "+pr.socket, 30*time.Second, func() bool {
		_, err := os.Stat(pr.socket)
		return err == nil
	})
	return pr, err
}

// ---------------------------------------------------------------------------------------------
// Seeding moto through boto3 (in the venv that ships moto), one Python process per batch.

// awsCall is one boto3 client call: client(service).operation(**params).
type awsCall struct {
	Service   string         `json:"service"`
	Operation string         `json:"operation"`
	Params    map[string]any `json:"params"`
}

const botoScript = `
import json, sys, boto3
endpoint, region, calls = sys.argv[1], sys.argv[2], json.load(sys.stdin)
clients, out = {}, []
for c in calls:
    svc = c["service"]
    if svc not in clients:
        clients[svc] = boto3.client(svc, endpoint_url=endpoint, region_name=region,
                                    aws_access_key_id="testing", aws_secret_access_key="testing")
    r = getattr(clients[svc], c["operation"])(**(c["params"] or {}))
    r.pop("ResponseMetadata", None)
    out.append(r)
json.dump(out, sys.stdout, default=str)
`

// aws runs the calls in order and returns their responses (ResponseMetadata removed).
func (e *env) aws(t *testing.T, calls ...awsCall) []map[string]any {
	t.Helper()
	in, err := json.Marshal(calls)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.python, "-c", botoScript, e.motoURL, region)
	cmd.Env = cleanEnv()
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("seeding moto: %v\n%s", err, stderr.String())
	}
	var out []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("seeding moto: bad output %q: %v", stdout.String(), err)
	}
	return out
}

func createSecret(name, value string) awsCall {
	return awsCall{"secretsmanager", "create_secret", map[string]any{"Name": name, "SecretString": value}}
}

func putSecretValue(name, value string) awsCall {
	return awsCall{"secretsmanager", "put_secret_value", map[string]any{"SecretId": name, "SecretString": value}}
}

func putParameter(name, value, typ string) awsCall {
	return awsCall{"ssm", "put_parameter", map[string]any{"Name": name, "Value": value, "Type": typ, "Overwrite": true}}
}

func str(t *testing.T, m map[string]any, key string) string {
	t.Helper()
	switch v := m[key].(type) {
	case string:
		return v
	case float64:
		return fmt.Sprint(int64(v))
	default:
		t.Fatalf("response has no %s: %v", key, m)
		return ""
	}
}

// ---------------------------------------------------------------------------------------------
// Pods and what the driver sends

// pod is one pod's CSI volume: its identity and the target path kubelet hands the driver.
type pod struct {
	name, namespace, uid, serviceAccount, spc string
	target                                    string
}

var podSeq atomic.Int64

func (e *env) newPod(t *testing.T, name string) pod {
	t.Helper()
	p := pod{
		name:           name,
		namespace:      "conformance",
		uid:            fmt.Sprintf("c0f0a2e1-0000-4000-8000-%012d", podSeq.Add(1)),
		serviceAccount: "app",
		spc:            name + "-spc",
	}
	// kubelet: <kubelet>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount; the driver mounts a
	// tmpfs there before calling the provider (a plain directory here).
	p.target = filepath.Join(e.kubelet, "pods", p.uid, "volumes", "kubernetes.io~csi", "secrets", "mount")
	if err := os.MkdirAll(p.target, 0o750); err != nil {
		t.Fatal(err)
	}
	return p
}

// tokens is what kubelet puts in csi.storage.k8s.io/serviceAccount.tokens when the CSIDriver
// has tokenRequests (ours asks for sts.amazonaws.com). Unused with --local-credentials, but
// the driver always forwards it, so the provider must accept it.
func tokens() string {
	b, _ := json.Marshal(map[string]map[string]string{
		"sts.amazonaws.com": {"token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "expirationTimestamp": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
	})
	return string(b)
}

// publishAttributes is the attributes JSON of a NodePublishVolume mount (both generations, and
// every v1.6 rotation): the SPC parameters overlaid by kubelet's volume context.
func (p pod) publishAttributes(spcParams map[string]string) string {
	attrs := map[string]string{}
	for k, v := range spcParams {
		attrs[k] = v
	}
	for k, v := range map[string]string{
		"secretProviderClass":                      p.spc,
		"csi.storage.k8s.io/pod.name":              p.name,
		"csi.storage.k8s.io/pod.namespace":         p.namespace,
		"csi.storage.k8s.io/pod.uid":               p.uid,
		"csi.storage.k8s.io/serviceAccount.name":   p.serviceAccount,
		"csi.storage.k8s.io/ephemeral":             "true",
		"csi.storage.k8s.io/serviceAccount.tokens": tokens(),
	} {
		attrs[k] = v
	}
	b, _ := json.Marshal(attrs)
	return string(b)
}

// reconcilerAttributes is the attributes JSON of the v1.5.x rotation reconciler: only the SPC
// parameters, pod name/namespace/uid, service account and tokens (no secretProviderClass, no
// ephemeral).
func (p pod) reconcilerAttributes(spcParams map[string]string) string {
	attrs := map[string]string{}
	for k, v := range spcParams {
		attrs[k] = v
	}
	attrs["csi.storage.k8s.io/pod.name"] = p.name
	attrs["csi.storage.k8s.io/pod.namespace"] = p.namespace
	attrs["csi.storage.k8s.io/pod.uid"] = p.uid
	attrs["csi.storage.k8s.io/serviceAccount.name"] = p.serviceAccount
	attrs["csi.storage.k8s.io/serviceAccount.tokens"] = tokens()
	b, _ := json.Marshal(attrs)
	return string(b)
}

// permission is what both generations send: json.Marshal(os.FileMode(0644)).
func permission() string {
	b, _ := json.Marshal(os.FileMode(0o644))
	return string(b)
}

// ---------------------------------------------------------------------------------------------
// Reading the target directory

type fileInfo struct {
	content string
	mode    os.FileMode
}

// readTarget returns the visible entries of a target directory (following their symlinks), and
// checks the atomic-writer layout both write modes must produce: a `..data` symlink to a
// timestamped `..` directory, and every visible entry a symlink to `..data/<name>`.
func readTarget(t *testing.T, target string) map[string]fileInfo {
	t.Helper()
	entries, err := os.ReadDir(target)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.Readlink(filepath.Join(target, "..data"))
	if err != nil {
		t.Fatalf("no ..data symlink in %s: %v (entries: %v)", target, err, names(entries))
	}
	if !strings.HasPrefix(data, "..") || strings.Contains(data, "/") {
		t.Errorf("..data points to %q, want a sibling `..<timestamp>` directory", data)
	}
	files := map[string]fileInfo{}
	for _, entry := range entries {
		name := entry.Name()
		if strings.HasPrefix(name, "..") {
			continue
		}
		link, err := os.Readlink(filepath.Join(target, name))
		if err != nil {
			t.Errorf("visible entry %q is not a symlink: %v", name, err)
		} else if link != filepath.Join("..data", name) {
			t.Errorf("visible entry %q links to %q, want %q", name, link, filepath.Join("..data", name))
		}
		path := filepath.Join(target, name)
		st, err := os.Stat(path)
		if err != nil {
			t.Errorf("stat %s: %v", path, err)
			continue
		}
		if st.IsDir() {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read %s: %v", path, err)
			continue
		}
		files[name] = fileInfo{content: string(b), mode: st.Mode().Perm()}
	}
	return files
}

func names(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// within bounds how long a single driver call may take (kubelet's NodePublishVolume deadline is
// 2 minutes; the provider gets it as grpc-timeout).
func within(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(context.Background(), 60*time.Second)
}
