package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// versionCmd prints the module version and the commit the binary was built
// from, as Go's build information records them.
func versionCmd(args []string, stdout io.Writer) error {
	fs := newCommand("version", "baton version")
	if pos, err := fs.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return fs.usage()
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintf(stdout, "baton (no build information) %s\n", runtime.Version())
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
	fmt.Fprintf(stdout, "baton %s (commit %s", info.Main.Version, commit)
	if t := settings["vcs.time"]; t != "" {
		fmt.Fprintf(stdout, ", %s", t)
	}
	fmt.Fprintf(stdout, ") %s\n", runtime.Version())
	return nil
}
