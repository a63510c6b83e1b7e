// Package metrics counts what ops does and writes the counts in the Prometheus text
// exposition format (version 0.0.4), by hand, so that ops needs no metrics library.
package metrics

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Registry holds counter families. It is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
}

type family struct {
	help   string
	values map[string]uint64 // rendered label set ("" for none) → count
}

// New returns an empty registry.
func New() *Registry { return &Registry{families: map[string]*family{}} }

// Counter declares a counter family; without labels it shows as 0 until first counted.
// Declaring a family twice is a programmer error and panics.
func (r *Registry) Counter(name, help string, labelled bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.families[name]; ok {
		panic("metrics: counter " + name + " declared twice")
	}
	f := &family{help: help, values: map[string]uint64{}}
	if !labelled {
		f.values[""] = 0
	}
	r.families[name] = f
}

// Add adds n to a counter; labels are name, value pairs. Counting an undeclared family is a
// programmer error and panics.
func (r *Registry) Add(name string, n uint64, labels ...string) {
	var b strings.Builder
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=\"%s\"", labels[i], escape(labels[i+1]))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.families[name]
	if !ok {
		panic("metrics: counter " + name + " not declared")
	}
	f.values[b.String()] += n
}

// Value returns a counter's value; labels are name, value pairs as given to [Registry.Add].
func (r *Registry) Value(name string, labels ...string) uint64 {
	var b strings.Builder
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=\"%s\"", labels[i], escape(labels[i+1]))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.families[name]; ok {
		return f.values[b.String()]
	}
	return 0
}

var escaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escape(s string) string { return escaper.Replace(s) }

// ContentType is the content type of [Registry.Write]'s output.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Write writes every family in the text exposition format, sorted by name and label set.
func (r *Registry) Write(w io.Writer) error {
	r.mu.Lock()
	var b strings.Builder
	names := make([]string, 0, len(r.families))
	for n := range r.families {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := r.families[n]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", n, f.help, n)
		sets := make([]string, 0, len(f.values))
		for s := range f.values {
			sets = append(sets, s)
		}
		sort.Strings(sets)
		for _, s := range sets {
			if s == "" {
				fmt.Fprintf(&b, "%s %d\n", n, f.values[s])
			} else {
				fmt.Fprintf(&b, "%s{%s} %d\n", n, s, f.values[s])
			}
		}
	}
	r.mu.Unlock()
	_, err := io.WriteString(w, b.String())
	return err
}
