//go:build tools

// Package k8s only pins the kubelet the cluster-pods test builds (v1.35: the last release that
// runs with containerd 1.x, which is what Debian ships).
package k8s

import (
	_ "k8s.io/kubernetes/cmd/kubelet"
)
