package conformance

// Driver v1.5.x: grpc.Dial(socket, WithContextDialer(unix)) with no authority option, so gRPC
// derives :authority from the dial target: the socket path itself. Rotation is a separate
// reconciler that sends the SPC parameters plus pod identity only, secrets "{}" (a marshalled
// empty map) and the current object versions.
var generation = driverGeneration{
	series:             "v1.5",
	authority:          func(socket string) string { return socket },
	reconcilerRotation: true,
}
