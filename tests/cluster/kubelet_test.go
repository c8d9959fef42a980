package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var httpClient = &http.Client{Timeout: 2 * time.Second}

const volumeName = "secrets"

func dialCSI(socket string) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// csiIdentity is nil once the driver answers GetPluginInfo on socket.
func csiIdentity(socket string) error {
	if _, err := os.Stat(socket); err != nil {
		return err
	}
	conn, err := dialCSI(socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	c, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = csi.NewIdentityClient(conn).GetPluginInfo(c, &csi.GetPluginInfoRequest{})
	return err
}

// podVolume is one Pod object with a Secrets Store CSI inline volume, and what kubelet would
// derive from it: the target path, the volume handle and the service-account tokens.
type podVolume struct {
	pod      *corev1.Pod
	spc      string
	target   string
	volumeID string
	tokens   string // the csi.storage.k8s.io/serviceAccount.tokens attribute
	raw      map[string]string
}

// newPod creates the Pod (bound to our node; no kubelet runs, so it stays Pending) and mints its
// tokens for every audience of the CSIDriver's tokenRequests, bound to the pod, as kubelet does.
func (w *world) newPod(ns, name, sa, spc string) (*podVolume, error) {
	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                     nodeName,
			ServiceAccountName:           sa,
			AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{
				Name: "app", Image: "app:local", ImagePullPolicy: corev1.PullNever,
				VolumeMounts: []corev1.VolumeMount{{Name: volumeName, MountPath: "/mnt/secrets", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: volumeName, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: "secrets-store.csi.k8s.io", ReadOnly: &[]bool{true}[0],
				VolumeAttributes: map[string]string{"secretProviderClass": spc},
			}}}},
		},
	}
	pod, err := w.kube.CoreV1().Pods(ns).Create(ctx(), pod, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	pv := &podVolume{
		pod:      pod,
		spc:      spc,
		target:   filepath.Join(w.kubelet, "pods", string(pod.UID), "volumes", "kubernetes.io~csi", volumeName, "mount"),
		volumeID: fmt.Sprintf("csi-%x", sha256.Sum256([]byte(string(pod.UID)+volumeName))),
		raw:      map[string]string{},
	}
	driver, err := w.csiDriver()
	if err != nil {
		return nil, err
	}
	tokens := map[string]map[string]string{}
	for _, tr := range driver.Spec.TokenRequests {
		t, err := w.token(ns, sa, tr.Audience, pod)
		if err != nil {
			return nil, fmt.Errorf("token %s for %s/%s: %w", tr.Audience, ns, sa, err)
		}
		tokens[tr.Audience] = map[string]string{
			"token":               t.Status.Token,
			"expirationTimestamp": t.Status.ExpirationTimestamp.UTC().Format(time.RFC3339),
		}
		pv.raw[tr.Audience] = t.Status.Token
	}
	data, _ := json.Marshal(tokens)
	pv.tokens = string(data)
	// kubelet creates the volume directory (and writes vol_data.json there); the driver creates
	// the mount point itself.
	return pv, os.MkdirAll(filepath.Dir(pv.target), 0o750)
}

// publish sends NodePublishVolume as kubelet does for an inline ephemeral volume (the same
// request again is kubelet's periodic republish when the CSIDriver has requiresRepublish).
func (pv *podVolume) publish(socket string, withTokens bool) error {
	return pv.publishWithin(socket, withTokens, 2*time.Minute) // kubelet's NodePublishVolume deadline
}

func (pv *podVolume) publishWithin(socket string, withTokens bool, deadline time.Duration) error {
	conn, err := dialCSI(socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	attrs := map[string]string{
		"secretProviderClass":                    pv.spc,
		"csi.storage.k8s.io/pod.name":            pv.pod.Name,
		"csi.storage.k8s.io/pod.namespace":       pv.pod.Namespace,
		"csi.storage.k8s.io/pod.uid":             string(pv.pod.UID),
		"csi.storage.k8s.io/serviceAccount.name": pv.pod.Spec.ServiceAccountName,
		"csi.storage.k8s.io/ephemeral":           "true",
	}
	if withTokens {
		attrs["csi.storage.k8s.io/serviceAccount.tokens"] = pv.tokens
	}
	c, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	_, err = csi.NewNodeClient(conn).NodePublishVolume(c, &csi.NodePublishVolumeRequest{
		VolumeId:   pv.volumeID,
		TargetPath: pv.target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY},
		},
		Readonly:      true,
		VolumeContext: attrs,
	})
	return err
}

// unpublish sends NodeUnpublishVolume, then removes the volume directory as kubelet does.
func (pv *podVolume) unpublish(socket string) error {
	conn, err := dialCSI(socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = csi.NewNodeClient(conn).NodeUnpublishVolume(c, &csi.NodeUnpublishVolumeRequest{
		VolumeId: pv.volumeID, TargetPath: pv.target,
	})
	return err
}

// remove deletes the Pod object (grace 0: no kubelet will confirm) and its
// SecretProviderClassPodStatus (which the garbage collector would delete through its owner
// reference; no controller manager runs here).
func (w *world) remove(pv *podVolume) {
	zero := int64(0)
	_ = w.kube.CoreV1().Pods(pv.pod.Namespace).Delete(ctx(), pv.pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	_ = w.dyn.Resource(spcpsGVR).Namespace(pv.pod.Namespace).Delete(ctx(), spcpsName(pv), metav1.DeleteOptions{})
	_ = os.RemoveAll(filepath.Join(w.kubelet, "pods", string(pv.pod.UID)))
}

func spcpsName(pv *podVolume) string {
	return pv.pod.Name + "-" + pv.pod.Namespace + "-" + pv.spc
}
