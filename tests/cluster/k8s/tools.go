//go:build tools

// Package k8s only pins the Kubernetes binaries the cluster test builds.
package k8s

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
