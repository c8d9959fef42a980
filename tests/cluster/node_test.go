package cluster

// The node of the cluster-pods mode (CLUSTER_PODS=1): a bridge of the test's own (its address is
// the node IP, and where the API server, the AWS proxy and the Pod Identity agent listen),
// containerd as the test's own process with its own configuration and directories, kubelet
// v1.35 with the test's certificates, the images built by run.sh imported into containerd, and
// a small plugin registrar that registers the host driver process with kubelet. down() stops it
// all and undoes every change kubelet, containerd and the CNI plugins made to the host.

import (
	"context"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	regv1 "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// podsEnvKeys are what run.sh passes in the pods mode.
var podsEnvKeys = []string{"KUBELET_BIN", "CONTAINERD_BIN", "CTR_BIN", "CNI_BIN_DIR", "IMAGES_DIR",
	"KUBE_CONTROLLER_MANAGER", "KUBE_SCHEDULER"}

const (
	driverName    = "secrets-store.csi.k8s.io"
	pauseImage    = "docker.io/library/cluster-pause:local"
	appImage      = "docker.io/library/cluster-app:local"
	providerImage = "docker.io/library/csi-provider-aws"
	providerTag   = "cluster-pods"
)

// hostState is what the node may change on the host, as it was before.
type hostState struct {
	sysctls  map[string]string
	nft      []string        // `nft list tables` lines
	paths    map[string]bool // host paths kubelet/containerd may create → existed
	netns    []string        // entries of /run/netns
	cgroups  map[string]bool // /sys/fs/cgroup/<controller>/kubepods → existed
	hasNFT   bool
	hostRoot string
}

var watchedSysctls = []string{
	"net.ipv4.ip_forward", "vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
	"kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes",
}

var watchedPaths = []string{"/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/run/netns", "/var/run/netns", "/var/lib/cni", "/etc/cni", "/opt/cni"}

type node struct {
	dir, bridge, addr, subnet string
	kubeletBin, containerdBin string
	kcmBin, schedulerBin      string
	kcm, scheduler            *process
	ctrBin, cniBin, images    string
	providerImage             string
	providerTag               string
	before                    *hostState
	bridgeMade                bool
	containerd, kubelet       *process
	criSock                   string
	reg                       *registrar
}

// newNode records the host state and makes the bridge (its address is the node IP).
func newNode(env map[string]string) (*node, error) {
	n := &node{
		dir: filepath.Join(w.root, "node"), kubeletBin: env["KUBELET_BIN"], containerdBin: env["CONTAINERD_BIN"],
		ctrBin: env["CTR_BIN"], cniBin: env["CNI_BIN_DIR"], images: env["IMAGES_DIR"],
		kcmBin: env["KUBE_CONTROLLER_MANAGER"], schedulerBin: env["KUBE_SCHEDULER"],
		providerImage: providerImage, providerTag: providerTag,
	}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return nil, err
	}
	n.before = snapshotHost()
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	n.bridge = "cpa-" + hex.EncodeToString(b)
	// A /24 in 10.200.0.0/13 no address of this host is in.
	used := hostAddrs()
	for i := 0; i < 200; i++ {
		third := 200 + int(b[0]+byte(i))%50
		fourth := int(b[1]+byte(i*7)) % 250
		subnet := fmt.Sprintf("10.%d.%d", third, fourth)
		if !slices.ContainsFunc(used, func(a string) bool { return strings.HasPrefix(a, subnet+".") }) {
			n.subnet = subnet
			break
		}
	}
	if n.subnet == "" {
		return nil, fmt.Errorf("no free /24 for the node's bridge")
	}
	n.addr = n.subnet + ".1"
	// run.sh deletes the link named here if the test dies before deleting it.
	if err := os.WriteFile(filepath.Join(n.dir, "bridge"), []byte(n.bridge), 0o644); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"link", "add", n.bridge, "type", "bridge"},
		{"addr", "add", n.addr + "/24", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			n.deleteBridge()
			return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		n.bridgeMade = true
	}
	return n, nil
}

func hostAddrs() []string {
	var out []string
	ifaces, _ := net.InterfaceAddrs()
	for _, a := range ifaces {
		out = append(out, a.String())
	}
	return out
}

