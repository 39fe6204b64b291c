package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// The shells' scripts are thin: each asks `baton __complete WORDS…` (the
// words after baton, the one being typed last) for the candidates, so that
// the commands, their subcommands and their flags are known in one place.
// Where baton offers nothing (a --config FILE, say), the shell completes
// file names.
const (
	bashCompletion = `# baton completion for bash: source <(baton completion bash)
_baton() {
	local IFS=$'\n'
	COMPREPLY=($(baton __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _baton baton
`
	zshCompletion = `#compdef baton
# baton completion for zsh: source <(baton completion zsh), or save it as _baton in $fpath
_baton() {
	local -a candidates
	candidates=("${(@f)$(baton __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	if [[ -n ${candidates[1]} ]]; then
		compadd -a candidates
	else
		_files
	fi
}
if [[ $funcstack[1] == _baton ]]; then
	_baton "$@"
else
	compdef _baton baton
fi
`
	fishCompletion = `# baton completion for fish: baton completion fish | source
function __baton_complete
	set -l candidates (baton __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)
	if test (count $candidates) -gt 0
		printf '%s\n' $candidates
	else
		__fish_complete_path (commandline -ct)
	end
end
complete -c baton -f -a '(__baton_complete)'
`
)

// commands are baton's commands, as completion offers them.
var commands = []string{"migrate", "serve", "worker", "dev", "submit", "status", "cancel", "retry", "queue",
	"report", "bench", "version", "help", "completion"}

// completionCmd prints a shell's completion script.
func completionCmd(args []string, stdout io.Writer) error {
	fs := newCommand("completion", "baton completion bash|zsh|fish   (bash: source <(baton completion bash))")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fs.usage()
	}
	script, ok := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}[pos[0]]
	if !ok {
		return usagef("completion: unknown shell %q (bash, zsh or fish)", pos[0])
	}
	_, err = io.WriteString(stdout, script)
	return err
}

// completeCmd prints, a line each, what may stand in place of the last of
// words (being typed, maybe empty) after the ones before it.
func completeCmd(ctx context.Context, words []string, stdout io.Writer) error {
	if len(words) == 0 {
		words = []string{""}
	}
	before, typed := words[:len(words)-1], words[len(words)-1]
	var candidates []string
	switch {
	case len(before) == 0:
		candidates = append(slices.Clone(commands), "--help", "--version")
	case strings.HasPrefix(typed, "-"):
		candidates = flagsOf(ctx, before)
	case len(before) == 1:
		switch before[0] {
		case "help":
			candidates = commands
		case "migrate":
			candidates = []string{"up", "down", "force", "version", "status"}
		case "queue":
			candidates = []string{"list", "pause", "resume", "set"}
		case "report":
			for _, r := range reports {
				candidates = append(candidates, r.name)
			}
		case "completion":
			candidates = []string{"bash", "zsh", "fish"}
		}
	}
	for _, c := range candidates {
		if strings.HasPrefix(c, typed) {
			fmt.Fprintln(stdout, c)
		}
	}
	return nil
}

// flagsOf reads a command's flags from its help, the one list of them.
func flagsOf(ctx context.Context, command []string) []string {
	var text strings.Builder
	err := dispatch(ctx, append(slices.Clone(command), "--help"), strings.NewReader(""), &text)
	var h helpShown
	if !errors.As(err, &h) {
		return nil
	}
	var flags []string
	for _, m := range flagLine.FindAllStringSubmatch(h.text, -1) {
		flags = append(flags, "--"+m[1])
	}
	return flags
}

// flagLine is a flag in flag.PrintDefaults' output: "  -name type".
var flagLine = regexp.MustCompile(`(?m)^  -([\w-]+)`)
