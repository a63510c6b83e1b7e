package billing

import (
	"math/bits"
	"sort"
	"time"
)

// Interval is one meter's consumption between two successive readings, in Wh already
// multiplied by the meter's multiplier (倍率).
type Interval struct {
	FromMS int64 `json:"from_ms"`
	ToMS   int64 `json:"to_ms"`
	Wh     int64 `json:"wh"`
}

// Line is a bill line: consumption priced in one tier and one band.
type Line struct {
	Tier      int    `json:"tier"` // 1-based
	Band      Band   `json:"band"`
	Wh        int64  `json:"wh"`
	Price     Price  `json:"price"`            // 元/kWh
	AmountFen int64  `json:"amount_fen"`       // Wh × price, rounded half away from zero to the fen
	Period    string `json:"period,omitempty"` // the tier period (its first day) when a bill spans several
	units     int64
}

// Charge is priced consumption: its lines, their total, and the exact unrounded cost.
type Charge struct {
	Lines    []Line `json:"lines"`
	TotalFen int64  `json:"total_fen"` // sum of the lines' rounded amounts
	Units    int64  `json:"-"`         // exact cost in 1e-5 fen, for running totals (prepaid)
}

var bandOrder = []Band{BandSharp, BandPeak, BandFlat, BandValley}

// piece is consumption in one band, in time order.
type piece struct {
	band Band
	wh   int64
}

// Price prices the consumption ivs (all within one tier period) after baseWh had already
// been used in that period: the tier boundaries apply to baseWh + the running total.
// Within an interval, consumption is spread over its time in proportion (pro rata), and
// each part gets the band of its 15-minute slots in loc.
func (t *Tariff) Price(baseWh int64, ivs []Interval, loc *time.Location) Charge {
	ps := t.pieces(ivs, loc)
	var total int64
	for _, p := range ps {
		total += p.wh
	}
	agg := map[[2]int]int64{} // (tier index, band index) → Wh
	switch t.Split {
	case SplitChronological:
		used := baseWh
		for _, p := range ps {
			for _, s := range t.slices(used, p.wh) {
				agg[[2]int{s.tier, bandIndex(p.band)}] += s.wh
			}
			used += p.wh
		}
	default: // SplitProRata
		byBand := make([]int64, len(bandOrder))
		for _, p := range ps {
			byBand[bandIndex(p.band)] += p.wh
		}
		for _, s := range t.slices(baseWh, total) {
			for b, wh := range splitLargest(s.wh, byBand) {
				if wh != 0 {
					agg[[2]int{s.tier, b}] += wh
				}
			}
		}
	}
	keys := make([][2]int, 0, len(agg))
	for k := range agg {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	c := Charge{Lines: []Line{}}
	for _, k := range keys {
		band := bandOrder[k[1]]
		p := t.Tiers[k[0]].Prices[band]
		u := units(p, agg[k])
		l := Line{Tier: k[0] + 1, Band: band, Wh: agg[k], Price: p, AmountFen: RoundFen(u), units: u}
		c.Lines = append(c.Lines, l)
		c.TotalFen += l.AmountFen
		c.Units += u
	}
	return c
}

func bandIndex(b Band) int {
	for i, x := range bandOrder {
		if x == b {
			return i
		}
	}
	return 2 // flat
}

type slice struct {
	tier int
	wh   int64
}

// slices splits wh used after base across the tiers.
func (t *Tariff) slices(base, wh int64) []slice {
	var out []slice
	lo := int64(0)
	for i, tr := range t.Tiers {
		hi := tr.UpToKWh * 1000
		if i == len(t.Tiers)-1 {
			hi = 1<<62 - 1
		}
		from, to := max(base, lo), min(base+wh, hi)
		if to > from {
			out = append(out, slice{tier: i, wh: to - from})
		}
		lo = hi
	}
	return out
}

// pieces spreads each interval's consumption over its slots, in time order.
func (t *Tariff) pieces(ivs []Interval, loc *time.Location) []piece {
	var out []piece
	for _, iv := range ivs {
		if iv.Wh == 0 {
			continue
		}
		if !t.HasTOU() {
			out = append(out, piece{band: BandFlat, wh: iv.Wh})
			continue
		}
		if iv.ToMS <= iv.FromMS {
			out = append(out, piece{band: t.BandAt(time.UnixMilli(iv.FromMS).In(loc)), wh: iv.Wh})
			continue
		}
		var bands []Band
		var weights []int64
		for ms := iv.FromMS; ms < iv.ToMS; {
			tm := time.UnixMilli(ms).In(loc)
			b := t.BandAt(tm)
			_, off := tm.Zone()
			local := ms + int64(off)*1000
			next := min((local/slotMS+1)*slotMS-int64(off)*1000, iv.ToMS)
			if n := len(bands); n > 0 && bands[n-1] == b {
				weights[n-1] += next - ms
			} else {
				bands, weights = append(bands, b), append(weights, next-ms)
			}
			ms = next
		}
		for i, wh := range splitLargest(iv.Wh, weights) {
			if wh != 0 {
				out = append(out, piece{band: bands[i], wh: wh})
			}
		}
	}
	return out
}

const slotMS = 15 * 60 * 1000

// splitLargest splits total (≥ 0) in proportion to weights (≥ 0) into whole parts that add
// up to total, giving the remainder to the largest fractions (ties to the earliest).
func splitLargest(total int64, weights []int64) []int64 {
	out := make([]int64, len(weights))
	var sum uint64
	for _, w := range weights {
		sum += uint64(w)
	}
	if sum == 0 || total <= 0 {
		if total != 0 && len(out) > 0 {
			out[0] = total
		}
		return out
	}
	rems := make([]uint64, len(weights))
	left := total
	for i, w := range weights {
		hi, lo := bits.Mul64(uint64(total), uint64(w))
		q, r := bits.Div64(hi, lo, sum)
		out[i], rems[i] = int64(q), r
		left -= int64(q)
	}
	idx := make([]int, len(weights))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return rems[idx[a]] > rems[idx[b]] })
	for i := 0; left > 0; i++ {
		out[idx[i%len(idx)]]++
		left--
	}
	return out
}