func (n *node) deleteBridge() {
	if !n.bridgeMade {
		return
	}
	if out, err := exec.Command("ip", "link", "del", n.bridge).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cluster: ip link del %s: %v: %s\n", n.bridge, err, out)
	}
	n.bridgeMade = false
}

func snapshotHost() *hostState {
	h := &hostState{sysctls: map[string]string{}, paths: map[string]bool{}, cgroups: map[string]bool{}}
	for _, k := range watchedSysctls {
		if b, err := os.ReadFile(sysctlPath(k)); err == nil {
			h.sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	if out, err := exec.Command("nft", "list", "tables").Output(); err == nil {
		h.hasNFT = true
		h.nft = nonEmptyLines(string(out))
	}
	for _, p := range watchedPaths {
		_, err := os.Lstat(p)
		h.paths[p] = err == nil
	}
	h.netns = dirNames("/run/netns")
	for _, c := range cgroupControllers() {
		_, err := os.Stat(filepath.Join(c, "kubepods"))
		h.cgroups[c] = err == nil
	}
	return h
}

func sysctlPath(k string) string { return "/proc/sys/" + strings.ReplaceAll(k, ".", "/") }

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func dirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// cgroupControllers are the cgroup hierarchies kubelet's cgroupfs driver creates kubepods in
// (v1: one per controller; v2: the unified root).
func cgroupControllers() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	var out []string
	for _, name := range dirNames("/sys/fs/cgroup") {
		p := filepath.Join("/sys/fs/cgroup", name)
		if st, err := os.Lstat(p); err == nil && st.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

// up starts containerd (with the CNI config for the bridge), imports the images, starts kubelet
// and waits for the node to be Ready.
func (n *node) up(w *world) error {
	if err := n.startContainerd(); err != nil {
		return err
	}
	for _, img := range []string{"pause.tar", "app.tar", "provider.tar"} {
		out, err := exec.Command(n.ctrBin, "--address", n.criSock, "-n", "k8s.io", "images", "import",
			filepath.Join(n.images, img)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr images import %s: %v: %s", img, err, out)
		}
	}
	if err := n.startKubelet(w); err != nil {
		return err
	}
	return n.startControllers(w)
}

// startControllers runs kube-controller-manager (the DaemonSet controller, the garbage collector
// and the kube-root-ca.crt publisher the default token volume needs) and kube-scheduler, with
// the admin credentials, serving only on 127.0.0.1.
func (n *node) startControllers(w *world) error {
	kcmPort, err := freePort()
	if err != nil {
		return err
	}
	schedPort, err := freePort()
	if err != nil {
		return err
	}
	kcm, err := startProcess("kube-controller-manager", w.logs, exec.Command(n.kcmBin,
		"--kubeconfig="+w.admin, "--authentication-kubeconfig="+w.admin, "--authorization-kubeconfig="+w.admin,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--cert-dir="+filepath.Join(n.dir, "kcm-certs"),
		"--leader-elect=false", "--root-ca-file="+w.pki.CAFile,
		"--controllers=daemonset-controller,garbage-collector-controller,root-ca-certificate-publisher-controller",
		"--v=1"))
	if err != nil {
		return err
	}
	n.kcm = kcm
	w.procs.add(kcm)
	sched, err := startProcess("kube-scheduler", w.logs, exec.Command(n.schedulerBin,
		"--kubeconfig="+w.admin, "--authentication-kubeconfig="+w.admin, "--authorization-kubeconfig="+w.admin,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--cert-dir="+filepath.Join(n.dir, "scheduler-certs"),
		"--leader-elect=false", "--v=1"))
	if err != nil {
		return err
	}
	n.scheduler = sched
	w.procs.add(sched)
	return w.procs.waitFor("kube-root-ca.crt published in "+providerNS, 60*time.Second, func() error {
		_, err := w.kube.CoreV1().ConfigMaps(providerNS).Get(ctx(), "kube-root-ca.crt", metav1.GetOptions{})
		return err
	})
}

func (n *node) startContainerd() error {
	d := filepath.Join(n.dir, "containerd")
	cniConf := filepath.Join(d, "cni")
	for _, sub := range []string{"root", "state", "cni", "cni-ipam"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	n.criSock = filepath.Join(d, "containerd.sock")
	// A bridge of our own, host-local addresses in our directory, no gateway, masquerade or port
	// maps (so no iptables rules and no forwarding): pods reach the node address on the bridge.
	conf := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "cluster-pods", "plugins": [{
  "type": "bridge", "bridge": %q, "isGateway": false, "ipMasq": false, "hairpinMode": false,
  "ipam": {"type": "host-local", "dataDir": %q,
    "ranges": [[{"subnet": "%s.0/24", "rangeStart": "%s.10", "rangeEnd": "%s.250"}]]}}]}
`, n.bridge, filepath.Join(d, "cni-ipam"), n.subnet, n.subnet, n.subnet)
	// Atomically: containerd reloads a half-written file.
	tmp := filepath.Join(d, "10-cluster-pods.conflist.tmp")
	if err := os.WriteFile(tmp, []byte(conf), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(cniConf, "10-cluster-pods.conflist")); err != nil {
		return err
	}
	// The streaming server (exec, logs through kubelet) on a port below 32768, like every other.
	streamPort, err := freePort()
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # This machine's processes lack CAP_SYS_RESOURCE: a negative oom_score_adj is refused.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "%d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, filepath.Join(d, "root"), filepath.Join(d, "state"), n.criSock, n.criSock+".ttrpc", filepath.Join(d, "opt"),
		pauseImage, streamPort, n.cniBin, cniConf)
	cfgFile := filepath.Join(d, "config.toml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	p, err := startProcess("containerd", w.logs, exec.Command(n.containerdBin, "--config", cfgFile))
	if err != nil {
		return err
	}
	n.containerd = p
	w.procs.add(p)
	return w.procs.waitFor("containerd CRI", 60*time.Second, func() error {
		c, err := n.cri()
		if err != nil {
			return err
		}
		defer c.close()
		cx, cancel := context.WithTimeout(ctx(), 2*time.Second)
		defer cancel()
		_, err = c.rt.Version(cx, &runtimeapi.VersionRequest{})
		return err
	})
}

type criClient struct {
	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient
}

func (c *criClient) close() { _ = c.conn.Close() }

func (n *node) cri() (*criClient, error) {
	if _, err := os.Stat(n.criSock); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+n.criSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &criClient{conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn)}, nil
}

func (n *node) startKubelet(w *world) error {
	d := filepath.Join(n.dir, "kubelet")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	clientCert, clientKey, err := w.pki.issue("kubelet-client",
		pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}}, false)
	if err != nil {
		return err
	}
	servingCert, servingKey, err := w.pki.issue("kubelet-serving", pkix.Name{CommonName: nodeName}, true)
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(d, "kubelet.kubeconfig")
	if err := w.pki.kubeconfig(kubeconfig, w.apiURL, "", clientCert, clientKey); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	healthz, err := freePort()
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
tlsCertFile: %q
tlsPrivateKeyFile: %q
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
podLogsDir: %q
resolvConf: ""
makeIPTablesUtilChains: false
syncFrequency: 10s
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`, n.addr, port, healthz, w.pki.CAFile, servingCert, servingKey, n.criSock, filepath.Join(d, "pod-logs"))
	cfgFile := filepath.Join(d, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	p, err := startProcess("kubelet", w.logs, exec.Command(n.kubeletBin,
		"--config="+cfgFile, "--kubeconfig="+kubeconfig, "--root-dir="+w.kubelet,
		"--hostname-override="+nodeName, "--node-ip="+n.addr,
		"--node-labels=topology.kubernetes.io/region="+region, "--v=2"))
	if err != nil {
		return err
	}
	n.kubelet = p
	w.procs.add(p)
	return w.procs.waitFor("node "+nodeName+" Ready", 90*time.Second, func() error {
		node, err := w.kube.CoreV1().Nodes().Get(ctx(), nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("Ready %s: %s", c.Status, c.Message)
			}
		}
		return fmt.Errorf("no Ready condition")
	})
}

// ---------------------------------------------------------------------------------------------
// Plugin registration: what node-driver-registrar does, on kubelet's plugin-registration socket.

type registrar struct {
	regv1.UnimplementedRegistrationServer
	endpoint   string
	socket     string
	server     *grpc.Server
	registered chan string // "" when kubelet reports success, else its error
}

func (r *registrar) GetInfo(context.Context, *regv1.InfoRequest) (*regv1.PluginInfo, error) {
	return &regv1.PluginInfo{Type: regv1.CSIPlugin, Name: driverName, Endpoint: r.endpoint, SupportedVersions: []string{"1.0.0"}}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *regv1.RegistrationStatus) (*regv1.RegistrationStatusResponse, error) {
	msg := ""
	if !s.PluginRegistered {
		msg = "not registered: " + s.Error
	}
	select {
	case r.registered <- msg:
	default:
	}
	return &regv1.RegistrationStatusResponse{}, nil
}

// register makes kubelet register the driver listening on socket, and waits until kubelet says
// so and the CSINode lists the driver.
func (n *node) register(socket string) error {
	n.unregister()
	dir := filepath.Join(w.kubelet, "plugins_registry")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	// A short name: a unix socket path has at most 107 bytes.
	r := &registrar{endpoint: socket, socket: filepath.Join(dir, "sscsi.sock"), registered: make(chan string, 1)}
	_ = os.Remove(r.socket)
	l, err := net.Listen("unix", r.socket)
	if err != nil {
		return err
	}
	r.server = grpc.NewServer()
	regv1.RegisterRegistrationServer(r.server, r)
	go func() { _ = r.server.Serve(l) }()
	n.reg = r
	var status *string
	return w.procs.waitFor("kubelet registers "+driverName, 60*time.Second, func() error {
		if status == nil {
			select {
			case s := <-r.registered:
				status = &s
			default:
				return fmt.Errorf("kubelet has not called NotifyRegistrationStatus")
			}
		}
		if *status != "" {
			return fmt.Errorf("kubelet: %s", *status)
		}
		csiNode, err := w.kube.StorageV1().CSINodes().Get(ctx(), nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, d := range csiNode.Spec.Drivers {
			if d.Name == driverName && d.NodeID == nodeName {
				return nil
			}
		}
		return fmt.Errorf("CSINode drivers %v", csiNode.Spec.Drivers)
	})
}

// unregister removes the registration socket (kubelet deregisters the driver).
func (n *node) unregister() {
	if n.reg == nil {
		return
	}
	n.reg.server.Stop()
	_ = os.Remove(n.reg.socket)
	n.reg = nil
}

// ---------------------------------------------------------------------------------------------
// Teardown

// deleteAllPods deletes every pod and waits (up to timeout) until kubelet has confirmed each
// deletion (its containers stopped, its volumes unmounted).
func deleteAllPods(timeout time.Duration) error {
	pods, err := w.kube.CoreV1().Pods("").List(ctx(), metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		_ = w.kube.CoreV1().Pods(p.Namespace).Delete(ctx(), p.Name, metav1.DeleteOptions{})
	}
	deadline := time.Now().Add(timeout)
	for {
		pods, err := w.kube.CoreV1().Pods("").List(ctx(), metav1.ListOptions{})
		if err == nil && len(pods.Items) == 0 {
			return nil
		}
		if aliveErr := w.procs.alive(); aliveErr != nil {
			return fmt.Errorf("deleting the pods: %w", aliveErr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pods not deleted within %v: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// down stops the pods, kubelet and containerd (in that order) and restores the host.
func (n *node) down() {
	warn := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "cluster: node: "+format+"\n", args...) }
	// The controllers first: the DaemonSet controller would recreate its pod.
	for _, p := range []*process{n.scheduler, n.kcm} {
		if p != nil {
			p.stop()
			w.procs.remove(p)
		}
	}
	if n.kubelet != nil && !n.kubelet.exited() {
		if err := deleteAllPods(90 * time.Second); err != nil {
			warn("%v", err)
		}
	}
	n.unregister()
	if n.kubelet != nil {
		n.kubelet.stop()
		w.procs.remove(n.kubelet)
	}
	// Whatever kubelet left running: stop and remove every sandbox through the CRI (this tears
	// down its network namespace and veth through the CNI plugins).
	if n.containerd != nil && !n.containerd.exited() {
		if c, err := n.cri(); err == nil {
			cx, cancel := context.WithTimeout(ctx(), time.Minute)
			if list, err := c.rt.ListPodSandbox(cx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
				for _, sb := range list.Items {
					if _, err := c.rt.StopPodSandbox(cx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
						warn("StopPodSandbox %s: %v", sb.Id, err)
					}
					if _, err := c.rt.RemovePodSandbox(cx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
						warn("RemovePodSandbox %s: %v", sb.Id, err)
					}
				}
			} else {
				warn("ListPodSandbox: %v", err)
			}
			cancel()
			c.close()
		}
	}
	if n.containerd != nil {
		n.containerd.stop()
		w.procs.remove(n.containerd)
	}
	n.restoreHost(warn)
}

func (n *node) restoreHost(warn func(string, ...any)) {
	b := n.before
	undo := func(what string) { fmt.Fprintf(os.Stderr, "cluster: node: undo %s\n", what) }
	// Mounts under our directory (kubelet's shared bind mount of its root, pod volumes,
	// containerd's overlay and shm mounts) are undone by runMain; network namespaces the CRI
	// left behind here.
	for _, name := range dirNames("/run/netns") {
		if !slices.Contains(b.netns, name) {
			p := filepath.Join("/run/netns", name)
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
			if err := os.Remove(p); err != nil {
				warn("remove %s: %v", p, err)
			} else {
				undo("network namespace " + p)
			}
		}
	}
	// kubepods cgroups (cgroupfs driver), deepest first, where they were not before.
	for _, c := range cgroupControllers() {
		if b.cgroups[c] {
			continue
		}
		root := filepath.Join(c, "kubepods")
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil {
				warn("rmdir %s: %v", dirs[i], err)
			}
		}
		if len(dirs) > 0 {
			undo(fmt.Sprintf("cgroup %s (%d directories)", root, len(dirs)))
		}
	}
	if n.bridgeMade {
		undo("link " + n.bridge)
	}
	n.deleteBridge()
	for k, v := range b.sysctls {
		now, err := os.ReadFile(sysctlPath(k))
		if err == nil && strings.TrimSpace(string(now)) != v {
			if err := os.WriteFile(sysctlPath(k), []byte(v), 0o644); err != nil {
				warn("restore sysctl %s=%s: %v", k, v, err)
			} else {
				undo(fmt.Sprintf("sysctl %s=%s (kubelet set %s)", k, v, strings.TrimSpace(string(now))))
			}
		}
	}
	if b.hasNFT {
		if out, err := exec.Command("nft", "list", "tables").Output(); err == nil {
			for _, t := range nonEmptyLines(string(out)) {
				if slices.Contains(b.nft, t) {
					continue
				}
				// "table <family> <name>"
				f := strings.Fields(t)
				if len(f) == 3 {
					if out, err := exec.Command("nft", "delete", "table", f[1], f[2]).CombinedOutput(); err != nil {
						warn("nft delete %s: %v: %s", t, err, out)
					} else {
						undo("nft " + t)
					}
				}
			}
		}
	}
	for _, p := range watchedPaths {
		if b.paths[p] {
			continue
		}
		if _, err := os.Lstat(p); err == nil {
			if err := os.RemoveAll(p); err != nil {
				warn("remove %s: %v", p, err)
			} else {
				undo("path " + p)
			}
		}
	}
}

// hostChanges describes what differs from the recorded state (empty when restored).
func (n *node) hostChanges() []string {
	now := snapshotHost()
	var out []string
	for k, v := range n.before.sysctls {
		if now.sysctls[k] != v {
			out = append(out, fmt.Sprintf("sysctl %s=%s (was %s)", k, now.sysctls[k], v))
		}
	}
	for _, t := range now.nft {
		if !slices.Contains(n.before.nft, t) {
			out = append(out, "nft "+t)
		}
	}
	for p, existed := range n.before.paths {
		if now.paths[p] != existed {
			out = append(out, "path "+p)
		}
	}
	for c, existed := range n.before.cgroups {
		if now.cgroups[c] != existed {
			out = append(out, "cgroup "+c+"/kubepods")
		}
	}
	if _, err := net.InterfaceByName(n.bridge); err == nil {
		out = append(out, "link "+n.bridge)
	}
	// No process of the node is left (containerd's shims name its socket on their command line).
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && n.criSock != "" && strings.Contains(string(b), n.criSock) {
			out = append(out, "process "+filepath.Base(filepath.Dir(p))+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
