package lab

import (
	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/ops"
	"github.com/meterlink/meterlink/wire"
)

// handheldGroups turns the demo districts into the handheld's groups: one per district, with
// the terminals the lab runs (at most n) and their meters and accounts.
func handheldGroups(ds []demo.District, n int) []wire.Group {
	account := map[string]string{}
	for _, cu := range demo.Customers(ds) {
		account[cu.Meter] = cu.Account
	}
	var out []wire.Group
	for _, d := range ds {
		g := wire.Group{Name: d.ID, Kind: wire.GroupKindDistrict, Title: d.Name}
		for _, t := range d.Terminals {
			if n == 0 {
				break
			}
			n--
			gt := wire.GroupTerminal{ID: wire.TerminalID(t.ID), District: wire.DistrictID(d.ID)}
			for _, c := range t.Channels {
				gt.Meters = append(gt.Meters, wire.GroupMeter{Channel: c.Channel, Meter: wire.MeterID(c.Meter), Account: account[c.Meter]})
			}
			g.Terminals = append(g.Terminals, gt)
		}
		out = append(out, g)
	}
	return out
}

// opsDataset turns the demo districts into ops' provisioning: districts, terminals with their
// channel maps, meters and one customer account per meter. The lab's PDA is provisioned apart
// ([ops.Ops.EnsurePDA]), once, so that a restart does not reset its rotated SIDs.
func opsDataset(ds []demo.District) ops.Dataset {
	var out ops.Dataset
	for _, d := range ds {
		out.Districts = append(out.Districts, ops.District{ID: wire.DistrictID(d.ID), Name: d.Name})
		for _, t := range d.Terminals {
			ot := ops.Terminal{ID: wire.TerminalID(t.ID), District: wire.DistrictID(d.ID)}
			for _, c := range t.Channels {
				ot.Channels = append(ot.Channels, ops.Channel{
					Channel: c.Channel, Meter: wire.MeterID(c.Meter), Constant: c.Constant,
					BaseWh: c.BaseWh, Multiplier: c.Multiplier,
				})
			}
			out.Terminals = append(out.Terminals, ot)
		}
	}
	meterAt := map[string]ops.Meter{}
	for _, t := range out.Terminals {
		for _, c := range t.Channels {
			meterAt[string(c.Meter)] = ops.Meter{ID: c.Meter, Terminal: t.ID, Channel: c.Channel}
		}
	}
	for _, cu := range demo.Customers(ds) {
		pay := ops.Postpaid
		if cu.Payment == "prepaid" {
			pay = ops.Prepaid
		}
		out.Accounts = append(out.Accounts, ops.Account{
			ID: ops.AccountID(cu.Account), Owner: cu.Owner, Address: cu.Address, Payment: pay,
			BalanceFen: cu.BalanceFen, Tariff: "zj-res-tiered",
		})
		m := meterAt[cu.Meter]
		m.Account = ops.AccountID(cu.Account)
		out.Meters = append(out.Meters, m)
	}
	return out
}
