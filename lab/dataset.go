package lab

import (
	"time"

	"github.com/meterlink/meterlink/demo"
	"github.com/meterlink/meterlink/ops"
	"github.com/meterlink/meterlink/wire"
)

// opsDataset turns the demo districts into ops' provisioning: districts, terminals with their
// channel maps, meters, one customer account per meter, and the lab's PDA with its SID.
func opsDataset(ds []demo.District, pda string, sid []byte) ops.Dataset {
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
	out.PDAs = []ops.PDA{{ID: wire.PDAID(pda), SID: sid, State: ops.PDAEnrolled, CreatedMS: time.Now().UnixMilli()}}
	return out
}
