// Package demo is the seeded demo dataset of the lab and of compose: districts, terminals with
// their channel maps, meters and customers. It is deterministic, so a terminal started on its
// own and an ops seeded on its own agree on every meter without talking to each other.
package demo

import (
	"fmt"
	"hash/fnv"
)

// Channel is one channel of a terminal's channel map.
type Channel struct {
	Channel    uint8  // 1..16
	Meter      string // meter id
	Constant   uint32 // imp/kWh
	BaseWh     int64  // base reading at commissioning, Wh
	Multiplier uint32 // CT × PT
}

// Terminal is a collection terminal with its channel map.
type Terminal struct {
	ID       string
	District string
	Channels []Channel
}

// District is a transformer district (台区) with its terminals.
type District struct {
	ID        string
	Name      string
	Terminals []Terminal
}

// Customer is an account holding one meter.
type Customer struct {
	Account    string
	Owner      string
	Address    string
	Payment    string // "prepaid" or "postpaid"
	BalanceFen int64  // balance in fen (0.01 元)
	Meter      string
	District   string
}

// ChannelsPerTerminal is how many channels the demo terminals use: 1–15 are pulse inputs and
// 16, which doubles as the RS485 port, is a pulse input in the demo.
const ChannelsPerTerminal = 16

var constants = []uint32{1600, 3200, 6400, 3200}

func hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// TerminalID names the n-th terminal (1-based): T0001.
func TerminalID(n int) string { return fmt.Sprintf("T%04d", n) }

// MeterID names the meter on a terminal's channel: T0001-01.
func MeterID(terminal string, ch int) string { return fmt.Sprintf("%s-%02d", terminal, ch) }

// TerminalChannels returns the demo channel map of a terminal.
func TerminalChannels(terminal string) []Channel {
	chs := make([]Channel, 0, ChannelsPerTerminal)
	for ch := 1; ch <= ChannelsPerTerminal; ch++ {
		m := MeterID(terminal, ch)
		mult := uint32(1)
		if ch == 15 {
			mult = 10 // a CT-connected meter (50/5 A)
		}
		chs = append(chs, Channel{
			Channel: uint8(ch), Meter: m, Constant: constants[ch%len(constants)],
			BaseWh: int64(hash(m)%5_000_000) + 100_000, Multiplier: mult,
		})
	}
	return chs
}

var (
	surnames = []string{"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴"}
	given    = []string{"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳"}
	roads    = []string{"解放路", "人民路", "中山路", "建设路", "和平街", "新华街"}
)

// Dataset returns districts D01.. each with terminalsPerDistrict terminals, numbered across
// districts (D01 has T0001..T000n).
func Dataset(districts, terminalsPerDistrict int) []District {
	var out []District
	n := 0
	for d := 1; d <= districts; d++ {
		dist := District{ID: fmt.Sprintf("D%02d", d), Name: fmt.Sprintf("%d号台区", d)}
		for i := 0; i < terminalsPerDistrict; i++ {
			n++
			id := TerminalID(n)
			dist.Terminals = append(dist.Terminals, Terminal{ID: id, District: dist.ID, Channels: TerminalChannels(id)})
		}
		out = append(out, dist)
	}
	return out
}

// Customers returns one customer per meter of the districts: owner names, addresses, a mix of
// prepaid and postpaid accounts, and balances, some of them low or in arrears.
func Customers(ds []District) []Customer {
	var out []Customer
	for _, d := range ds {
		for _, t := range d.Terminals {
			for _, c := range t.Channels {
				h := hash(c.Meter)
				cu := Customer{
					Account:  "A" + c.Meter,
					Owner:    surnames[h%uint64(len(surnames))] + given[(h>>8)%uint64(len(given))],
					Address:  fmt.Sprintf("%s%d号%d室", roads[(h>>16)%uint64(len(roads))], (h>>24)%200+1, (h>>32)%6*100+101),
					Payment:  "postpaid",
					Meter:    c.Meter,
					District: d.ID,
				}
				if h%3 == 0 {
					cu.Payment = "prepaid"
				}
				cu.BalanceFen = int64(h%40_000) - 5_000 // −50.00 to 350.00 元
				out = append(out, cu)
			}
		}
	}
	return out
}
