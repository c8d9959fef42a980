package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

var (
	spcGVR   = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasses"}
	spcpsGVR = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasspodstatuses"}
)

func ctx() context.Context { return context.Background() }

func (w *world) createNode() error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   nodeName,
		Labels: map[string]string{"kubernetes.io/os": "linux", "topology.kubernetes.io/region": region},
	}}
	_, err := w.kube.CoreV1().Nodes().Create(ctx(), node, metav1.CreateOptions{})
	return err
}

// applyDriverManifests creates or replaces every object of the driver release's
// manifest_staging/deploy (CRDs, CSIDriver, RBAC, ServiceAccount), except its DaemonSets: the
// driver runs here as a host process. The CSIDriver gets the token audiences our provider uses,
// as the driver chart's `tokenRequests` value sets them.
func (w *world) applyDriverManifests(deploy string) error {
	files, err := filepath.Glob(filepath.Join(deploy, "*.yaml"))
	if err != nil {
		return err
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) == 0 || u.GetKind() == "DaemonSet" {
				continue
			}
			if u.GetKind() == "CSIDriver" {
				_ = unstructured.SetNestedSlice(u.Object, []any{
					map[string]any{"audience": stsAudience},
					map[string]any{"audience": podIDAudience},
				}, "spec", "tokenRequests")
			}
			objs = append(objs, &u)
		}
	}
	// CRDs first, then wait until they are served.
	sort.SliceStable(objs, func(i, j int) bool {
		return objs[i].GetKind() == "CustomResourceDefinition" && objs[j].GetKind() != "CustomResourceDefinition"
	})
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(w.kube.Discovery()))
	for _, u := range objs {
		if u.GetKind() != "CustomResourceDefinition" {
			if err := w.procs.waitFor("the driver's CRDs served", 30*time.Second, func() error {
				mapper.Reset()
				_, err := mapper.RESTMapping(schema.GroupKind{Group: spcGVR.Group, Kind: "SecretProviderClassPodStatus"}, "v1")
				return err
			}); err != nil {
				return err
			}
		}
		mapping, err := mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
		if err != nil {
			return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
		}
		var ri = w.dyn.Resource(mapping.Resource)
		var client interface {
			Get(context.Context, string, metav1.GetOptions, ...string) (*unstructured.Unstructured, error)
			Create(context.Context, *unstructured.Unstructured, metav1.CreateOptions, ...string) (*unstructured.Unstructured, error)
			Update(context.Context, *unstructured.Unstructured, metav1.UpdateOptions, ...string) (*unstructured.Unstructured, error)
			Delete(context.Context, string, metav1.DeleteOptions, ...string) error
		} = ri
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			client = ri.Namespace(u.GetNamespace())
		}
		old, err := client.Get(ctx(), u.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = client.Create(ctx(), u, metav1.CreateOptions{})
		case err == nil:
			u.SetResourceVersion(old.GetResourceVersion())
			if _, err = client.Update(ctx(), u, metav1.UpdateOptions{}); apierrors.IsInvalid(err) {
				// An immutable field changed between driver releases: replace the object.
				if err = client.Delete(ctx(), u.GetName(), metav1.DeleteOptions{}); err == nil {
					u.SetResourceVersion("")
					_, err = client.Create(ctx(), u, metav1.CreateOptions{})
				}
			}
		}
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

func (w *world) csiDriver() (*storagev1.CSIDriver, error) {
	return w.kube.StorageV1().CSIDrivers().Get(ctx(), "secrets-store.csi.k8s.io", metav1.GetOptions{})
}

// helmInstall installs our chart (upgrades it when installed) with the test's directories,
// endpoints (the AWS proxy), the Pod Identity agent, no value cache (every mount reads AWS) and
// the given write mode.
func (w *world) helmInstall(driverWrites bool) error {
	values := map[string]any{
		"providerVolume":      w.providerDir,
		"kubeletPath":         w.kubelet,
		"driverWritesSecrets": driverWrites,
		"cache":               map[string]any{"ttl": "0s"},
		"endpoints": []string{
			"secretsmanager=" + w.proxy.url, "ssm=" + w.proxy.url, "sts=" + w.proxy.url,
		},
		"extraArgs": []string{"--pod-identity-endpoint=" + w.agent.url},
		"metrics":   map[string]any{"port": w.metricsPort},
		"log":       map[string]any{"level": "debug"},
	}
	if w.pods {
		// The image imported into the node's containerd; the API server where the pod reaches it
		// (no kube-proxy here, so not the kubernetes Service's ClusterIP).
		values["image"] = map[string]any{"repository": w.node.providerImage, "tag": w.node.providerTag, "pullPolicy": "Never"}
		values["extraEnv"] = []any{
			map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": w.hostAddr},
			map[string]any{"name": "KUBERNETES_SERVICE_PORT", "value": w.apiURL[strings.LastIndex(w.apiURL, ":")+1:]},
		}
	}
	data, err := yaml.Marshal(values)
	if err != nil {
		return err
	}
	file := filepath.Join(w.root, "values.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return err
	}
	cmd := exec.Command(w.helm, "upgrade", "--install", releaseName, w.chart, "--namespace", providerNS,
		"--kubeconfig", w.admin, "-f", file)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(w.root, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(w.root, "helm", "config"), "HELM_DATA_HOME="+filepath.Join(w.root, "helm", "data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("helm upgrade --install: %v\n%s", err, out)
	}
	return os.WriteFile(filepath.Join(w.logs, "helm.log"), out, 0o644)
}

// providerCommand is the provider's command line as our chart's DaemonSet has it: its container
// args, and its env with NODE_NAME resolved the way kubelet resolves the fieldRef. Returns the
// ServiceAccount the pod template runs as too.
func (w *world) providerCommand() (args []string, env []string, sa string, err error) {
	ds, err := w.kube.AppsV1().DaemonSets(providerNS).Get(ctx(), releaseName, metav1.GetOptions{})
	if err != nil {
		return nil, nil, "", err
	}
	spec := ds.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		return nil, nil, "", fmt.Errorf("DaemonSet has %d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
			env = append(env, e.Name+"="+nodeName)
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		default:
			return nil, nil, "", fmt.Errorf("env %s: unsupported valueFrom", e.Name)
		}
	}
	args = append(args, c.Command...)
	args = append(args, c.Args...)
	return args, env, spec.ServiceAccountName, nil
}

