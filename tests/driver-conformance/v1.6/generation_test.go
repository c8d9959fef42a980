package conformance

// Driver v1.6.x: grpc.NewClient("unix:"+socket) with grpc.WithAuthority("localhost"), and
// rotation is kubelet's periodic NodePublishVolume (requiresRepublish) through the node server,
// which never fills current_object_version.
var generation = driverGeneration{
	series:             "v1.6",
	authority:          func(string) string { return "localhost" },
	reconcilerRotation: false,
}
