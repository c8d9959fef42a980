// Package cluster runs csi-provider-aws in a real control plane: etcd, kube-apiserver (RBAC on),
// the real Secrets Store CSI driver binaries (v1.6.x and v1.5.x) as root host processes, our
// chart installed with `helm install`, the provider started with the arguments of the chart's
// DaemonSet and authenticated as the chart's ServiceAccount, moto behind a proxy that can deny
// or fail, and a Pod Identity agent stand-in. This test acts as kubelet: it creates the Pod
// objects, mints their tokens through the TokenRequest API and sends NodePublishVolume /
// NodeUnpublishVolume to the driver's CSI socket. See README.md.
package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	nodeName      = "node-1"
	region        = "us-west-2"
	failoverRgn   = "us-east-1"
	providerNS    = "kube-system"
	releaseName   = "csi-provider-aws"
	driverSANS    = "kube-system"
	driverSA      = "secrets-store-csi-driver"
	pollInterval  = 1 * time.Second
	stsAudience   = "sts.amazonaws.com"
	podIDAudience = "pods.eks.amazonaws.com"
)

// world is everything started once for the whole package.
type world struct {
	root        string
	logs        string
	kubelet     string // the kubelet root directory the test plays
	providerDir string // --provider-volume of the provider and of the driver
	pki         *pki
	procs       *stack
	apiURL      string
	admin       string // admin kubeconfig
	kube        *kubernetes.Clientset
	restCfg     *rest.Config
	dyn         dynamic.Interface
	moto        *moto
	proxy       *awsProxy
	agent       *agent

	helm, chart, providerBin string
	drivers                  map[string]driverBuild // "v1.6", "v1.5"
	metricsPort              int

	// The cluster-pods mode (CLUSTER_PODS=1, pods_test.go): a real kubelet and containerd run
	// the chart's DaemonSet pod and the app pods; hostAddr is the address of the test's bridge
	// (the node IP), where the API server, the AWS proxy and the agent listen.
	pods            bool
	hostAddr        string
	node            *node
	providerPodName string
}

type driverBuild struct {
	bin, deploy string
}

var w *world

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func need(key string) (string, error) {
	v := os.Getenv(key)
	if v == "" {
		return "", fmt.Errorf("%s is not set (run scripts/test.sh cluster)", key)
	}
	if _, err := os.Stat(v); err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return v, nil
}

func runMain(m *testing.M) (code int) {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	if os.Geteuid() != 0 {
		// The driver mounts tmpfs; scripts/test.sh skips (or fails under CI) before this.
		return fail(fmt.Errorf("must run as root (the driver mounts tmpfs)"))
	}
	env := map[string]string{}
	pods := os.Getenv("CLUSTER_PODS") == "1"
	keys := []string{"ETCD_BIN", "KUBE_APISERVER", "MOTO_SERVER", "VENV_PYTHON", "HELM", "CHART",
		"DRIVER_V16_BIN", "DRIVER_V16_DEPLOY", "DRIVER_V15_BIN", "DRIVER_V15_DEPLOY"}
	if pods {
		keys = append(keys, podsEnvKeys...)
	} else {
		keys = append(keys, "PROVIDER_BIN")
	}
	for _, key := range keys {
		v, err := need(key)
		if err != nil {
			return fail(err)
		}
		env[key] = v
	}
	root, err := os.MkdirTemp("", "cluster-test-")
	if err != nil {
		return fail(err)
	}
	w = &world{
		root:        root,
		logs:        filepath.Join(root, "logs"),
		kubelet:     filepath.Join(root, "kubelet"),
		providerDir: filepath.Join(root, "providers"),
		procs:       &stack{},
		helm:        env["HELM"],
		chart:       env["CHART"],
		providerBin: env["PROVIDER_BIN"],
		pods:        pods,
		hostAddr:    "127.0.0.1",
		drivers: map[string]driverBuild{
			"v1.6": {env["DRIVER_V16_BIN"], env["DRIVER_V16_DEPLOY"]},
			"v1.5": {env["DRIVER_V15_BIN"], env["DRIVER_V15_DEPLOY"]},
		},
	}
	for _, d := range []string{w.logs, filepath.Join(w.kubelet, "pods"), w.providerDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(err)
		}
	}
	defer func() {
		if w.node != nil {
			// Pods, kubelet, containerd and every change they made to the host, before the
			// control plane stops.
			w.node.down()
		}
		w.procs.stopAll()
		if w.proxy != nil {
			w.proxy.close()
		}
		if w.agent != nil {
			w.agent.close()
		}
		// Every mount the driver left under our directories (a failed test's), deepest first.
		for _, point := range mountsUnder(root) {
			if err := syscall.Unmount(point, syscall.MNT_DETACH); err != nil {
				fmt.Fprintf(os.Stderr, "cluster: unmount %s: %v\n", point, err)
			}
		}
		if w.node != nil {
			// Everything kubelet, containerd and the CNI plugins changed on the host is undone.
			if changes := w.node.hostChanges(); len(changes) > 0 {
				fmt.Fprintf(os.Stderr, "cluster: the host still differs after the node stopped: %v\n", changes)
				code = 1
			} else {
				fmt.Fprintln(os.Stderr, "cluster: host restored (sysctls, nft tables, paths, kubepods cgroups, bridge)")
			}
		}
		if code != 0 || os.Getenv("CLUSTER_KEEP") == "1" {
			fmt.Fprintf(os.Stderr, "cluster: logs kept in %s\n", w.logs)
			return
		}
		os.RemoveAll(root)
	}()
	start := time.Now()
	if err := w.up(env); err != nil {
		return fail(err)
	}
	fmt.Fprintf(os.Stderr, "cluster: control plane, moto and chart up in %v\n", time.Since(start).Round(time.Millisecond))
	code = m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "cluster: process logs in %s\n", w.logs)
	}
	return code
}

