// Package mlog is a minimal stand-in for monis.app/mlog: only what the Secrets Store CSI
// driver's pkg/secrets-store and pkg/rotation call (mlog.Fatal).
package mlog

import (
	"fmt"
	"os"
)

// Fatal logs err with optional key/value pairs and exits, like the real mlog.Fatal.
func Fatal(err error, keysAndValues ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"fatal:", err}, keysAndValues...)...)
	os.Exit(255)
}
