package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const (
	appRole    = "arn:aws:iam::" + account + ":role/app"
	deniedRole = "arn:aws:iam::" + account + ":role/denied"
)

const mainObjects = `- objectName: db/creds
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

const extraObject = `- objectName: /app/extra
  objectType: ssmparameter
`

// suite is one driver version in one write mode: its namespace, provider and driver.
type suite struct {
	t            *testing.T
	version      string // "v1.6" or "v1.5"
	driverWrites bool
	ns           string
	socket       string
	provider     *process
	driver       *process
	credsVersion string // VersionId of db/creds now
	pods         []*podVolume
}

// TestChartRBAC: the identity the provider runs as (the chart's ServiceAccount) gets exactly what
// the chart's ClusterRole grants, checked with SubjectAccessReview against the real authorizer.
func TestChartRBAC(t *testing.T) {
	_, _, sa, err := w.providerCommand()
	if err != nil {
		t.Fatal(err)
	}
	user := "system:serviceaccount:" + providerNS + ":" + sa
	for _, c := range []struct {
		verb, resource string
		allowed        bool
	}{
		{"get", "serviceaccounts", true},
		{"get", "nodes", true},
		{"get", "pods", false},
		{"list", "serviceaccounts", false},
		{"get", "secrets", false},
		{"create", "serviceaccounts/token", false},
	} {
		resource, sub, _ := strings.Cut(c.resource, "/")
		sar, err := w.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   user,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + providerNS, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: "app", Verb: c.verb, Resource: resource, Subresource: sub,
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != c.allowed {
			t.Errorf("%s %s %s: allowed %t, want %t (%s)", user, c.verb, c.resource, sar.Status.Allowed, c.allowed, sar.Status.Reason)
		}
	}
}

func TestCluster(t *testing.T) {
	if w.pods {
		t.Skip("the cluster-pods mode runs TestPods")
	}
	for _, version := range []string{"v1.6", "v1.5"} {
		t.Run("driver-"+version, func(t *testing.T) {
			if err := w.applyDriverManifests(w.drivers[version].deploy); err != nil {
				t.Fatalf("driver %s manifests: %v", version, err)
			}
			for _, mode := range []string{"provider-writes", "driver-writes"} {
				t.Run(mode, func(t *testing.T) {
					s := &suite{t: t, version: version, driverWrites: mode == "driver-writes",
						ns: strings.ReplaceAll(version, ".", "") + "-" + mode}
					s.setUp()
					s.run()
				})
			}
		})
	}
}

func (s *suite) fatal(err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
}

func (s *suite) setUp() {
	t := s.t
	s.fatal(w.helmInstall(s.driverWrites))
	args, _, _, err := w.providerCommand()
	s.fatal(err)
	want := fmt.Sprintf("--driver-writes-secrets=%t", s.driverWrites)
	if !slices.Contains(args, want) {
		t.Fatalf("the chart's DaemonSet args %v lack %s", args, want)
	}
	// Namespace and service accounts (no controller manager: nothing creates them for us).
	_, err = w.kube.CoreV1().Namespaces().Create(ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}}, metav1.CreateOptions{})
	s.fatal(err)
	for name, role := range map[string]string{"app": appRole, "denied": deniedRole, "podid": ""} {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns}}
		if role != "" {
			sa.Annotations = map[string]string{"eks.amazonaws.com/role-arn": role}
		}
		_, err := w.kube.CoreV1().ServiceAccounts(s.ns).Create(ctx(), sa, metav1.CreateOptions{})
		s.fatal(err)
	}
	// AWS: a fresh moto.
	s.fatal(w.moto.reset())
	s.credsVersion, err = w.moto.putSecret(region, "db/creds", `{"username":"u1","password":"p1"}`)
	s.fatal(err)
	for name, value := range map[string]string{"/app/config": "c1", "/app/extra": "e1"} {
		_, err := w.moto.putParameter(region, name, "String", value)
		s.fatal(err)
	}
	_, err = w.moto.putParameter(region, "/app/key", "SecureString", "k1")
	s.fatal(err)
	_, err = w.moto.putSecret(region, "db/failover", "west")
	s.fatal(err)
	_, err = w.moto.putSecret(failoverRgn, "db/failover", "east")
	s.fatal(err)
	w.proxy.setDenied(deniedRole, true)
	// SecretProviderClasses.
	s.fatal(s.spc("spc-main", map[string]any{"region": region, "objects": mainObjects}, []any{
		map[string]any{"secretName": "main-synced", "type": "Opaque", "data": []any{
			map[string]any{"objectName": "user", "key": "username"},
			map[string]any{"objectName": "_app_config", "key": "config"},
		}},
	}))
	// No region: the node's topology.kubernetes.io/region label (the chart's RBAC: get nodes).
	s.fatal(s.spc("spc-podid", map[string]any{"usePodIdentity": "true",
		"objects": "- objectName: db/creds\n  objectType: secretsmanager\n"}, nil))
	s.fatal(s.spc("spc-bad", map[string]any{"region": region,
		"objects": "- objectName: /app/config\n  objectType: ssm\n"}, nil))
	s.fatal(s.spc("spc-failover", map[string]any{"region": region, "failoverRegion": failoverRgn,
		"objects": "- objectName: db/failover\n  objectType: secretsmanager\n  objectAlias: fo\n" +
			"  failoverObject:\n    objectName: db/failover\n"}, nil))

	s.provider, err = w.startProvider("provider-" + s.ns)
	s.fatal(err)
	s.driver, s.socket, err = w.startDriver(s.version)
	s.fatal(err)
	t.Cleanup(func() {
		for _, pv := range s.pods {
			_ = pv.unpublish(s.socket)
			w.remove(pv)
		}
		// Reverse order, one at a time.
		for _, p := range []*process{s.driver, s.provider} {
			if p != nil {
				p.stop()
				w.procs.remove(p)
			}
		}
		if t.Failed() {
			for _, p := range []*process{s.driver, s.provider} {
				if p != nil {
					t.Logf("----- %s (tail) -----\n%s", p.name, p.tail(60))
				}
			}
		}
	})
}

func (s *suite) spc(name string, params map[string]any, secretObjects []any) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "secrets-store.csi.x-k8s.io/v1",
		"kind":       "SecretProviderClass",
		"metadata":   map[string]any{"name": name, "namespace": s.ns},
		"spec":       map[string]any{"provider": "aws", "parameters": params},
	}}
	if secretObjects != nil {
		_ = unstructured.SetNestedSlice(u.Object, secretObjects, "spec", "secretObjects")
	}
	_, err := w.dyn.Resource(spcGVR).Namespace(s.ns).Create(ctx(), u, metav1.CreateOptions{})
	return err
}

func (s *suite) pod(name, sa, spc string) *podVolume {
	pv, err := w.newPod(s.ns, name, sa, spc)
	s.fatal(err)
	s.pods = append(s.pods, pv)
	return pv
}

func (s *suite) run() {
	var p1 *podVolume
	s.t.Run("mount", func(t *testing.T) { p1 = s.mount(t) })
	if p1 == nil {
		s.t.FailNow()
	}
	s.t.Run("rotation", func(t *testing.T) { s.rotation(t, p1) })
	s.t.Run("denied-rotation", func(t *testing.T) { s.deniedRotation(t, p1) })
	s.t.Run("spc-edited", func(t *testing.T) { s.spcEdited(t, p1) })
	s.t.Run("provider-restart", func(t *testing.T) { s.providerRestart(t, p1) })
	s.t.Run("pod-identity", s.podIdentity)
	s.t.Run("missing-token", s.missingToken)
	s.t.Run("bad-spc", func(t *testing.T) {
		s.refused(t, s.pod("bad-spc", "app", "spc-bad"), true, "objectType")
	})
	s.t.Run("denied-role", func(t *testing.T) {
		mark := w.proxy.mark()
		s.refused(t, s.pod("denied", "denied", "spc-main"), true, "AccessDenied")
		if !slices.ContainsFunc(w.proxy.since(mark), func(c awsCall) bool { return c.Answered == "denied" }) {
			t.Errorf("the proxy denied nothing: %+v", w.proxy.since(mark))
		}
	})
	s.t.Run("failover-region", s.failover)
	s.t.Run("unpublish", func(t *testing.T) { s.unpublish(t, p1) })
}

// ---------------------------------------------------------------------------------------------
// Checks

// checkFiles reads the volume and compares names, contents and modes.
func checkFiles(t *testing.T, target string, want map[string]file) *volumeView {
	t.Helper()
	v, err := readVolume(target)
	if err != nil {
		t.Fatalf("volume %s: %v", target, err)
	}
	if !reflect.DeepEqual(v.files, want) {
		t.Fatalf("files of %s:\n got %v\nwant %v", target, v.files, want)
	}
	return v
}

func (s *suite) mainFiles(user, pass, config string) map[string]file {
	return map[string]file{
		"db_creds":    {fmt.Sprintf(`{"username":"%s","password":"%s"}`, user, pass), 0o644},
		"user":        {user, 0o644},
		"pass":        {pass, 0o400},
		"_app_key":    {"k1", 0o600},
		"_app_config": {config, 0o644},
	}
}

// spcpsObjects is the SecretProviderClassPodStatus's status.objects as id → version, after
// checking the rest of its status.
func spcpsObjects(t *testing.T, pv *podVolume) map[string]string {
	t.Helper()
	u, err := w.dyn.Resource(spcpsGVR).Namespace(pv.pod.Namespace).Get(ctx(), spcpsName(pv), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("SecretProviderClassPodStatus %s: %v", spcpsName(pv), err)
	}
	st, _, _ := unstructured.NestedMap(u.Object, "status")
	if st["mounted"] != true || st["podName"] != pv.pod.Name || st["secretProviderClassName"] != pv.spc || st["targetPath"] != pv.target {
		t.Fatalf("SecretProviderClassPodStatus status %v", st)
	}
	if u.GetLabels()["internal.secrets-store.csi.k8s.io/node-name"] != nodeName {
		t.Errorf("SecretProviderClassPodStatus labels %v", u.GetLabels())
	}
	out := map[string]string{}
	objs, _, _ := unstructured.NestedSlice(u.Object, "status", "objects")
	for _, o := range objs {
		m := o.(map[string]any)
		out[fmt.Sprint(m["id"])] = fmt.Sprint(m["version"])
	}
	return out
}

// waitSPCPS waits until the status objects equal want.
func (s *suite) waitSPCPS(t *testing.T, pv *podVolume, want map[string]string) {
	t.Helper()
	err := w.procs.waitFor("SecretProviderClassPodStatus objects", 20*time.Second, func() error {
		u, err := w.dyn.Resource(spcpsGVR).Namespace(pv.pod.Namespace).Get(ctx(), spcpsName(pv), metav1.GetOptions{})
		if err != nil {
			return err
		}
		got := map[string]string{}
		objs, _, _ := unstructured.NestedSlice(u.Object, "status", "objects")
		for _, o := range objs {
			m := o.(map[string]any)
			got[fmt.Sprint(m["id"])] = fmt.Sprint(m["version"])
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("got %v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	spcpsObjects(t, pv)
}

// waitSecret waits until the synced Secret holds want.
func (s *suite) waitSecret(t *testing.T, name string, want map[string]string) {
	t.Helper()
	err := w.procs.waitFor("synced Secret "+name, 30*time.Second, func() error {
		sec, err := w.kube.CoreV1().Secrets(s.ns).Get(ctx(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		got := map[string]string{}
		for k, v := range sec.Data {
			got[k] = string(v)
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("data %v, want %v", got, want)
		}
		if sec.Labels["secrets-store.csi.k8s.io/managed"] != "true" {
			return fmt.Errorf("labels %v", sec.Labels)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (s *suite) mainVersions(configVersion string) map[string]string {
	return map[string]string{"db_creds": s.credsVersion, "user": s.credsVersion, "pass": s.credsVersion,
		"_app_key": "1", "_app_config": configVersion}
}

// awsReads are the Secrets Manager and SSM calls among calls.
func awsReads(calls []awsCall) []awsCall {
	var out []awsCall
	for _, c := range calls {
		if c.Service == "secretsmanager" || c.Service == "ssm" {
			out = append(out, c)
		}
	}
	return out
}

// afterPoll waits out the rotation poll interval since the volume last changed.
func afterPoll() { time.Sleep(pollInterval + 700*time.Millisecond) }

// rotate makes the driver call the provider again: v1.6 on kubelet's republish once the poll
// interval has passed, v1.5 by its own rotation reconciler (every poll interval).
func (s *suite) rotate(t *testing.T, pv *podVolume) {
	t.Helper()
	afterPoll()
	if s.version == "v1.6" {
		if err := pv.publish(s.socket, true); err != nil {
			t.Fatalf("republish: %v", err)
		}
	} else {
		afterPoll() // at least one full reconciler pass after the change
	}
}

// ---------------------------------------------------------------------------------------------
// Scenarios

// mount: files, contents, modes and the ..data layout; object versions in the
// SecretProviderClassPodStatus; secretObjects synced; IRSA with the API server's token.
func (s *suite) mount(t *testing.T) *podVolume {
	pv := s.pod("p1", "app", "spc-main")
	mark := w.proxy.mark()
	if err := pv.publish(s.socket, true); err != nil {
		t.Fatalf("NodePublishVolume: %v", err)
	}
	if fs := mountFSType(pv.target); fs != "tmpfs" {
		t.Fatalf("target %s: mounted %q, want tmpfs", pv.target, fs)
	}
	first := checkFiles(t, pv.target, s.mainFiles("u1", "p1", "c1"))
	if s.version == "v1.6" {
		// kubelet's republish before the poll interval: the driver does not call the provider.
		before := w.proxy.mark()
		if err := pv.publish(s.socket, true); err != nil {
			t.Fatalf("republish: %v", err)
		}
		if calls := w.proxy.since(before); len(calls) != 0 {
			t.Errorf("republish within the poll interval reached AWS: %+v", calls)
		}
		if v := checkFiles(t, pv.target, s.mainFiles("u1", "p1", "c1")); v.data != first.data {
			t.Errorf("republish within the poll interval swapped ..data: %s -> %s", first.data, v.data)
		}
	}
	s.waitSPCPS(t, pv, s.mainVersions("1"))
	s.waitSecret(t, "main-synced", map[string]string{"username": "u1", "config": "c1"})

	// IRSA: one AssumeRoleWithWebIdentity for the annotated role with the token the API server
	// minted for this pod (audience sts.amazonaws.com); every read signed with its credentials.
	calls := w.proxy.since(mark)
	var assumed []awsCall
	for _, c := range calls {
		if c.Operation == "AssumeRoleWithWebIdentity" {
			assumed = append(assumed, c)
		}
	}
	if len(assumed) == 0 {
		t.Fatalf("no AssumeRoleWithWebIdentity: %+v", calls)
	}
	for _, c := range assumed {
		if c.Role != appRole || c.Token != pv.raw[stsAudience] {
			t.Errorf("AssumeRoleWithWebIdentity role %s, token matches the pod's sts token: %t", c.Role, c.Token == pv.raw[stsAudience])
		}
	}
	reads := awsReads(calls)
	services := map[string]bool{}
	for _, c := range reads {
		services[c.Service] = true
		if w.proxy.roleOf(c.AccessKey) != appRole || c.Region != region {
			t.Errorf("%s %s in %s signed with %s (role %q), want the app role's STS credentials",
				c.Service, c.Operation, c.Region, c.AccessKey, w.proxy.roleOf(c.AccessKey))
		}
	}
	if !services["secretsmanager"] || !services["ssm"] {
		t.Errorf("reads %+v: want Secrets Manager and SSM", reads)
	}
	return pv
}

// rotation: after the poll interval with nothing changed, the provider is called and nothing is
// written; after a change, exactly one swap with the new values, versions and synced Secret.
func (s *suite) rotation(t *testing.T, pv *podVolume) {
	before := checkFiles(t, pv.target, s.mainFiles("u1", "p1", "c1"))
	mark := w.proxy.mark()
	s.rotate(t, pv)
	if len(awsReads(w.proxy.since(mark))) == 0 {
		t.Fatalf("no AWS read after the poll interval: the driver did not call the provider")
	}
	if v := checkFiles(t, pv.target, s.mainFiles("u1", "p1", "c1")); v.data != before.data {
		t.Errorf("nothing changed, yet ..data moved: %s -> %s", before.data, v.data)
	}

	var err error
	s.credsVersion, err = w.moto.putSecret(region, "db/creds", `{"username":"u2","password":"p2"}`)
	s.fatal(err)
	_, err = w.moto.putParameter(region, "/app/config", "String", "c2")
	s.fatal(err)
	s.rotate(t, pv)
	err = w.procs.waitFor("rotated files", 20*time.Second, func() error {
		v, err := readVolume(pv.target)
		if err != nil {
			return err
		}
		if v.files["user"].content != "u2" {
			return fmt.Errorf("user is %q", v.files["user"].content)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	after := checkFiles(t, pv.target, s.mainFiles("u2", "p2", "c2")) // one timestamped dir: one swap
	if after.data == before.data {
		t.Errorf("..data did not move")
	}
	s.waitSPCPS(t, pv, s.mainVersions("2"))
	s.waitSecret(t, "main-synced", map[string]string{"username": "u2", "config": "c2"})
}

// deniedRotation: the pod's role loses access (the proxy denies its credentials) while a new
// value waits: the rotation reaches AWS, is denied, and nothing changes (files, ..data, pod
// status versions, synced Secret). Access back, the old value again (a new version).
func (s *suite) deniedRotation(t *testing.T, pv *podVolume) {
	before := checkFiles(t, pv.target, s.mainFiles("u2", "p2", "c2"))
	versions := s.mainVersions("2")
	w.proxy.setDenied(appRole, true)
	defer w.proxy.setDenied(appRole, false)
	_, err := w.moto.putSecret(region, "db/creds", `{"username":"u-denied","password":"p-denied"}`)
	s.fatal(err)
	mark := w.proxy.mark()
	s.rotate(t, pv)
	if !slices.ContainsFunc(w.proxy.since(mark), func(c awsCall) bool { return c.Answered == "denied" }) {
		t.Fatalf("no denied read after the poll interval: the provider was not called (%+v)", w.proxy.since(mark))
	}
	if v := checkFiles(t, pv.target, s.mainFiles("u2", "p2", "c2")); v.data != before.data {
		t.Errorf("a denied rotation moved ..data: %s -> %s", before.data, v.data)
	}
	if got := spcpsObjects(t, pv); !reflect.DeepEqual(got, versions) {
		t.Errorf("a denied rotation changed the pod status versions: %v, want %v", got, versions)
	}
	s.waitSecret(t, "main-synced", map[string]string{"username": "u2", "config": "c2"})
	w.proxy.setDenied(appRole, false)
	s.credsVersion, err = w.moto.putSecret(region, "db/creds", `{"username":"u2","password":"p2"}`)
	s.fatal(err)
}

// spcEdited: an object added to the SecretProviderClass between republishes appears.
func (s *suite) spcEdited(t *testing.T, pv *podVolume) {
	spcs := w.dyn.Resource(spcGVR).Namespace(s.ns)
	u, err := spcs.Get(ctx(), "spc-main", metav1.GetOptions{})
	s.fatal(err)
	s.fatal(unstructured.SetNestedField(u.Object, mainObjects+extraObject, "spec", "parameters", "objects"))
	_, err = spcs.Update(ctx(), u, metav1.UpdateOptions{})
	s.fatal(err)
	s.rotate(t, pv)
	want := s.mainFiles("u2", "p2", "c2")
	want["_app_extra"] = file{"e1", 0o644}
	err = w.procs.waitFor("the added object's file", 20*time.Second, func() error {
		v, err := readVolume(pv.target)
		if err != nil {
			return err
		}
		if _, ok := v.files["_app_extra"]; !ok {
			return fmt.Errorf("files %v", v.names())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, pv.target, want)
	versions := s.mainVersions("2")
	versions["_app_extra"] = "1"
	s.waitSPCPS(t, pv, versions)
}

// providerRestart: the provider stops while the volume stays mounted (files stay readable, a
// rotation meanwhile fails and changes nothing), starts again, and the next rotation lands.
func (s *suite) providerRestart(t *testing.T, pv *podVolume) {
	want := s.mainFiles("u2", "p2", "c2")
	want["_app_extra"] = file{"e1", 0o644}
	before := checkFiles(t, pv.target, want)
	s.provider.stop()
	w.procs.remove(s.provider)
	if _, err := os.Stat(filepath.Join(w.providerDir, "aws.sock")); err == nil {
		t.Errorf("aws.sock left behind by the stopped provider")
	}
	// A rotation while no provider listens: v1.6 waits for the socket until kubelet's deadline
	// (cut to 3 s here) and the driver keeps the files; v1.5's reconciler fails and keeps them.
	afterPoll()
	if s.version == "v1.6" {
		err := pv.publishWithin(s.socket, true, 3*time.Second)
		t.Logf("republish with the provider down: %v", err)
	} else {
		afterPoll()
	}
	if v := checkFiles(t, pv.target, want); v.data != before.data {
		t.Errorf("..data moved while the provider was down")
	}
	var err error
	s.provider, err = w.startProvider("provider-" + s.ns + "-restarted")
	s.fatal(err)
	s.credsVersion, err = w.moto.putSecret(region, "db/creds", `{"username":"u3","password":"p3"}`)
	s.fatal(err)
	s.rotate(t, pv)
	err = w.procs.waitFor("rotation after the restart", 20*time.Second, func() error {
		v, err := readVolume(pv.target)
		if err != nil {
			return err
		}
		if v.files["user"].content != "u3" {
			return fmt.Errorf("user is %q", v.files["user"].content)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want = s.mainFiles("u3", "p3", "c2")
	want["_app_extra"] = file{"e1", 0o644}
	checkFiles(t, pv.target, want)
	s.waitSecret(t, "main-synced", map[string]string{"username": "u3", "config": "c2"})
}

// podIdentity: the pods.eks.amazonaws.com token goes to the agent; reads are signed with the
// agent's credentials; the region comes from the node's label.
func (s *suite) podIdentity(t *testing.T) {
	pv := s.pod("p-podid", "podid", "spc-podid")
	seenTokens, _ := w.agent.received()
	seen := len(seenTokens)
	mark := w.proxy.mark()
	if err := pv.publish(s.socket, true); err != nil {
		t.Fatalf("NodePublishVolume: %v", err)
	}
	checkFiles(t, pv.target, map[string]file{"db_creds": {`{"username":"u3","password":"p3"}`, 0o644}})
	tokens, users := w.agent.received()
	got := tokens[seen:]
	if len(got) == 0 || got[0] != pv.raw[podIDAudience] {
		t.Errorf("the agent got %d requests; the first carries the pod's token: %t", len(got), len(got) > 0 && got[0] == pv.raw[podIDAudience])
	}
	if wantUser := "system:serviceaccount:" + s.ns + ":podid"; !slices.Contains(users, wantUser) {
		t.Errorf("TokenReview users %v: want %s", users, wantUser)
	}
	calls := w.proxy.since(mark)
	reads := awsReads(calls)
	if len(reads) == 0 {
		t.Fatalf("no reads: %+v", calls)
	}
	for _, c := range calls {
		if c.Operation == "AssumeRoleWithWebIdentity" {
			t.Errorf("Pod Identity used STS: %+v", c)
		}
	}
	for _, c := range reads {
		if c.AccessKey != agentKey || c.Region != region {
			t.Errorf("read %+v: want the agent's key %s in the node's region %s", c, agentKey, region)
		}
	}
	s.waitSPCPS(t, pv, map[string]string{"db_creds": s.credsVersion})
}

// missingToken: a cluster whose CSIDriver has no tokenRequests: kubelet sends no token, and
// v1.5 (which mints the CSIDriver's audiences itself when kubelet sent none) has none to mint.
func (s *suite) missingToken(t *testing.T) {
	pv := s.pod("no-token", "app", "spc-main")
	drivers := w.kube.StorageV1().CSIDrivers()
	d, err := w.csiDriver()
	s.fatal(err)
	audiences := d.Spec.TokenRequests
	d.Spec.TokenRequests = nil
	_, err = drivers.Update(ctx(), d, metav1.UpdateOptions{})
	s.fatal(err)
	defer func() {
		d, err := w.csiDriver()
		s.fatal(err)
		d.Spec.TokenRequests = audiences
		_, err = drivers.Update(ctx(), d, metav1.UpdateOptions{})
		s.fatal(err)
		time.Sleep(time.Second) // the v1.5 driver's CSIDriver informer
	}()
	time.Sleep(time.Second)
	s.refused(t, pv, false, "token")
}

// refused: the mount fails with a message containing want, and nothing is mounted, written or
// recorded; wantAWS says whether the provider may have reached AWS before refusing.
func (s *suite) refused(t *testing.T, pv *podVolume, withTokens bool, want string) {
	mark := w.proxy.mark()
	err := pv.publish(s.socket, withTokens)
	if err == nil {
		t.Fatalf("NodePublishVolume succeeded")
	}
	if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
		t.Errorf("error %q does not mention %q", err, want)
	}
	t.Logf("the driver's error: %v", err)
	if fs := mountFSType(pv.target); fs != "" {
		t.Errorf("target still mounted (%s) after a failed mount", fs)
	}
	if entries, err := os.ReadDir(pv.target); err == nil && len(entries) > 0 {
		t.Errorf("target holds %d entries after a failed mount", len(entries))
	}
	_, err = w.dyn.Resource(spcpsGVR).Namespace(s.ns).Get(ctx(), spcpsName(pv), metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("SecretProviderClassPodStatus after a failed mount: %v", err)
	}
	if want != "AccessDenied" {
		if reads := awsReads(w.proxy.since(mark)); len(reads) != 0 {
			t.Errorf("a refused mount read AWS: %+v", reads)
		}
	}
}

// failover: the primary region answers (its value); then it is out (503) and a new pod gets the
// failover region's value.
func (s *suite) failover(t *testing.T) {
	pv := s.pod("p-primary", "app", "spc-failover")
	if err := pv.publish(s.socket, true); err != nil {
		t.Fatalf("NodePublishVolume: %v", err)
	}
	checkFiles(t, pv.target, map[string]file{"fo": {"west", 0o644}})

	w.proxy.setOutage(region, true)
	defer w.proxy.setOutage(region, false)
	pv2 := s.pod("p-failover", "app", "spc-failover")
	mark := w.proxy.mark()
	if err := pv2.publish(s.socket, true); err != nil {
		t.Fatalf("NodePublishVolume with %s out: %v", region, err)
	}
	checkFiles(t, pv2.target, map[string]file{"fo": {"east", 0o644}})
	var out, east bool
	for _, c := range awsReads(w.proxy.since(mark)) {
		out = out || (c.Region == region && c.Answered == "outage")
		east = east || (c.Region == failoverRgn && c.Answered == "moto")
	}
	if !out || !east {
		t.Errorf("calls %+v: want the primary refused and the failover region read", w.proxy.since(mark))
	}
}

// unpublish: the tmpfs is unmounted and the target removed.
func (s *suite) unpublish(t *testing.T, pv *podVolume) {
	if err := pv.unpublish(s.socket); err != nil {
		t.Fatalf("NodeUnpublishVolume: %v", err)
	}
	if fs := mountFSType(pv.target); fs != "" {
		t.Errorf("still mounted (%s)", fs)
	}
	if _, err := os.Stat(pv.target); !os.IsNotExist(err) {
		t.Errorf("target %s still there: %v", pv.target, err)
	}
}