// up starts etcd, kube-apiserver, moto, the proxy and the agent, installs the driver's CRDs and
// RBAC and our chart.
func (w *world) up(env map[string]string) error {
	var err error
	if w.pods {
		// The node's network first: the API server listens on the bridge's address.
		if w.node, err = newNode(env); err != nil {
			return err
		}
		w.hostAddr = w.node.addr
	}
	if w.pki, err = newPKI(filepath.Join(w.root, "pki"), w.hostAddr); err != nil {
		return err
	}
	// etcd
	etcdPort, err := freePort()
	if err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	etcd, err := startProcess("etcd", w.logs, exec.Command(env["ETCD_BIN"],
		"--name=cluster-test", "--data-dir="+filepath.Join(w.root, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=cluster-test="+peerURL, "--unsafe-no-fsync", "--log-level=warn"))
	if err != nil {
		return err
	}
	w.procs.add(etcd)
	if err := w.procs.waitFor("etcd /health", 30*time.Second, func() error { return httpOK(etcdURL + "/health") }); err != nil {
		return err
	}

	// kube-apiserver
	apiPort, err := freePort()
	if err != nil {
		return err
	}
	w.apiURL = "https://" + w.hostAddr + ":" + strconv.Itoa(apiPort)
	authz := []string{"--authorization-mode=RBAC"}
	if w.pods {
		// kubelet authenticates as system:node:<node> (Node authorizer); the API server reaches
		// kubelet (exec, logs) at the node's InternalIP with the admin client certificate.
		authz = []string{"--authorization-mode=Node,RBAC",
			"--kubelet-client-certificate=" + w.pki.AdminCert, "--kubelet-client-key=" + w.pki.AdminKey,
			"--kubelet-preferred-address-types=InternalIP"}
	}
	api, err := startProcess("kube-apiserver", w.logs, exec.Command(env["KUBE_APISERVER"], append([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + w.hostAddr, "--advertise-address=" + w.hostAddr,
		"--secure-port=" + strconv.Itoa(apiPort),
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(w.root, "pki", "apiserver"),
		"--tls-cert-file=" + w.pki.ServerCert, "--tls-private-key-file=" + w.pki.ServerKey,
		"--client-ca-file=" + w.pki.CAFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + w.pki.SAPub,
		"--service-account-signing-key-file=" + w.pki.SAKey,
		"--api-audiences=https://kubernetes.default.svc," + stsAudience + "," + podIDAudience,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--profiling=false",
		"--v=1"}, authz...)...))
	if err != nil {
		return err
	}
	w.procs.add(api)
	w.admin = filepath.Join(w.root, "admin.kubeconfig")
	if err := w.pki.kubeconfig(w.admin, w.apiURL, "", w.pki.AdminCert, w.pki.AdminKey); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", w.admin)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 100, 200
	w.restCfg = cfg
	if w.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if w.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	if err := w.procs.waitFor("kube-apiserver /readyz", 90*time.Second, func() error {
		body, err := w.kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		if err != nil {
			return fmt.Errorf("%v %s", err, body)
		}
		return nil
	}); err != nil {
		return err
	}

	// moto, and the proxy and agent in this process
	motoPort, err := freePort()
	if err != nil {
		return err
	}
	motoURL := "http://127.0.0.1:" + strconv.Itoa(motoPort)
	// Through the venv's python: a venv copied from elsewhere keeps a stale shebang.
	motoCmd := exec.Command(env["VENV_PYTHON"], env["MOTO_SERVER"], "-H", "127.0.0.1", "-p", strconv.Itoa(motoPort))
	motoCmd.Env = append(os.Environ(), "AWS_CONFIG_FILE="+filepath.Join(w.root, "absent"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(w.root, "absent"))
	mp, err := startProcess("moto", w.logs, motoCmd)
	if err != nil {
		return err
	}
	w.procs.add(mp)
	if err := w.procs.waitFor("moto", 30*time.Second, func() error { return httpOK(motoURL + "/moto-api/") }); err != nil {
		return err
	}
	w.moto = &moto{url: motoURL}
	proxyPort, err := freePort()
	if err != nil {
		return err
	}
	if w.proxy, err = startAWSProxy(motoURL, w.hostAddr, proxyPort); err != nil {
		return err
	}
	agentPort, err := freePort()
	if err != nil {
		return err
	}
	if w.agent, err = startAgent(agentPort, w.hostAddr, w.reviewPodIdentityToken); err != nil {
		return err
	}

	// The node (its region label is the region of SecretProviderClasses that name none): in the
	// pods mode kubelet registers it.
	if w.pods {
		if err := w.node.up(w); err != nil {
			return err
		}
	} else if err := w.createNode(); err != nil {
		return err
	}
	// Our chart, with helm, against the real API server.
	if w.metricsPort, err = freePort(); err != nil {
		return err
	}
	return w.helmInstall(false)
}

func httpOK(url string) error {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}
