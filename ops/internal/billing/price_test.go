package billing

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func tariff(t *testing.T, id string) *Tariff {
	t.Helper()
	tt, err := DefaultCatalog().Tariff(id)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func cst(s string) int64 {
	tm, err := time.ParseInLocation("2006-01-02 15:04", s, CST)
	if err != nil {
		panic(err)
	}
	return tm.UnixMilli()
}

const kWh = 1000

func TestPrice(t *testing.T) {
	flatDay := []Interval{{FromMS: cst("2026-03-01 00:00"), ToMS: cst("2026-03-02 00:00")}}
	withWh := func(ivs []Interval, wh int64) []Interval {
		out := append([]Interval(nil), ivs...)
		out[0].Wh = wh
		return out
	}
	tests := []struct {
		name      string
		tariff    string
		baseWh    int64
		ivs       []Interval
		wantLines []Line
		wantTotal int64
	}{
		{
			// domain.md §6.1 worked example: 60 × 0.538 + 140 × 0.588 = 32.28 + 82.32 = 114.60 元.
			name: "worked example 2700 + 200 kWh", tariff: ZJResTiered, baseWh: 2700 * kWh,
			ivs: withWh(flatDay, 200*kWh),
			wantLines: []Line{
				{Tier: 1, Band: BandFlat, Wh: 60 * kWh, Price: 5380, AmountFen: 3228},
				{Tier: 2, Band: BandFlat, Wh: 140 * kWh, Price: 5880, AmountFen: 8232},
			},
			wantTotal: 11460,
		},
		{
			name: "all three tiers", tariff: ZJResTiered, baseWh: 2000 * kWh, ivs: withWh(flatDay, 3000*kWh),
			wantLines: []Line{
				{Tier: 1, Band: BandFlat, Wh: 760 * kWh, Price: 5380, AmountFen: 40888},
				{Tier: 2, Band: BandFlat, Wh: 2040 * kWh, Price: 5880, AmountFen: 119952},
				{Tier: 3, Band: BandFlat, Wh: 200 * kWh, Price: 8380, AmountFen: 16760},
			},
			wantTotal: 40888 + 119952 + 16760,
		},
		{
			name: "boundary kWh 2760 is tier 1", tariff: ZJResTiered, baseWh: 2759 * kWh, ivs: withWh(flatDay, 2*kWh),
			wantLines: []Line{
				{Tier: 1, Band: BandFlat, Wh: kWh, Price: 5380, AmountFen: 54},
				{Tier: 2, Band: BandFlat, Wh: kWh, Price: 5880, AmountFen: 59},
			},
			wantTotal: 113,
		},
		{
			name: "rounding half away from zero", tariff: ZJResTiered, ivs: withWh(flatDay, 25), // 0.025 kWh × 0.538 = 1.345 fen
			wantLines: []Line{{Tier: 1, Band: BandFlat, Wh: 25, Price: 5380, AmountFen: 1}},
			wantTotal: 1,
		},
		{
			// A whole day: 14 h peak (8–22), 10 h valley; 24 kWh spread evenly.
			name: "TOU day split pro rata", tariff: ZJResTOU, ivs: withWh(flatDay, 24*kWh),
			wantLines: []Line{
				{Tier: 1, Band: BandPeak, Wh: 14 * kWh, Price: 5680, AmountFen: 795},
				{Tier: 1, Band: BandValley, Wh: 10 * kWh, Price: 2880, AmountFen: 288},
			},
			wantTotal: 1083,
		},
		{
			name: "TOU readings inside one band", tariff: ZJResTOU,
			ivs: []Interval{
				{FromMS: cst("2026-03-01 09:00"), ToMS: cst("2026-03-01 10:00"), Wh: 2 * kWh},
				{FromMS: cst("2026-03-01 23:00"), ToMS: cst("2026-03-01 23:15"), Wh: 500},
			},
			wantLines: []Line{
				{Tier: 1, Band: BandPeak, Wh: 2 * kWh, Price: 5680, AmountFen: 114},
				{Tier: 1, Band: BandValley, Wh: 500, Price: 2880, AmountFen: 14},
			},
			wantTotal: 128,
		},
		{
			// 100 kWh, 70 peak / 30 valley, crossing 2760 at base 2700: tier 1 gets 60
			// (42 peak, 18 valley), tier 2 gets 40 (28 peak, 12 valley).
			name: "TOU across a tier, pro rata", tariff: ZJResTOU, baseWh: 2700 * kWh,
			ivs: []Interval{
				{FromMS: cst("2026-03-01 09:00"), ToMS: cst("2026-03-01 10:00"), Wh: 70 * kWh},
				{FromMS: cst("2026-03-01 23:00"), ToMS: cst("2026-03-02 00:00"), Wh: 30 * kWh},
			},
			wantLines: []Line{
				{Tier: 1, Band: BandPeak, Wh: 42 * kWh, Price: 5680, AmountFen: 2386},
				{Tier: 1, Band: BandValley, Wh: 18 * kWh, Price: 2880, AmountFen: 518},
				{Tier: 2, Band: BandPeak, Wh: 28 * kWh, Price: 6180, AmountFen: 1730},
				{Tier: 2, Band: BandValley, Wh: 12 * kWh, Price: 3380, AmountFen: 406},
			},
			wantTotal: 2386 + 518 + 1730 + 406,
		},
		{
			name: "commercial three bands over a day", tariff: ComTOU, ivs: withWh(flatDay, 96*kWh),
			// peak 8:00–11:30 + 18:30–23:00 = 8 h, valley 23:00–7:00 = 8 h, flat 8 h.
			wantLines: []Line{
				{Tier: 1, Band: BandPeak, Wh: 32 * kWh, Price: 9960, AmountFen: 3187},
				{Tier: 1, Band: BandFlat, Wh: 32 * kWh, Price: 6640, AmountFen: 2125},
				{Tier: 1, Band: BandValley, Wh: 32 * kWh, Price: 3320, AmountFen: 1062},
			},
			wantTotal: 3187 + 2125 + 1062,
		},
		{
			name: "monthly national tiers", tariff: CNResTieredMon, baseWh: 200 * kWh, ivs: withWh(flatDay, 250*kWh),
			wantLines: []Line{
				{Tier: 1, Band: BandFlat, Wh: 40 * kWh, Price: 5380, AmountFen: 2152},
				{Tier: 2, Band: BandFlat, Wh: 160 * kWh, Price: 5880, AmountFen: 9408},
				{Tier: 3, Band: BandFlat, Wh: 50 * kWh, Price: 8380, AmountFen: 4190},
			},
			wantTotal: 2152 + 9408 + 4190,
		},
		{
			name: "fixed price", tariff: ZJResShared, baseWh: 9000 * kWh, ivs: withWh(flatDay, 100*kWh),
			wantLines: []Line{{Tier: 1, Band: BandFlat, Wh: 100 * kWh, Price: 5580, AmountFen: 5580}},
			wantTotal: 5580,
		},
		{name: "nothing used", tariff: ZJResTiered, ivs: withWh(flatDay, 0), wantLines: []Line{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tariff(t, tt.tariff).Price(tt.baseWh, tt.ivs, CST)
			if diff := cmp.Diff(tt.wantLines, c.Lines, cmpopts.IgnoreUnexported(Line{})); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if c.TotalFen != tt.wantTotal {
				t.Errorf("total = %d fen, want %d", c.TotalFen, tt.wantTotal)
			}
		})
	}
}

func TestPriceChronological(t *testing.T) {
	tt := *tariff(t, ZJResTOU)
	tt.ID, tt.Split = "chrono", SplitChronological
	c, err := NewCatalog(tt)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := c.Tariff("chrono")
	// The valley hour comes first and fills tier 1 (60 kWh left in it), then peak spills.
	got := ch.Price(2700*kWh, []Interval{
		{FromMS: cst("2026-03-01 06:00"), ToMS: cst("2026-03-01 07:00"), Wh: 30 * kWh},
		{FromMS: cst("2026-03-01 09:00"), ToMS: cst("2026-03-01 10:00"), Wh: 70 * kWh},
	}, CST)
	want := []Line{
		{Tier: 1, Band: BandPeak, Wh: 30 * kWh, Price: 5680, AmountFen: 1704},
		{Tier: 1, Band: BandValley, Wh: 30 * kWh, Price: 2880, AmountFen: 864},
		{Tier: 2, Band: BandPeak, Wh: 40 * kWh, Price: 6180, AmountFen: 2472},
	}
	if diff := cmp.Diff(want, got.Lines, cmpopts.IgnoreUnexported(Line{})); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestTariffValidate(t *testing.T) {
	flat := map[Band]Price{BandFlat: 5000}
	tests := []struct {
		name string
		t    Tariff
		want []string // substrings of the error; none for a valid tariff
	}{
		{name: "ok fixed", t: Tariff{ID: "x", Period: Annual, Tiers: []Tier{{Prices: flat}}}},
		{name: "no period", t: Tariff{ID: "x", Tiers: []Tier{{Prices: flat}}}, want: []string{"period"}},
		{name: "no tiers", t: Tariff{ID: "x", Period: Monthly}, want: []string{"at least one"}},
		{name: "last tier limited", t: Tariff{ID: "x", Period: Annual, Tiers: []Tier{{UpToKWh: 5, Prices: flat}}}, want: []string{"no limit"}},
		{name: "tiers not rising", t: Tariff{ID: "x", Period: Annual, Tiers: []Tier{{UpToKWh: 50, Prices: flat}, {UpToKWh: 40, Prices: flat}, {Prices: flat}}}, want: []string{"above the previous"}},
		{name: "off grid", t: Tariff{ID: "x", Period: Annual, Tiers: []Tier{{Prices: map[Band]Price{BandPeak: 1, BandValley: 1}}},
			Schedule: []Span{{From: "08:10", To: "22:00", Band: BandPeak}, {From: "22:00", To: "08:10", Band: BandValley}}}, want: []string{"15-minute grid"}},
		{name: "gap", t: Tariff{ID: "x", Period: Annual, Tiers: []Tier{{Prices: map[Band]Price{BandPeak: 1}}},
			Schedule: []Span{{From: "08:00", To: "22:00", Band: BandPeak}}}, want: []string{"00:00 without a band"}},
		{name: "overlap", t: Tariff{ID: "x", Period: Annual, Tiers: []Tier{{Prices: map[Band]Price{BandPeak: 1}}},
			Schedule: []Span{{From: "00:00", To: "24:00", Band: BandPeak}, {From: "01:00", To: "02:00", Band: BandPeak}}}, want: []string{"01:00 overlaps"}},
		{name: "missing band price", t: Tariff{ID: "x", Period: Annual, Tiers: []Tier{{Prices: map[Band]Price{BandPeak: 1}}},
			Schedule: []Span{{From: "08:00", To: "20:00", Band: BandPeak}, {From: "20:00", To: "08:00", Band: BandValley}}}, want: []string{"no price for band valley"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.t.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestPresetsValid(t *testing.T) {
	c := DefaultCatalog()
	for _, id := range []string{ZJResTiered, ZJResTOU, ZJResShared, ZJComFlat, ComTOU, JSResTOU, CNResTieredMon, CNResTieredYear} {
		tt, err := c.Tariff(id)
		if err != nil {
			t.Fatalf("preset %s: %v", id, err)
		}
		if tt.Source == "" {
			t.Errorf("preset %s has no source", id)
		}
	}
	if _, err := c.Tariff("nope"); err == nil {
		t.Error("Tariff(nope) = nil error")
	}
	// The Jiangsu variant puts 21:00 in the valley, Zhejiang's in the peak.
	at := time.Date(2026, 3, 1, 21, 30, 0, 0, CST)
	if b := tariff(t, JSResTOU).BandAt(at); b != BandValley {
		t.Errorf("js-res-tou at 21:30 = %s, want valley", b)
	}
	if b := tariff(t, ZJResTOU).BandAt(at); b != BandPeak {
		t.Errorf("zj-res-tou at 21:30 = %s, want peak", b)
	}
}

func TestParsePrice(t *testing.T) {
	tests := []struct {
		in   string
		want Price
		bad  bool
	}{
		{in: "0.538", want: 5380}, {in: "0.5283", want: 5283}, {in: "1", want: 10000}, {in: "12.5", want: 125000},
		{in: "0.53831", bad: true}, {in: "-0.5", bad: true}, {in: "", bad: true}, {in: "x.5", bad: true}, {in: "0.-5", bad: true},
	}
	for _, tt := range tests {
		got, err := ParsePrice(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("ParsePrice(%q) = %v, %v; want %v, bad %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
	if s := Price(5380).String(); s != "0.5380" {
		t.Errorf("Price(5380) = %q", s)
	}
}

func TestRoundFen(t *testing.T) {
	for _, tt := range []struct{ units, want int64 }{
		{0, 0}, {49_999, 0}, {50_000, 1}, {149_999, 1}, {150_000, 2}, {-50_000, -1}, {-49_999, 0},
	} {
		if got := RoundFen(tt.units); got != tt.want {
			t.Errorf("RoundFen(%d) = %d, want %d", tt.units, got, tt.want)
		}
	}
	if got := FormatFen(11460); got != "114.60" {
		t.Errorf("FormatFen(11460) = %q", got)
	}
	if got := FormatFen(-5); got != "-0.05" {
		t.Errorf("FormatFen(-5) = %q", got)
	}
}

func TestAdvance(t *testing.T) {
	r := DefaultConfig().Register
	for _, tt := range []struct {
		prev, cur, want int64
		kind            string
	}{
		{prev: 1000, cur: 1500, want: 500, kind: Forward},
		{prev: 1000, cur: 1000, want: 0, kind: Forward},
		{prev: 999_999_990, cur: 5_000, want: 5_010, kind: Rollover}, // 999999.99 kWh → 5 kWh
		{prev: 5_000_000, cur: 4_000_000, want: 0, kind: Backward},
		{prev: 995_000_000, cur: 6_000_000, want: 0, kind: Backward}, // 11,000 kWh "rollover": implausible
	} {
		got, kind := r.Advance(tt.prev, tt.cur)
		if got != tt.want || kind != tt.kind {
			t.Errorf("Advance(%d, %d) = %d, %s; want %d, %s", tt.prev, tt.cur, got, kind, tt.want, tt.kind)
		}
	}
}

func TestTierPeriod(t *testing.T) {
	c := DefaultConfig()
	c.TierYearStart = MonthDay{Month: time.July, Day: 1}
	s, e := c.TierPeriod(Annual, time.Date(2026, 3, 5, 12, 0, 0, 0, CST))
	if s != time.Date(2025, 7, 1, 0, 0, 0, 0, CST) || e != time.Date(2026, 7, 1, 0, 0, 0, 0, CST) {
		t.Errorf("tier year from 07-01 around 2026-03-05 = %v..%v", s, e)
	}
	s, e = c.TierPeriod(Monthly, time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC))
	if s != time.Date(2026, 3, 1, 0, 0, 0, 0, CST) || e != time.Date(2026, 4, 1, 0, 0, 0, 0, CST) {
		t.Errorf("month around 2026-03-05 = %v..%v", s, e)
	}
	if _, err := ParseMonthDay("02-30"); err == nil {
		t.Error("ParseMonthDay(02-30) = nil error")
	}
	if md, err := ParseMonthDay("07-01"); err != nil || md != (MonthDay{Month: 7, Day: 1}) {
		t.Errorf("ParseMonthDay(07-01) = %v, %v", md, err)
	}
}
