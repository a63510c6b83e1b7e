package billing

import (
	"testing"
	"time"

	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// TestAYearOfReadingsBilledByHand bills a leap year (2028) of daily frozen readings on the
// Zhejiang annual tiered tariff (≤ 2760 kWh 0.538, ≤ 4800 kWh 0.588, above 0.838 元/kWh) and
// a commercial meter with a CT ratio on the flat tariff, against figures worked by hand:
// 14 kWh a day, 30 kWh on 29 February.
func TestAYearOfReadingsBilledByHand(t *testing.T) {
	st, l := newStore(t), newLedger(t)
	var recs []wire.Record
	day := time.Date(2028, 1, 1, 0, 0, 0, 0, CST)
	var m1, m3 int64
	for seq := uint64(1); !day.After(time.Date(2029, 1, 1, 0, 0, 0, 0, CST)); seq++ {
		recs = append(recs, rec(seq, day.UnixMilli(), wire.KindFrozen, m1, 0, m3))
		if day.Month() == time.February && day.Day() == 29 {
			m1 += 30_000
		} else {
			m1 += 14_000
		}
		m3 += 100 // 0.1 kWh a day on the meter, × 30 = 3 kWh billed
		day = day.AddDate(0, 0, 1)
	}
	if len(recs) != 367 {
		t.Fatalf("%d daily records, want 367 (a leap year and the next new year's day)", len(recs))
	}
	apply(t, st, l, recs...)

	tests := []struct {
		name, account, from, to string
		wantWh                  int64
		wantFen                 int64
		lines                   int
	}{
		// 365 × 14 + 30 = 5140 kWh: 2760 × 0.538 = 1484.88, 2040 × 0.588 = 1199.52, 340 × 0.838 = 284.92.
		{"whole year across both tier boundaries", "A1", "2028-01-01 00:00", "2029-01-01 00:00", 5_140_000, 148488 + 119952 + 28492, 3},
		// 28 × 14 + 30 = 422 kWh, all in tier 1 (434 kWh before): 227.036 → 227.04.
		{"February with its leap day", "A1", "2028-02-01 00:00", "2028-03-01 00:00", 422_000, 22704, 1},
		// 2564 kWh before July; 196 kWh at 0.538 = 105.448 → 105.45, 238 kWh at 0.588 = 139.944 → 139.94.
		{"July crosses the first tier boundary", "A1", "2028-07-01 00:00", "2028-08-01 00:00", 434_000, 10545 + 13994, 2},
		// 366 days × 3 kWh billed (CT 30) = 1098 kWh at 0.664, billed per month: seven 31-day
		// months 93 kWh → 61.752 → 61.75, four 30-day months 59.76, February 87 kWh → 57.77.
		{"commercial meter with a CT ratio, monthly lines", "A3", "2028-01-01 00:00", "2029-01-01 00:00", 1_098_000, 7*6175 + 4*5976 + 5777, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bill(t, st, l, store.AccountID(tt.account), tt.from, tt.to)
			if b.TotalWh != tt.wantWh || len(b.Lines) != tt.lines || b.TotalFen != tt.wantFen {
				t.Errorf("bill = %d Wh, %d fen (%s 元) in %d lines; want %d Wh, %d fen in %d lines: %+v",
					b.TotalWh, b.TotalFen, b.Total, len(b.Lines), tt.wantWh, tt.wantFen, tt.lines, b.Lines)
			}
			var sum int64
			for _, ln := range b.Lines {
				sum += ln.AmountFen
			}
			if sum != b.TotalFen {
				t.Errorf("lines add up to %d fen, total says %d", sum, b.TotalFen)
			}
		})
	}
}
