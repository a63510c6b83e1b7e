package store

import (
	"fmt"

	"github.com/tidwall/buntdb"

	"github.com/meterlink/meterlink/wire"
)

// Put applies a dataset in one transaction: districts, accounts, terminals, meters, then
// PDAs, so an entity may refer to one earlier in the same dataset. With replace false an
// entity that already exists fails the whole dataset with [ErrExists]; with replace true it
// is overwritten. Bad fields and broken references fail it with a [*FieldError]. On any
// error nothing changes.
func (s *DB) Put(ds Dataset, replace bool) error {
	if err := ds.Validate(); err != nil {
		return err
	}
	f := fields{}
	dupes := func(kind string, ids []string) {
		seen := map[string]bool{}
		for i, id := range ids {
			if seen[id] {
				f.addf(fmt.Sprintf("%s[%d].id", kind, i), "%q appears twice", id)
			}
			seen[id] = true
		}
	}
	dupes("districts", ids(ds.Districts, func(d District) string { return string(d.ID) }))
	dupes("terminals", ids(ds.Terminals, func(t Terminal) string { return string(t.ID) }))
	dupes("meters", ids(ds.Meters, func(m Meter) string { return string(m.ID) }))
	dupes("accounts", ids(ds.Accounts, func(a Account) string { return string(a.ID) }))
	dupes("pdas", ids(ds.PDAs, func(p PDA) string { return string(p.ID) }))
	if err := f.err(); err != nil {
		return err
	}

	return s.db.Update(func(tx *buntdb.Tx) error {
		create := func(kind, key string, v any) error {
			if !replace {
				ok, err := exists(tx, key)
				if err != nil {
					return err
				}
				if ok {
					return fmt.Errorf("%s %s: %w", kind, keyID(key), ErrExists)
				}
			}
			return set(tx, key, v)
		}
		for _, d := range ds.Districts {
			if err := create("district", pfxDistrict+string(d.ID), d); err != nil {
				return err
			}
		}
		for _, a := range ds.Accounts {
			if err := create("account", pfxAccount+string(a.ID), a); err != nil {
				return err
			}
		}
		for i, t := range ds.Terminals {
			ok, err := exists(tx, pfxDistrict+string(t.District))
			if err != nil {
				return err
			}
			if !ok {
				f.addf(fmt.Sprintf("terminals[%d].district", i), "unknown district %q", t.District)
				continue
			}
			if err := create("terminal", pfxTerminal+string(t.ID), t); err != nil {
				return err
			}
		}
		for i, m := range ds.Meters {
			at := fmt.Sprintf("meters[%d].", i)
			var t Terminal
			ok, err := get(tx, pfxTerminal+string(m.Terminal), &t)
			if err != nil {
				return err
			}
			if !ok {
				f.addf(at+"terminal", "unknown terminal %q", m.Terminal)
			} else if !t.hasMeter(m.Channel, m.ID) {
				f.addf(at+"ch", "terminal %s does not map meter %s to channel %d", m.Terminal, m.ID, m.Channel)
			}
			if m.Account != "" {
				ok, err := exists(tx, pfxAccount+string(m.Account))
				if err != nil {
					return err
				}
				if !ok {
					f.addf(at+"account", "unknown account %q", m.Account)
				}
			}
			if len(f) > 0 {
				continue
			}
			if err := indexMeterAccount(tx, m); err != nil {
				return err
			}
			if err := create("meter", pfxMeter+string(m.ID), m); err != nil {
				return err
			}
		}
		for _, p := range ds.PDAs {
			if err := create("pda", pfxPDA+string(p.ID), newPDARow(p)); err != nil {
				return err
			}
		}
		return f.err() // a non-nil error rolls the transaction back
	})
}

func keyID(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == ':' {
			return key[i+1:]
		}
	}
	return key
}

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func (t Terminal) hasMeter(ch uint8, m wire.MeterID) bool {
	for _, c := range t.Channels {
		if c.Channel == ch && c.Meter == m {
			return true
		}
	}
	return false
}

// Load returns every provisioning entity, each kind in id order. PDAs carry their current SID
// (never serialised).
func (s *DB) Load() (Dataset, error) {
	var ds Dataset
	err := s.db.View(func(tx *buntdb.Tx) error {
		var err error
		if ds.Districts, err = list[District](tx, pfxDistrict); err != nil {
			return err
		}
		if ds.Terminals, err = list[Terminal](tx, pfxTerminal); err != nil {
			return err
		}
		if ds.Meters, err = list[Meter](tx, pfxMeter); err != nil {
			return err
		}
		if ds.Accounts, err = list[Account](tx, pfxAccount); err != nil {
			return err
		}
		rows, err := list[PDARow](tx, pfxPDA)
		if err != nil {
			return err
		}
		for _, r := range rows {
			ds.PDAs = append(ds.PDAs, r.View())
		}
		return nil
	})
	return ds, err
}