// token mints a token for namespace/sa through the TokenRequest API: bound to the pod when pod
// is set, with the given audience.
func (w *world) token(ns, sa, audience string, pod *corev1.Pod) (*authenticationv1.TokenRequest, error) {
	expiry := int64(3600)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{audience},
		ExpirationSeconds: &expiry,
	}}
	if pod != nil {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	return w.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx(), sa, req, metav1.CreateOptions{})
}

// reviewPodIdentityToken asks the API server (TokenReview) whether token is valid for the Pod
// Identity audience; returns the user it authenticates.
func (w *world) reviewPodIdentityToken(token string) (string, bool) {
	if token == "" {
		return "", false
	}
	tr, err := w.kube.AuthenticationV1().TokenReviews().Create(ctx(), &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{podIDAudience}},
	}, metav1.CreateOptions{})
	if err != nil || !tr.Status.Authenticated {
		return "", false
	}
	return tr.Status.User.Username, true
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as namespace/sa with a token
// the API server minted (default audience), as an in-cluster pod's projected token would.
func (w *world) serviceAccountKubeconfig(ns, sa string) (string, error) {
	tr, err := w.token(ns, sa, "https://kubernetes.default.svc", nil)
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", ns, sa, err)
	}
	path := filepath.Join(w.root, ns+"-"+sa+".kubeconfig")
	return path, w.pki.kubeconfig(path, w.apiURL, tr.Status.Token, "", "")
}

// ---------------------------------------------------------------------------------------------
// Provider and driver processes

// startProvider runs our binary with the chart's arguments, as the chart's ServiceAccount.
func (w *world) startProvider(name string) (*process, error) {
	args, env, sa, err := w.providerCommand()
	if err != nil {
		return nil, err
	}
	kubeconfig, err := w.serviceAccountKubeconfig(providerNS, sa)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(w.providerDir, "aws.sock.check"))
	cmd := exec.Command(w.providerBin, args...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"KUBECONFIG=" + kubeconfig,
		"HOME=" + w.root,
		"AWS_CONFIG_FILE=" + filepath.Join(w.root, "absent"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(w.root, "absent"),
		"AWS_EC2_METADATA_DISABLED=true",
	}, env...)
	p, err := startProcess(name, w.logs, cmd)
	if err != nil {
		return nil, err
	}
	w.procs.add(p)
	ready := "http://127.0.0.1:" + strconv.Itoa(w.metricsPort) + "/readyz"
	err = w.procs.waitFor(name+" /readyz", 30*time.Second, func() error {
		if _, err := os.Stat(filepath.Join(w.providerDir, "aws.sock")); err != nil {
			return err
		}
		return httpStatus(ready, 200)
	})
	return p, err
}

// startDriver runs the driver release as root, talking to the provider directory, with
// rotation on (a 2 s poll interval) and KUBECONFIG set (v1.5's rotation reads only that).
func (w *world) startDriver(version string) (*process, string, error) {
	kubeconfig, err := w.serviceAccountKubeconfig(driverSANS, driverSA)
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(w.root, "driver-"+version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	socket := filepath.Join(dir, "csi.sock")
	_ = os.Remove(socket)
	metrics, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(w.drivers[version].bin,
		"--endpoint=unix://"+socket,
		"--nodeid="+nodeName,
		"--provider-volume="+w.providerDir,
		"--additional-provider-volume-paths="+w.providerDir,
		"--kubeconfig="+kubeconfig,
		"--metrics-addr=127.0.0.1:"+strconv.Itoa(metrics),
		"--enable-secret-rotation=true",
		"--rotation-poll-interval="+pollInterval.String(),
		"--provider-health-check=false",
		"-v=2")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	p, err := startProcess("driver-"+version, w.logs, cmd)
	if err != nil {
		return nil, "", err
	}
	w.procs.add(p)
	err = w.procs.waitFor("driver "+version+" CSI socket", 60*time.Second, func() error {
		return csiIdentity(socket)
	})
	return p, socket, err
}

func httpStatus(url string, want int) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}
