package main

import (
	"cmp"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release's version, stamped by scripts/release.sh
// (-ldflags "-X main.version=v1.2.3"); empty in other builds, which print
// the module version Go recorded.
var version string

// versionCmd prints the version and the commit the binary was built from,
// as Go's build information records them.
func versionCmd(args []string, stdout io.Writer) error {
	fs := newCommand("version", "baton version")
	if pos, err := fs.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fs.usage()
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintf(stdout, "baton %s (no build information) %s\n", cmp.Or(version, "(devel)"), runtime.Version())
		return nil
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	commit := settings["vcs.revision"]
	if commit == "" {
		commit = "unknown"
	} else if len(commit) > 12 {
		commit = commit[:12]
	}
	if settings["vcs.modified"] == "true" {
		commit += "+modified"
	}
	fmt.Fprintf(stdout, "baton %s (commit %s", cmp.Or(version, info.Main.Version), commit)
	if t := settings["vcs.time"]; t != "" {
		fmt.Fprintf(stdout, ", %s", t)
	}
	fmt.Fprintf(stdout, ") %s\n", runtime.Version())
	return nil
}
