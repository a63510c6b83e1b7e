package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/meterlink/meterlink/ops/internal/billing"
	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/ops/internal/vee"
	"github.com/meterlink/meterlink/wire"
)

var now = time.Date(2026, 3, 15, 10, 0, 0, 0, billing.CST)

// seed provisions terminals × 16 meters with one account each (even ones prepaid, low on
// balance every 10th) and stores two readings per terminal: at the month start and an hour
// before now (meter i uses i Wh a day).
func seed(tb testing.TB, terminals int) (*Responder, *store.DB) {
	tb.Helper()
	st, err := store.Open(":memory:")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	ds := store.Dataset{Districts: []store.District{{ID: "D1"}}}
	for t := range terminals {
		tid := wire.TerminalID(fmt.Sprintf("T%05d", t))
		term := store.Terminal{ID: tid, District: "D1"}
		for ch := 1; ch <= 16; ch++ {
			i := t*16 + ch - 1
			mid, aid := wire.MeterID(fmt.Sprintf("M%06d", i)), store.AccountID(fmt.Sprintf("A%06d", i))
			term.Channels = append(term.Channels, store.Channel{Channel: uint8(ch), Meter: mid, Constant: 3200, Multiplier: 1})
			a := store.Account{ID: aid, Owner: "户主 " + string(aid), Payment: store.Postpaid, Tariff: billing.ZJResTiered}
			if i%2 == 0 {
				a.Payment, a.BalanceFen = store.Prepaid, 10000
				if i%10 == 0 {
					a.BalanceFen = 100
				}
			}
			ds.Accounts = append(ds.Accounts, a)
			ds.Meters = append(ds.Meters, store.Meter{ID: mid, Terminal: tid, Channel: uint8(ch), Account: aid})
		}
		ds.Terminals = append(ds.Terminals, term)
	}
	if err := st.Put(ds, false); err != nil {
		tb.Fatal(err)
	}
	start, _ := billing.DefaultConfig().Month(now)
	var batch []wire.Record
	flush := func() {
		if _, err := st.Apply(batch, 0, now.UnixMilli()); err != nil {
			tb.Fatal(err)
		}
		batch = batch[:0]
	}
	for t, term := range ds.Terminals {
		for s, ts := range []int64{start.UnixMilli(), now.Add(-time.Hour).UnixMilli()} {
			r := wire.Record{Terminal: term.ID, Seq: uint64(s + 1), Kind: wire.KindReading, TimeMS: ts}
			for _, c := range term.Channels {
				i := int64(t*16 + int(c.Channel) - 1)
				r.Channels = append(r.Channels, wire.ChannelReading{Channel: c.Channel, Meter: c.Meter, EnergyWh: 1_000_000 + int64(s)*i*14, Constant: 3200, Multiplier: 1})
			}
			batch = append(batch, r)
		}
		if len(batch) >= 1000 {
			flush()
		}
	}
	flush()
	l, err := billing.New(billing.Config{}, billing.DefaultCatalog())
	if err != nil {
		tb.Fatal(err)
	}
	v, err := vee.New(vee.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	return New(st, l, v, func() time.Time { return now }), st
}

func query(id string, f func(*wire.Query)) wire.Query {
	q := wire.Query{V: wire.Version, ID: id, Handheld: "H01", DeadlineMS: now.Add(time.Second).UnixMilli()}
	f(&q)
	return q
}

func TestAnswer(t *testing.T) {
	r, _ := seed(t, 2)
	tests := []struct {
		name      string
		q         wire.Query
		wantErr   string
		wantAccts []string
		check     func(t *testing.T, a wire.Answer)
	}{
		{name: "by meter", q: query("q1", func(q *wire.Query) { q.Meter = "M000003" }), wantAccts: []string{"A000003"},
			check: func(t *testing.T, a wire.Answer) {
				c := a.Customers[0]
				if c.Payment != "postpaid" || c.PeriodWh != 3*14 || c.PeriodStart != "2026-03-01" || c.Owner != "户主 A000003" ||
					c.LastReadingMS != now.Add(-time.Hour).UnixMilli() || len(c.Meters) != 1 {
					t.Errorf("customer = %+v", c)
				}
			}},
		{name: "by account, low balance", q: query("q2", func(q *wire.Query) { q.Account = "A000010" }), wantAccts: []string{"A000010"},
			check: func(t *testing.T, a wire.Answer) {
				w := a.Customers[0].Warnings
				if len(w) != 1 || w[0].Code != "low_balance" || w[0].Severity != "critical" {
					t.Errorf("warnings = %+v, want low_balance critical", w)
				}
			}},
		{name: "by terminal", q: query("q3", func(q *wire.Query) { q.Terminal = "T00001" }),
			wantAccts: []string{"A000016", "A000017", "A000018", "A000019", "A000020", "A000021", "A000022", "A000023",
				"A000024", "A000025", "A000026", "A000027", "A000028", "A000029", "A000030", "A000031"}},
		{name: "unknown meter", q: query("q4", func(q *wire.Query) { q.Meter = "nope" }), wantErr: ErrNotFound},
		{name: "invalid", q: query("q5", func(q *wire.Query) { q.Meter, q.Account = "M000001", "A000001" }), wantErr: ErrInvalid},
		{name: "deadline passed", q: query("q6", func(q *wire.Query) { q.Meter, q.DeadlineMS = "M000001", time.Now().Add(-time.Second).UnixMilli() }), wantErr: ErrDeadline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The deadline is checked against the real clock by the context.
			if tt.wantErr != ErrDeadline {
				tt.q.DeadlineMS = time.Now().Add(time.Minute).UnixMilli()
			}
			a := r.Answer(context.Background(), tt.q)
			if a.Error != tt.wantErr || a.ID != tt.q.ID || a.V != wire.Version {
				t.Fatalf("answer = %+v, want error %q", a, tt.wantErr)
			}
			var accts []string
			for _, c := range a.Customers {
				accts = append(accts, c.Account)
			}
			if !slices.Equal(accts, tt.wantAccts) {
				t.Errorf("accounts = %v, want %v", accts, tt.wantAccts)
			}
			if tt.check != nil {
				tt.check(t, a)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if a := r.Answer(ctx, query("q7", func(q *wire.Query) { q.Meter, q.DeadlineMS = "M000001", time.Now().Add(time.Minute).UnixMilli() })); a.Error != ErrDeadline {
		t.Errorf("answer with a cancelled context = %+v, want deadline", a)
	}
}

// BenchmarkAnswer100k answers queries by meter at 100,000 meters and reports the p50 and
// p99 latency of single answers.
func BenchmarkAnswer100k(b *testing.B) {
	r, _ := seed(b, 6250)
	rng := rand.New(rand.NewPCG(1, 2))
	deadline := time.Now().Add(time.Hour).UnixMilli()
	var lat []time.Duration
	for b.Loop() {
		q := wire.Query{V: wire.Version, ID: "q", Handheld: "H01", DeadlineMS: deadline, Meter: wire.MeterID(fmt.Sprintf("M%06d", rng.IntN(100_000)))}
		t0 := time.Now()
		a := r.Answer(context.Background(), q)
		lat = append(lat, time.Since(t0))
		if a.Error != "" || len(a.Customers) != 1 {
			b.Fatalf("answer = %+v", a)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
