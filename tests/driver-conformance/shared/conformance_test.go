// Shared by the v1.5 and v1.6 modules (each holds a symlink to this file); what differs between
// the two driver generations is in each module's generation_test.go.
//
// Every call goes through the driver's own client code, as the driver makes it:
// secretsstore.NewPluginClientBuilder (socket lookup, dial options, retry service config),
// PluginClientBuilder.Get, secretsstore.MountContent (request building, response checks, and in
// driver-writes mode the driver's atomic writer, fileutil.WritePayloads) and secretsstore.Version.

package conformance

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// driverGeneration describes how one driver release line calls providers.
type driverGeneration struct {
	series string
	// authority is the HTTP/2 :authority the driver's client sends when dialing socket.
	authority func(socket string) string
	// reconcilerRotation: rotation is a separate reconciler (v1.5.x) that sends only the SPC
	// parameters and pod identity, secrets "{}" and the current object versions; otherwise
	// (v1.6.x) rotation is kubelet's periodic NodePublishVolume: same request as the first mount.
	reconcilerRotation bool
}

// maxCallRecvMsgSize is the driver's --max-call-recv-msg-size default.
const maxCallRecvMsgSize = 4 * 1024 * 1024

// driverClient builds the provider client exactly as the driver's main does, looking up
// "aws.sock" in an absent additional providers dir, then in dir (the driver's default order).
func driverClient(t *testing.T, dir string) v1alpha1.CSIDriverProviderClient {
	t.Helper()
	builder := secretsstore.NewPluginClientBuilder(
		[]string{filepath.Join(filepath.Dir(dir), "etc-kubernetes-providers-absent"), dir},
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxCallRecvMsgSize)),
	)
	t.Cleanup(builder.Cleanup)
	ctx, cancel := within(t)
	defer cancel()
	client, err := builder.Get(ctx, "aws")
	if err != nil {
		t.Fatalf("driver client for %s: %v", dir, err)
	}
	return client
}

// recordingClient passes every call through and remembers the last Mount response, so a test can
// see how many files the provider returned before the driver's code handled them.
type recordingClient struct {
	v1alpha1.CSIDriverProviderClient
	mu   sync.Mutex
	last *v1alpha1.MountResponse
}

func (c *recordingClient) Mount(ctx context.Context, in *v1alpha1.MountRequest, opts ...grpc.CallOption) (*v1alpha1.MountResponse, error) {
	resp, err := c.CSIDriverProviderClient.Mount(ctx, in, opts...)
	c.mu.Lock()
	c.last = resp
	c.mu.Unlock()
	return resp, err
}

func (c *recordingClient) returnedFiles() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return -1
	}
	return len(c.last.GetFiles())
}

// ---------------------------------------------------------------------------------------------

// TestDriverClientAuthority documents what :authority this generation's client sends, against a
// Go gRPC server (which accepts anything) standing in for a provider.
func TestDriverClientAuthority(t *testing.T) {
	dir := filepath.Join(world.root, "probe", "providers")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "aws.sock")
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	probe := &authorityProbe{}
	srv := grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(srv, probe)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	ctx, cancel := within(t)
	defer cancel()
	if _, err := secretsstore.Version(ctx, driverClient(t, dir)); err != nil {
		t.Fatalf("Version against the probe: %v", err)
	}
	got, want := probe.get(), generation.authority(socket)
	t.Logf("driver %s client sends :authority %q for socket %s", generation.series, got, socket)
	if got != want {
		t.Errorf(":authority = %q, want %q", got, want)
	}
}

type authorityProbe struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
	mu        sync.Mutex
	authority string
}

func (p *authorityProbe) Version(ctx context.Context, _ *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if v := md.Get(":authority"); len(v) > 0 {
		p.authority = v[0]
	}
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: "probe", RuntimeVersion: "0.0.0"}, nil
}

func (p *authorityProbe) get() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.authority
}

