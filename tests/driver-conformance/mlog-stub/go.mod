// A stand-in for monis.app/mlog, which the driver's pkg/secrets-store imports for one
// mlog.Fatal call in its CSI server (never on the provider-client path these tests exercise).
// The Go module proxy reachable here refuses monis.app/mlog (403), so both conformance modules
// replace it with this directory. See ../README.md.
module monis.app/mlog

go 1.24
