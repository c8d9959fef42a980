//go:build tools

// Package k8s only pins the controllers the cluster-pods test builds: kube-controller-manager
// (the DaemonSet controller, the garbage collector, the kube-root-ca.crt publisher) and
// kube-scheduler, at the API server's version.
package k8s

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
