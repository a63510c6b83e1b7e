package terminal

import (
	"sync"
	"time"
)

// clock is the terminal's real-time clock: it runs from the system clock with a drift (ppm,
// as a quartz crystal does) and can be set by the handheld. Its offset survives restarts, as
// a battery-backed RTC's does.
type clock struct {
	mu     sync.Mutex
	sys    func() time.Time
	ppm    float64
	base   time.Time // terminal time at anchor
	anchor time.Time // system time at anchor
}

func newClock(sys func() time.Time, ppm float64, offset time.Duration) *clock {
	now := sys()
	return &clock{sys: sys, ppm: ppm, base: now.Add(offset), anchor: now}
}

// Now returns the terminal's time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *clock) nowLocked() time.Time {
	el := c.sys().Sub(c.anchor)
	return c.base.Add(el + time.Duration(float64(el)*c.ppm/1e6))
}

// Set sets the terminal's time and returns how far it moved it.
func (c *clock) Set(t time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	moved := t.Sub(c.nowLocked())
	c.base, c.anchor = t, c.sys()
	return moved
}

// Offset returns the terminal's time minus the system's time.
func (c *clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked().Sub(c.sys())
}