// TestVersion: the driver's health check call (secretsstore.Version) succeeds on both providers.
func TestVersion(t *testing.T) {
	for _, p := range []*provider{world.providerWrites, world.driverWrites} {
		t.Run(p.name, func(t *testing.T) {
			ctx, cancel := within(t)
			defer cancel()
			v, err := secretsstore.Version(ctx, driverClient(t, p.dir))
			if err != nil {
				t.Fatalf("Version: %v", err)
			}
			if v == "" {
				t.Error("empty runtime version")
			}
			t.Logf("provider runtime version %q (driver %s client)", v, generation.series)
		})
	}
}

// ---------------------------------------------------------------------------------------------

const objectsYAML = `- objectName: app/db
  objectType: secretsmanager
  jmesPath:
    - path: username
      objectAlias: user
    - Path: password
      ObjectAlias: pass
      filePermission: "0400"
- objectName: /app/key
  objectType: ssmparameter
  filePermission: "0600"
- objectName: /app/config
  objectType: ssmparameter
`

// objectsWithoutConfig is objectsYAML with /app/config dropped (an SPC edit between mounts).
var objectsWithoutConfig = objectsYAML[:strings.Index(objectsYAML, "- objectName: /app/config")]

func spcParams(objects string) map[string]string {
	return map[string]string{"objects": objects, "region": region}
}

// TestMount runs the same scenario in both write modes: first mount, rotation, an SPC edit that
// drops a file, a failed re-mount that keeps the files, and a failed first mount.
func TestMount(t *testing.T) {
	t.Run("provider-writes", func(t *testing.T) { mountScenario(t, world.providerWrites, false) })
	t.Run("driver-writes", func(t *testing.T) { mountScenario(t, world.driverWrites, true) })
}

