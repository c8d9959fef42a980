// A stand-in for monis.app/mlog with what the Secrets Store CSI driver's main package calls
// (Setup, FormatText/FormatJSON, ValidateAndSetKlogLevelAndFormatGlobally, Error, Fatal). The
// Go module proxy reachable here refuses monis.app/mlog (403); the cluster test builds the
// driver binary with `replace monis.app/mlog => <this directory>`. See ../README.md.
module monis.app/mlog

go 1.24
