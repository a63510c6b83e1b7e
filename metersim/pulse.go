// Package metersim simulates the meters behind a terminal: pulse-output meters that follow
// a household load profile and emit pulses at their impulse constant's rate, and Modbus
// meters (SDM120/630, DDSU666, DTSU666, DDS238-2 register maps from package regmap) served
// over Modbus TCP or RTU. `meterlink meter-sim` runs them, with a DL/T 645-2007 meter
// (package dlt645) on a serial device.
package metersim

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Profile is a daily load curve: a base load, an evening peak, and noise.
type Profile struct {
	BaseW    float64 // load at night, W
	PeakW    float64 // extra load at the peak hour, W
	PeakHour float64 // hour of the peak, 0..24 (e.g. 19.5)
	Noise    float64 // relative noise, 0..1
}

// Household is a typical residential profile: 150 W base, 1.2 kW extra at 19:30.
var Household = Profile{BaseW: 150, PeakW: 1200, PeakHour: 19.5, Noise: 0.2}

// PowerW returns the load at time t (local clock of t).
func (p Profile) PowerW(t time.Time, rng *rand.Rand) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	d := math.Abs(h - p.PeakHour)
	if d > 12 {
		d = 24 - d
	}
	w := p.BaseW + p.PeakW*math.Exp(-d*d/4)
	if rng != nil && p.Noise > 0 {
		w *= 1 + p.Noise*(rng.Float64()*2-1)
	}
	return max(w, 0)
}

// PulseMeter turns its load into pulses at its impulse constant.
type PulseMeter struct {
	Constant uint32  // imp/kWh
	Profile  Profile // load curve
	Scale    float64 // multiplies the load (a shop uses more than a flat); default 1

	rng  *rand.Rand
	frac float64 // pulses owed but not yet whole
}

// NewPulseMeter returns a meter with its own seeded noise.
func NewPulseMeter(constant uint32, p Profile, scale float64, seed uint64) *PulseMeter {
	if scale == 0 {
		scale = 1
	}
	return &PulseMeter{Constant: constant, Profile: p, Scale: scale, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Advance returns the whole pulses the meter emits over d of consumption ending at t.
func (m *PulseMeter) Advance(t time.Time, d time.Duration) uint64 {
	kwh := m.Profile.PowerW(t, m.rng) * m.Scale * d.Hours() / 1000
	m.frac += kwh * float64(m.Constant)
	n := math.Floor(m.frac)
	m.frac -= n
	return uint64(n)
}

// Sink receives pulses: the terminal's Pulse method, or a pulse link to another process.
type Sink func(terminal string, channel uint8, pulses uint64) error

// Bank is a set of pulse meters wired to terminal channels, driven by one clock.
type Bank struct {
	mu     sync.Mutex
	meters []wired
}

type wired struct {
	terminal string
	channel  uint8
	m        *PulseMeter
}

// Add wires a meter to a terminal's channel.
func (b *Bank) Add(terminal string, channel uint8, m *PulseMeter) {
	b.mu.Lock()
	b.meters = append(b.meters, wired{terminal, channel, m})
	b.mu.Unlock()
}

// Step advances every meter by d of consumption ending at t and sends their pulses to sink.
// It returns the first sink error, after trying every meter.
func (b *Bank) Step(t time.Time, d time.Duration, sink Sink) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var first error
	for _, w := range b.meters {
		if n := w.m.Advance(t, d); n > 0 {
			if err := sink(w.terminal, w.channel, n); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// Run steps the bank every tick until ctx is done. speed multiplies simulated time (60 runs a
// minute of consumption each second), so a lab shows readings moving.
func (b *Bank) Run(ctx context.Context, tick time.Duration, speed float64, sink Sink) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if err := b.Step(now, time.Duration(float64(tick)*speed), sink); err != nil {
				return err
			}
		}
	}
}
