package cluster

// TestPods (the cluster-pods mode, `scripts/test.sh cluster-pods`): our chart's DaemonSet runs as
// a real pod on a real kubelet, the driver runs as a host process registered with kubelet, and
// app pods mount SecretProviderClasses and read their files from inside their container (exec
// through the API server and kubelet). See README.md.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
)

func TestPods(t *testing.T) {
	if !w.pods {
		t.Skip("scripts/test.sh cluster-pods runs this (CLUSTER_PODS=1)")
	}
	for _, version := range []string{"v1.6", "v1.5"} {
		t.Run("driver-"+version, func(t *testing.T) {
			if err := w.applyDriverManifests(w.drivers[version].deploy); err != nil {
				t.Fatalf("driver %s manifests: %v", version, err)
			}
			drv, socket, err := w.startDriver(version)
			t.Cleanup(func() {
				w.node.unregister()
				if drv != nil {
					drv.stop()
					w.procs.remove(drv)
					if t.Failed() {
						t.Logf("----- %s (tail) -----\n%s", drv.name, drv.tail(60))
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.node.register(socket); err != nil {
				t.Fatal(err)
			}
			for _, mode := range []string{"provider-writes", "driver-writes"} {
				t.Run(mode, func(t *testing.T) {
					s := &suite{t: t, version: version, driverWrites: mode == "driver-writes",
						ns: "pods-" + strings.ReplaceAll(version, ".", "") + "-" + mode, socket: socket}
					s.podsSetUp()
					s.podsRun()
				})
			}
		})
	}
}

// podsSetUp installs the chart in the suite's write mode, (re)creates the DaemonSet's pod from
// the template the API server returns, and makes the namespace, AWS values and classes.
func (s *suite) podsSetUp() {
	t := s.t
	s.fatal(w.helmInstall(s.driverWrites))
	pod, err := w.providerPod()
	s.fatal(err)
	want := fmt.Sprintf("--driver-writes-secrets=%t", s.driverWrites)
	if !strings.Contains(strings.Join(pod.Spec.Containers[0].Args, " "), want) {
		t.Fatalf("provider pod args %v lack %s", pod.Spec.Containers[0].Args, want)
	}
	_, err = w.kube.CoreV1().Namespaces().Create(ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.ns}}, metav1.CreateOptions{})
	s.fatal(err)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: s.ns,
		Annotations: map[string]string{"eks.amazonaws.com/role-arn": appRole}}}
	_, err = w.kube.CoreV1().ServiceAccounts(s.ns).Create(ctx(), sa, metav1.CreateOptions{})
	s.fatal(err)
	s.fatal(w.moto.reset())
	s.credsVersion, err = w.moto.putSecret(region, "db/creds", `{"username":"u1","password":"p1"}`)
	s.fatal(err)
	_, err = w.moto.putParameter(region, "/app/config", "String", "c1")
	s.fatal(err)
	_, err = w.moto.putParameter(region, "/app/key", "SecureString", "k1")
	s.fatal(err)
	s.fatal(s.spc("spc-main", map[string]any{"region": region, "objects": mainObjects}, []any{
		map[string]any{"secretName": "main-synced", "type": "Opaque", "data": []any{
			map[string]any{"objectName": "user", "key": "username"},
			map[string]any{"objectName": "_app_config", "key": "config"},
		}},
	}))
	t.Cleanup(func() {
		// The app pods go while the driver still runs (kubelet unmounts through it).
		for _, pv := range s.pods {
			_ = w.kube.CoreV1().Pods(s.ns).Delete(ctx(), pv.pod.Name, metav1.DeleteOptions{})
		}
		for _, pv := range s.pods {
			_ = waitPodGone(pv.pod, 60*time.Second)
		}
		if t.Failed() {
			if logs, err := podLogs(w.providerPodName); err == nil {
				t.Logf("----- provider pod %s (tail) -----\n%s", w.providerPodName, tailLines(logs, 60))
			}
			t.Logf("----- kubelet (tail) -----\n%s", w.node.kubelet.tail(60))
		}
	})
}

