package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is a subcommand's flags and its usage line (synopsis), which
// --help prints with the flags.
type command struct {
	*flag.FlagSet
	synopsis string
}

func newCommand(name, synopsis string) *command {
	return &command{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), synopsis: synopsis}
}

// helpShown answers -h or --help: the command's help, printed to standard
// output by run, and exit status 0.
type helpShown struct{ text string }

func (helpShown) Error() string { return "help requested" }

// parse parses flags that may come before, between or after positional
// arguments, and returns the positional ones.
func (c *command) parse(args []string) ([]string, error) {
	c.SetOutput(io.Discard)
	var pos []string
	for {
		if err := c.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, helpShown{c.help()}
		} else if err != nil {
			return nil, usagef("%s: %v", c.Name(), err)
		}
		if c.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, c.Arg(0))
		args = c.Args()[1:]
	}
}

// help is the usage line and, if the command has any, its flags.
func (c *command) help() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n", c.synopsis)
	flags := false
	c.VisitAll(func(*flag.Flag) { flags = true })
	if flags {
		b.WriteString("\nflags:\n")
		c.SetOutput(&b)
		c.PrintDefaults()
		c.SetOutput(io.Discard)
	}
	return b.String()
}

// usage is the error for arguments the command does not take.
func (c *command) usage() error { return usagef("%s: usage: %s", c.Name(), c.synopsis) }
