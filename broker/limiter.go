package broker

import (
	"sync"
	"time"
)

// Failed-authentication limits of security.md §9: 5 failures within 5 minutes block the key
// for 1 minute, each further block doubling up to 1 hour; never permanent.
const (
	limitFailures = 5
	limitWindow   = 5 * time.Minute
	limitFirst    = time.Minute
	limitMax      = time.Hour
	// limitForget is how long a key must stay quiet after its last block before it is forgotten
	// (and its next block starts again at limitFirst).
	limitForget = time.Hour
	limitSweep  = time.Minute // how often stale keys are swept
)

// limiter counts failed authentications per key (a username or a remote IP).
type limiter struct {
	now func() time.Time

	mu        sync.Mutex
	keys      map[string]*limitState
	lastSweep time.Time
}

type limitState struct {
	fails []time.Time   // failures inside the window, oldest first
	until time.Time     // blocked until
	next  time.Duration // length of the next block
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, keys: map[string]*limitState{}}
}

// blocked reports whether key is blocked now.
func (l *limiter) blocked(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.keys[key]
	return s != nil && l.now().Before(s.until)
}

// fail records a failure for key and reports whether it started a block.
func (l *limiter) fail(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	s := l.keys[key]
	if s == nil {
		s = &limitState{next: limitFirst}
		l.keys[key] = s
	}
	if now.Before(s.until) {
		return false // already blocked: attempts are refused unchecked and do not extend the block
	}
	keep := s.fails[:0]
	for _, t := range s.fails {
		if now.Sub(t) < limitWindow {
			keep = append(keep, t)
		}
	}
	s.fails = append(keep, now)
	if len(s.fails) < limitFailures {
		return false
	}
	s.fails = s.fails[:0]
	s.until = now.Add(s.next)
	s.next = min(2*s.next, limitMax)
	return true
}

// reset forgets key, after a successful authentication.
func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.keys, key)
}

// sweep drops keys with no recent failure whose last block is long over, so that guessing
// random usernames cannot grow the map without bound. Called with l.mu held.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < limitSweep {
		return
	}
	l.lastSweep = now
	for k, s := range l.keys {
		recent := len(s.fails) > 0 && now.Sub(s.fails[len(s.fails)-1]) < limitWindow
		if !recent && now.Sub(s.until) > limitForget {
			delete(l.keys, k)
		}
	}
}
