// Package mlog is a minimal stand-in for monis.app/mlog: only what the Secrets Store CSI
// driver's cmd/secrets-store-csi-driver, pkg/secrets-store and pkg/rotation call. Logging
// itself stays with klog, which the driver configures through its own flags (-v).
package mlog

import (
	"context"
	"fmt"
	"os"
)

// LogFormat is the output format the driver asks for.
type LogFormat string

// The two formats the driver's --log-format-json flag chooses between.
const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

// Setup returns the function the driver defers at exit; nothing to flush here.
func Setup() func() { return func() {} }

// ValidateAndSetKlogLevelAndFormatGlobally accepts any klog level (klog.Level is an int32) and
// either format; klog's own flags already apply the level.
func ValidateAndSetKlogLevelAndFormatGlobally[L ~int32](_ context.Context, level L, format LogFormat) error {
	if format != FormatText && format != FormatJSON {
		return fmt.Errorf("unknown log format %q", format)
	}
	if level < 0 {
		return fmt.Errorf("invalid log level %d", level)
	}
	return nil
}

// Error logs msg and err with optional key/value pairs.
func Error(msg string, err error, keysAndValues ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"error:", msg, err}, keysAndValues...)...)
}

// Fatal logs err with optional key/value pairs and exits, like the real mlog.Fatal.
func Fatal(err error, keysAndValues ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"fatal:", err}, keysAndValues...)...)
	os.Exit(255)
}
