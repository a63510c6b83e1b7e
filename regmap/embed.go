package regmap

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
)

// ErrUnknownMap is returned by [Lookup] for a name no shipped map has.
var ErrUnknownMap = errors.New("unknown register map")

// shipped holds one JSON map per device, named after the map.
//
//go:embed maps/*.json
var shipped embed.FS

var loadShipped = sync.OnceValues(func() (map[string]Map, error) {
	out := map[string]Map{}
	files, err := fs.Glob(shipped, "maps/*.json")
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, f := range files {
		b, err := shipped.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, err := Parse(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		if want := strings.TrimSuffix(path.Base(f), ".json"); m.Name != want {
			errs = append(errs, fmt.Errorf("%s: %w: name %q, want %q", f, ErrInvalid, m.Name, want))
			continue
		}
		out[m.Name] = m
	}
	return out, errors.Join(errs...)
})

// Lookup returns the shipped map called name, such as "sdm120". The
// result is a copy the caller may change.
func Lookup(name string) (Map, error) {
	all, err := loadShipped()
	if err != nil {
		return Map{}, err // a broken shipped map; TestShippedMaps keeps this from happening
	}
	m, ok := all[name]
	if !ok {
		return Map{}, fmt.Errorf("%w %q (shipped: %s)", ErrUnknownMap, name, strings.Join(Names(), ", "))
	}
	return m.withDefaults(), nil
}

// Names returns the names of the shipped maps, sorted.
func Names() []string {
	all, _ := loadShipped()
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
