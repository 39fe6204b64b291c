package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Completion in the shells themselves: bash's completion function offers
// commands, subcommands and a command's flags; fish's complete -C too; zsh
// registers the function. baton is on the PATH, as an installed one is.
func TestShellCompletion(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	require.NoError(t, os.Symlink(batonBin, filepath.Join(bin, "baton")))
	env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	shell := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %v: %s", name, args, out)
		return string(out)
	}

	bash := func(words ...string) []string {
		script := `source <(baton completion bash)
COMP_WORDS=(baton` + " " + strings.Join(quoteAll(words), " ") + `); COMP_CWORD=${#COMP_WORDS[@]}; ((COMP_CWORD--))
_baton; printf '%s\n' "${COMPREPLY[@]}"`
		return strings.Fields(shell("bash", "-c", script))
	}
	require.Equal(t, []string{"queue"}, bash("qu"))
	require.Equal(t, []string{"pause"}, bash("queue", "p"))
	require.Equal(t, []string{"up"}, bash("migrate", "u"))
	require.Equal(t, []string{"status"}, bash("migrate", "st"))
	require.Equal(t, []string{"--config"}, bash("worker", "--co"))
	require.Equal(t, []string{"--wait-for-migrations"}, bash("serve", "--wa"))
	require.Subset(t, bash("report", ""), []string{"queue_summary", "stage_latency", "periodic"})
	require.Subset(t, bash(""), []string{"submit", "completion", "--version"})

	if _, err := exec.LookPath("fish"); err == nil {
		out := shell("fish", "-c", "baton completion fish | source; complete -C 'baton queue p'")
		require.Equal(t, "pause", strings.TrimSpace(out))
	} else {
		t.Log("no fish: its completion is not tried")
	}
	if _, err := exec.LookPath("zsh"); err == nil {
		shell("zsh", "-c", "autoload -U compinit && compinit -u && source <(baton completion zsh) && (( $+_comps[baton] ))")
	} else {
		t.Log("no zsh: its completion is not tried")
	}

	r := baton(t, "", "", "completion", "powershell")
	require.Equal(t, 2, r.code)
	require.Equal(t, "baton: completion: unknown shell \"powershell\" (bash, zsh or fish)\n", r.stderr)
}

func quoteAll(words []string) []string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return q
}