func mountScenario(t *testing.T, p *provider, driverWrites bool) {
	e := world
	e.resetMoto(t)
	seeded := e.aws(t,
		createSecret("app/db", `{"username":"user1","password":"pw-1"}`),
		putParameter("/app/key", "key-1", "SecureString"),
		putParameter("/app/config", "cfg-1", "String"),
	)
	v1 := str(t, seeded[0], "VersionId")

	client := &recordingClient{CSIDriverProviderClient: driverClient(t, p.dir)}
	pd := e.newPod(t, "web-"+p.name)

	// wantReturned checks what the provider handed to the driver's code: no files in
	// provider-writes mode (the driver then leaves the target alone), all of them otherwise.
	wantReturned := func(n int) {
		t.Helper()
		want := 0
		if driverWrites {
			want = n
		}
		if got := client.returnedFiles(); got != want {
			t.Errorf("provider returned %d files in MountResponse.files, want %d", got, want)
		}
	}

	// 1. First mount (NodePublishVolume).
	ctx, cancel := within(t)
	defer cancel()
	versions, reason, err := secretsstore.MountContent(ctx, client, pd.publishAttributes(spcParams(objectsYAML)), "null", pd.target, permission(), nil)
	if err != nil {
		t.Fatalf("first mount: %v (reason %q)", err, reason)
	}
	wantVersions(t, "first mount", versions, map[string]string{
		"app_db": v1, "user": v1, "pass": v1, "_app_key": "1", "_app_config": "1",
	})
	wantFiles(t, "first mount", readTarget(t, pd.target), map[string]fileInfo{
		"app_db":      {`{"username":"user1","password":"pw-1"}`, 0o644},
		"user":        {"user1", 0o644},
		"pass":        {"pw-1", 0o400},
		"_app_key":    {"key-1", 0o600},
		"_app_config": {"cfg-1", 0o644},
	})
	wantReturned(5)

	// 2. Rotation: new secret value and parameter version, then the generation's rotation call.
	rotated := e.aws(t,
		putSecretValue("app/db", `{"username":"user1","password":"pw-2"}`),
		putParameter("/app/key", "key-2", "SecureString"),
	)
	v2 := str(t, rotated[0], "VersionId")
	if v2 == v1 {
		t.Fatalf("moto kept VersionId %s after put_secret_value", v1)
	}
	attrs, secrets, current := pd.publishAttributes(spcParams(objectsYAML)), "null", map[string]string(nil)
	if generation.reconcilerRotation {
		attrs, secrets, current = pd.reconcilerAttributes(spcParams(objectsYAML)), "{}", versions
	}
	versions, reason, err = secretsstore.MountContent(ctx, client, attrs, secrets, pd.target, permission(), current)
	if err != nil {
		t.Fatalf("rotation mount: %v (reason %q)", err, reason)
	}
	wantVersions(t, "rotation", versions, map[string]string{
		"app_db": v2, "user": v2, "pass": v2, "_app_key": "2", "_app_config": "1",
	})
	wantFiles(t, "rotation", readTarget(t, pd.target), map[string]fileInfo{
		"app_db":      {`{"username":"user1","password":"pw-2"}`, 0o644},
		"user":        {"user1", 0o644},
		"pass":        {"pw-2", 0o400},
		"_app_key":    {"key-2", 0o600},
		"_app_config": {"cfg-1", 0o644},
	})
	wantReturned(5)

	// 3. The SPC drops /app/config: its file disappears on the next mount.
	versions, reason, err = secretsstore.MountContent(ctx, client, pd.publishAttributes(spcParams(objectsWithoutConfig)), "null", pd.target, permission(), nil)
	if err != nil {
		t.Fatalf("mount without /app/config: %v (reason %q)", err, reason)
	}
	wantVersions(t, "SPC edit", versions, map[string]string{"app_db": v2, "user": v2, "pass": v2, "_app_key": "2"})
	afterEdit := readTarget(t, pd.target)
	wantFiles(t, "SPC edit", afterEdit, map[string]fileInfo{
		"app_db":   {`{"username":"user1","password":"pw-2"}`, 0o644},
		"user":     {"user1", 0o644},
		"pass":     {"pw-2", 0o400},
		"_app_key": {"key-2", 0o600},
	})
	wantReturned(4)

	// 4. A re-mount that fails (a missing secret) fails the call and leaves the files alone.
	missing := objectsWithoutConfig + "- objectName: app/missing\n  objectType: secretsmanager\n"
	_, reason, err = secretsstore.MountContent(ctx, client, pd.publishAttributes(spcParams(missing)), "null", pd.target, permission(), nil)
	wantNotFound(t, "failed re-mount", err, reason, "app/missing")
	wantFiles(t, "after a failed re-mount", readTarget(t, pd.target), afterEdit)

	// 5. A first mount that fails: error names the object, nothing is written.
	fresh := e.newPod(t, "broken-"+p.name)
	_, reason, err = secretsstore.MountContent(ctx, client, fresh.publishAttributes(spcParams("- objectName: app/missing\n  objectType: secretsmanager\n")), "null", fresh.target, permission(), nil)
	wantNotFound(t, "failed first mount", err, reason, "app/missing")
	if entries, _ := os.ReadDir(fresh.target); len(entries) != 0 {
		t.Errorf("failed first mount left %v in the target", names(entries))
	}
}

func wantVersions(t *testing.T, step string, got, want map[string]string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: object versions = %v, want %v", step, got, want)
	}
}

func wantFiles(t *testing.T, step string, got, want map[string]fileInfo) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		switch {
		case !wok:
			t.Errorf("%s: unexpected file %q (%q, %v)", step, k, g.content, g.mode)
		case !gok:
			t.Errorf("%s: missing file %q", step, k)
		case g != w:
			t.Errorf("%s: file %q = (%q, %v), want (%q, %v)", step, k, g.content, g.mode, w.content, w.mode)
		}
	}
}

// wantNotFound: the call failed with a gRPC error whose message (the pod's FailedMount event
// text) names the AWS error code and the object.
func wantNotFound(t *testing.T, step string, err error, reason, object string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want an error naming %s", step, object)
		return
	}
	t.Logf("%s: reason %q, error: %v", step, reason, err)
	for _, part := range []string{"NotFound", object} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("%s: error %q does not contain %q", step, err, part)
		}
	}
}

func (e *env) resetMoto(t *testing.T) {
	t.Helper()
	resp, err := http.Post(e.motoURL+"/moto-api/reset", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