// providerPod waits for the chart's DaemonSet pod of the DaemonSet's current template: the
// DaemonSet controller (kube-controller-manager) creates it (replacing the previous one after
// an upgrade, as the chart's RollingUpdate strategy says), kube-scheduler binds it to the node,
// kubelet runs it; it is Ready (the chart's readiness probe) and the DaemonSet's status counts it.
func (w *world) providerPod() (*corev1.Pod, error) {
	var pod *corev1.Pod
	err := w.procs.waitFor("the DaemonSet's pod of its current template Ready", 2*time.Minute, func() error {
		ds, err := w.kube.AppsV1().DaemonSets(providerNS).Get(ctx(), releaseName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pods, err := w.kube.CoreV1().Pods(providerNS).List(ctx(), metav1.ListOptions{
			LabelSelector: metav1.FormatLabelSelector(ds.Spec.Selector)})
		if err != nil {
			return err
		}
		gen := strconv.FormatInt(ds.Generation, 10)
		var current []corev1.Pod
		for _, p := range pods.Items {
			owner := metav1.GetControllerOf(&p)
			if owner == nil || owner.UID != ds.UID {
				return fmt.Errorf("pod %s is not the DaemonSet's", p.Name)
			}
			if p.DeletionTimestamp != nil || p.Labels["pod-template-generation"] != gen {
				return fmt.Errorf("pod %s of template generation %s still there", p.Name, p.Labels["pod-template-generation"])
			}
			current = append(current, p)
		}
		if len(current) != 1 {
			return fmt.Errorf("%d pods of generation %s", len(current), gen)
		}
		p := current[0]
		if p.Spec.NodeName != nodeName {
			return fmt.Errorf("pod %s not bound to %s yet", p.Name, nodeName)
		}
		ready := false
		for _, c := range p.Status.Conditions {
			ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
		}
		if !ready {
			return fmt.Errorf("pod %s: phase %s, containers %+v; events: %s", p.Name, p.Status.Phase,
				p.Status.ContainerStatuses, podEvents(&p))
		}
		if st := ds.Status; st.ObservedGeneration != ds.Generation || st.NumberReady != 1 || st.UpdatedNumberScheduled != 1 {
			return fmt.Errorf("DaemonSet status %+v", st)
		}
		pod = &p
		return nil
	})
	if err != nil {
		return nil, err
	}
	w.providerPodName = pod.Name
	// The DaemonSet controller pins its pod to the node with node affinity; the scheduler bound it.
	if a := pod.Spec.Affinity; a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil, fmt.Errorf("pod %s has no node affinity: not made by the DaemonSet controller?", pod.Name)
	}
	if ev := podEvents(pod); !strings.Contains(ev, "Scheduled: ") {
		return nil, fmt.Errorf("pod %s: no Scheduled event from the scheduler: %s", pod.Name, ev)
	}
	if err := w.procs.waitFor("provider socket on the host", 10*time.Second, func() error {
		_, err := os.Stat(filepath.Join(w.providerDir, "aws.sock"))
		return err
	}); err != nil {
		return nil, err
	}
	return pod, nil
}

func waitPodReady(pod *corev1.Pod, timeout time.Duration) error {
	return w.procs.waitFor("pod "+pod.Namespace+"/"+pod.Name+" Ready", timeout, func() error {
		p, err := w.kube.CoreV1().Pods(pod.Namespace).Get(ctx(), pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("phase %s, conditions %+v, containers %+v; events: %s", p.Status.Phase, p.Status.Conditions,
			p.Status.ContainerStatuses, podEvents(p))
	})
}

func podEvents(p *corev1.Pod) string {
	evs, err := w.kube.CoreV1().Events(p.Namespace).List(ctx(), metav1.ListOptions{
		FieldSelector: "involvedObject.uid=" + string(p.UID)})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, e.Reason+": "+e.Message)
	}
	return strings.Join(out, " | ")
}

