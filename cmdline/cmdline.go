// Package cmdline parses a subcommand's flags with METERLINK_* environment fallbacks and
// builds the one slog logger a part uses.
package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// EnvName returns the environment variable that backs a flag: "broker-url" →
// "METERLINK_BROKER_URL".
func EnvName(flagName string) string {
	return "METERLINK_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// Parse fills each flag of fs from its METERLINK_* variable (when set and not empty), then
// parses args, so an explicit flag wins over the environment. Errors name the flag or the
// variable at fault. -h and -help return flag.ErrHelp after printing usage to fs's output.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		if v := getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s=%q: %w", name, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return fs.Parse(args)
}

// NewFlagSet returns a flag set for a subcommand that reports errors instead of exiting, with
// a usage text that lists the flags and their environment variables.
func NewFlagSet(name, summary string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: meterlink %s [flags]\n\n%s\n\nFlags (each also read from METERLINK_<FLAG>, e.g. %s):\n",
			name, summary, EnvName("log-level"))
		fs.PrintDefaults()
	}
	return fs
}

// LogConfig holds the logging flags every subcommand has.
type LogConfig struct {
	Level  string // debug, info, warn, error; default info
	Format string // text or json; default text
}

// AddFlags registers -log-level and -log-format on fs.
func (c *LogConfig) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.Format, "log-format", "text", "log format: text or json")
}

// Validate names every bad logging value.
func (c LogConfig) Validate() error {
	var errs []error
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Level)); err != nil {
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.Level))
	}
	if c.Format != "text" && c.Format != "json" {
		errs = append(errs, fmt.Errorf("log-format %q: want text or json", c.Format))
	}
	return errors.Join(errs...)
}

// Logger builds the logger described by c, writing to w.
func (c LogConfig) Logger(w io.Writer) (*slog.Logger, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: l}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