func waitPodGone(pod *corev1.Pod, timeout time.Duration) error {
	return w.procs.waitFor("pod "+pod.Namespace+"/"+pod.Name+" deleted", timeout, func() error {
		p, err := w.kube.CoreV1().Pods(pod.Namespace).Get(ctx(), pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("still there (phase %s)", p.Status.Phase)
	})
}

func podLogs(name string) (string, error) {
	b, err := w.kube.CoreV1().Pods(providerNS).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx())
	return string(b), err
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// appPod creates a busybox pod that mounts spc at /mnt/secrets and waits until it runs.
func (s *suite) appPod(t *testing.T, name, spc string) *podVolume {
	t.Helper()
	no, grace := false, int64(2)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec: corev1.PodSpec{
			NodeName:                      nodeName,
			ServiceAccountName:            "app",
			AutomountServiceAccountToken:  &no,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "app", Image: appImage, ImagePullPolicy: corev1.PullNever,
				Command:      []string{"/bin/busybox", "sh", "-c", "trap 'exit 0' TERM; while :; do /bin/busybox sleep 1; done"},
				VolumeMounts: []corev1.VolumeMount{{Name: volumeName, MountPath: "/mnt/secrets", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: volumeName, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: driverName, ReadOnly: &[]bool{true}[0],
				VolumeAttributes: map[string]string{"secretProviderClass": spc},
			}}}},
		},
	}
	pod, err := w.kube.CoreV1().Pods(s.ns).Create(ctx(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv := &podVolume{pod: pod, spc: spc,
		target: filepath.Join(w.kubelet, "pods", string(pod.UID), "volumes", "kubernetes.io~csi", volumeName, "mount")}
	s.pods = append(s.pods, pv)
	start := time.Now()
	if err := waitPodReady(pod, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("pod %s Ready %v after its creation", name, time.Since(start).Round(10*time.Millisecond))
	return pv
}

// exec runs command in the pod's app container through the API server and kubelet (what
// `kubectl exec` does) and returns its stdout.
func execIn(pod *corev1.Pod, command ...string) (string, error) {
	req := w.kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{Container: "app", Command: command,
		Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(w.restCfg, "POST", req.URL())
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	if err := ex.StreamWithContext(ctx(), remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		return "", fmt.Errorf("exec %v: %v: %s", command, err, stderr.String())
	}
	return stdout.String(), nil
}

// inside is the volume as the container sees it.
type inside struct {
	fstype string
	data   string            // ..data's link target
	links  map[string]string // visible name → link target
	files  map[string]file   // visible name → content and mode (following the link)
}

// The script the container runs: the mount's file-system type, ..data, and for each visible
// entry its link target, mode (of what it points to) and base64 content; ..data again at the
// end, so a snapshot taken across a swap is refused (and read again) rather than mixed.
const readScript = `b=/bin/busybox; cd /mnt/secrets || exit 1
$b awk '$2 == "/mnt/secrets" { print "fstype " $3 }' /proc/mounts
echo "data $($b readlink ..data)"
for f in *; do echo "file $f $($b readlink "$f") $($b stat -L -c %a "$f") $($b base64 -w0 "$f")"; done
echo "dataend $($b readlink ..data)"`

func readInside(pod *corev1.Pod) (*inside, error) {
	var err error
	for range 5 {
		var v *inside
		if v, err = readInsideOnce(pod); !errors.Is(err, errSwapped) {
			return v, err
		}
	}
	return nil, err
}

var errSwapped = errors.New("..data moved while reading")

func readInsideOnce(pod *corev1.Pod) (*inside, error) {
	out, err := execIn(pod, "/bin/busybox", "sh", "-c", readScript)
	if err != nil {
		return nil, err
	}
	v := &inside{links: map[string]string{}, files: map[string]file{}}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "fstype":
			v.fstype = f[1]
		case len(f) >= 1 && f[0] == "data":
			if len(f) == 2 {
				v.data = f[1]
			}
		case len(f) >= 1 && f[0] == "dataend":
			if end := strings.Join(f[1:], ""); end != v.data {
				return nil, fmt.Errorf("%w (%s -> %s)", errSwapped, v.data, end)
			}
		case len(f) >= 4 && f[0] == "file":
			mode, err := strconv.ParseUint(f[3], 8, 32)
			if err != nil {
				return nil, fmt.Errorf("line %q: %v", line, err)
			}
			content := ""
			if len(f) == 5 {
				b, err := base64.StdEncoding.DecodeString(f[4])
				if err != nil {
					return nil, fmt.Errorf("line %q: %v", line, err)
				}
				content = string(b)
			}
			v.links[f[1]] = f[2]
			v.files[f[1]] = file{content: content, mode: os.FileMode(mode)}
		default:
			return nil, fmt.Errorf("unexpected output line %q in:\n%s", line, out)
		}
	}
	return v, nil
}

// check compares what the container sees with want: a tmpfs, ..data pointing at a timestamped
// directory, every visible entry a link into ..data, the names, contents and modes.
func (v *inside) check(want map[string]file) error {
	if v.fstype != "tmpfs" {
		return fmt.Errorf("/mnt/secrets is %q, want tmpfs", v.fstype)
	}
	if !strings.HasPrefix(v.data, "..") || v.data == "..data" {
		return fmt.Errorf("..data -> %q, want a timestamped directory", v.data)
	}
	for name, target := range v.links {
		if target != "..data/"+name {
			return fmt.Errorf("%s -> %q, want ..data/%s", name, target, name)
		}
	}
	if !reflect.DeepEqual(v.files, want) {
		return fmt.Errorf("files\n got %v\nwant %v", v.files, want)
	}
	return nil
}

// jwtClaims decodes a token's payload (no verification: the API server signed it; what matters
// here is whom it was issued for).
func jwtClaims(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var c map[string]any
	return c, json.Unmarshal(b, &c)
}

func (s *suite) podsRun() {
	var p1 *podVolume
	s.t.Run("mount", func(t *testing.T) { p1 = s.podMount(t) })
	if p1 == nil {
		s.t.FailNow()
	}
	s.t.Run("rotation-unchanged", func(t *testing.T) { s.podRotationUnchanged(t, p1) })
	s.t.Run("rotation", func(t *testing.T) { s.podRotation(t, p1) })
	s.t.Run("pod-deletion", func(t *testing.T) { s.podDeletion(t, p1) })
}

// podMount: the pod runs with the files, contents, modes and ..data layout seen from inside
// its container and on the host; the pod status and the synced Secret; IRSA with the token
// kubelet requested for the pod; the provider pod served the mount.
func (s *suite) podMount(t *testing.T) *podVolume {
	mark := w.proxy.mark()
	pv := s.appPod(t, "p1", "spc-main")
	v, err := readInside(pv.pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.check(s.mainFiles("u1", "p1", "c1")); err != nil {
		t.Fatalf("inside the container: %v", err)
	}
	if fs := mountFSType(pv.target); fs != "tmpfs" {
		t.Errorf("host: target %s mounted %q, want tmpfs", pv.target, fs)
	}
	checkFiles(t, pv.target, s.mainFiles("u1", "p1", "c1"))
	s.waitSPCPS(t, pv, s.mainVersions("1"))
	s.waitSecret(t, "main-synced", map[string]string{"username": "u1", "config": "c1"})

	// IRSA: the web identity token is one kubelet requested (the test mints no pod token in this
	// mode): audience sts.amazonaws.com, the pod's ServiceAccount, bound to this pod.
	calls := w.proxy.since(mark)
	assumed := 0
	for _, c := range calls {
		if c.Operation != "AssumeRoleWithWebIdentity" {
			continue
		}
		assumed++
		claims, err := jwtClaims(c.Token)
		if err != nil {
			t.Fatalf("web identity token: %v", err)
		}
		podClaim, _ := claims["kubernetes.io"].(map[string]any)
		boundPod, _ := podClaim["pod"].(map[string]any)
		aud := fmt.Sprint(claims["aud"])
		if c.Role != appRole || !strings.Contains(aud, stsAudience) ||
			claims["sub"] != "system:serviceaccount:"+s.ns+":app" || boundPod["uid"] != string(pv.pod.UID) {
			t.Errorf("AssumeRoleWithWebIdentity role %s, token aud %s sub %v pod %v; want %s, %s, the app SA, pod %s",
				c.Role, aud, claims["sub"], boundPod, appRole, stsAudience, pv.pod.UID)
		}
	}
	if assumed == 0 {
		t.Fatalf("no AssumeRoleWithWebIdentity: %+v", calls)
	}
	for _, c := range awsReads(calls) {
		if w.proxy.roleOf(c.AccessKey) != appRole {
			t.Errorf("%s %s signed with %s (role %q), want the app role's STS credentials", c.Service, c.Operation,
				c.AccessKey, w.proxy.roleOf(c.AccessKey))
		}
	}
	// The mount went through the provider in the DaemonSet's pod: its log (read through the API
	// server and kubelet) has the mount of this pod.
	logs, err := podLogs(w.providerPodName)
	if err != nil {
		t.Fatalf("provider pod logs: %v", err)
	}
	if !strings.Contains(logs, s.ns) || !strings.Contains(logs, "p1") {
		t.Errorf("provider pod %s's log does not mention %s/p1:\n%s", w.providerPodName, s.ns, tailLines(logs, 20))
	}
	return pv
}

// podRotationUnchanged: with nothing changed in AWS, the next rotation reaches AWS (the provider
// is called: v1.6 on kubelet's republish, v1.5 by its poll) and the container sees nothing move.
func (s *suite) podRotationUnchanged(t *testing.T, pv *podVolume) {
	before, err := readInside(pv.pod)
	if err != nil {
		t.Fatal(err)
	}
	mark := w.proxy.mark()
	start := time.Now()
	err = w.procs.waitFor("a rotation reading AWS", 2*time.Minute, func() error {
		if len(awsReads(w.proxy.since(mark))) == 0 {
			return fmt.Errorf("no Secrets Manager or SSM read yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a rotation read AWS %v after the mark", time.Since(start).Round(10*time.Millisecond))
	time.Sleep(500 * time.Millisecond) // the rest of that rotation's reads and writes
	after, err := readInside(pv.pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := after.check(s.mainFiles("u1", "p1", "c1")); err != nil {
		t.Fatalf("inside the container: %v", err)
	}
	if after.data != before.data {
		t.Errorf("nothing changed, but ..data moved: %s -> %s", before.data, after.data)
	}
}

// podRotation: new values in AWS reach the running container (v1.6 through kubelet's
// republish, v1.5 through the driver's rotation reconciler), in one ..data swap, with the new
// versions in the pod status and the synced Secret updated.
func (s *suite) podRotation(t *testing.T, pv *podVolume) {
	before, err := readInside(pv.pod)
	if err != nil {
		t.Fatal(err)
	}
	v, err := w.moto.putSecret(region, "db/creds", `{"username":"u2","password":"p2"}`)
	if err != nil {
		t.Fatal(err)
	}
	s.credsVersion = v
	configVersion, err := w.moto.putParameter(region, "/app/config", "String", "c2")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var now *inside
	err = w.procs.waitFor("the rotated files inside the container", 2*time.Minute, func() error {
		if now, err = readInside(pv.pod); err != nil {
			return err
		}
		return now.check(s.mainFiles("u2", "p2", "c2"))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rotation seen inside the container %v after the change", time.Since(start).Round(10*time.Millisecond))
	if now.data == before.data {
		t.Errorf("..data did not move (%s)", now.data)
	}
	s.waitSPCPS(t, pv, s.mainVersions(configVersion))
	s.waitSecret(t, "main-synced", map[string]string{"username": "u2", "config": "c2"})
}

// podDeletion: deleting the pod (kubelet stops it and unmounts through the driver) leaves no
// mount and no volume directory on the host.
func (s *suite) podDeletion(t *testing.T, pv *podVolume) {
	if err := w.kube.CoreV1().Pods(s.ns).Delete(ctx(), pv.pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := waitPodGone(pv.pod, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("pod deleted (kubelet confirmed) %v after the request", time.Since(start).Round(10*time.Millisecond))
	// The garbage collector deletes the SecretProviderClassPodStatus (owned by the pod).
	if err := w.procs.waitFor("SecretProviderClassPodStatus garbage-collected", 60*time.Second, func() error {
		_, err := w.dyn.Resource(spcpsGVR).Namespace(s.ns).Get(ctx(), spcpsName(pv), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	}); err != nil {
		t.Error(err)
	}
	podDir := filepath.Join(w.kubelet, "pods", string(pv.pod.UID))
	err := w.procs.waitFor("pod directory removed", 60*time.Second, func() error {
		if mounts := mountsUnder(podDir); len(mounts) > 0 {
			return fmt.Errorf("still mounted: %v", mounts)
		}
		if _, err := os.Stat(podDir); err == nil {
			entries := []string{}
			_ = filepath.Walk(podDir, func(p string, _ os.FileInfo, _ error) error {
				entries = append(entries, strings.TrimPrefix(p, podDir))
				return nil
			})
			sort.Strings(entries)
			return fmt.Errorf("%s still has %v", podDir, entries)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
