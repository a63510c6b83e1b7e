package handheld

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/meterlink/meterlink/bus"
	"github.com/meterlink/meterlink/topic"
	"github.com/meterlink/meterlink/wire"
	"github.com/tidwall/buntdb"
)

const prefixAnswer = "ans:"

// cachedAnswer is an answer kept for offline use, with when it came.
type cachedAnswer struct {
	AtMS   int64       `json:"at_ms"`
	Answer wire.Answer `json:"answer"`
}

// Query asks ops, through the PDA, for a customer's data by meter, account or terminal, and
// waits for the answer until q's deadline (DeadlineMS, else now + Config.QueryTimeout) or ctx.
// An answer is cached. When the PDA link is down or no answer comes in time, Query returns an
// error wrapping [ErrOffline] with the cached answer for the same subject, if any (its ID is
// then not empty), and the cached answer's age.
func (h *Handheld) Query(ctx context.Context, q wire.Query) (wire.Answer, time.Duration, error) {
	now := h.now()
	q.V, q.Handheld = wire.Version, wire.HandheldID(h.cfg.ID)
	if q.ID == "" {
		h.mu.Lock()
		h.querySeq++
		q.ID = fmt.Sprintf("%s-q-%d", h.cfg.ID, h.querySeq)
		h.mu.Unlock()
	}
	if q.DeadlineMS == 0 {
		q.DeadlineMS = now.Add(h.cfg.QueryTimeout).UnixMilli()
	}
	if err := q.Validate(); err != nil {
		return wire.Answer{}, 0, inputErrorf("query: %v", err)
	}
	subject := querySubject(q)
	if !h.pda.IsConnected() {
		return h.offline(subject, "the PDA link is down")
	}
	ch := make(chan wire.Answer, 1)
	h.mu.Lock()
	h.answers[q.ID] = ch
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.answers, q.ID)
		h.mu.Unlock()
	}()
	dctx, cancel := context.WithDeadline(ctx, time.UnixMilli(q.DeadlineMS))
	defer cancel()
	b, _ := json.Marshal(q)
	if err := h.pda.Publish(dctx, topic.HHQuery(h.cfg.ID), 1, false, b); err != nil {
		return h.offline(subject, "the query could not be sent: "+err.Error())
	}
	select {
	case a := <-ch:
		if err := h.warn.checkAnswer(&a); err != nil {
			h.log.Warn("answer warnings not kept", "query_id", q.ID, "err", err)
		}
		if a.Error == "" {
			if err := h.cacheAnswer(subject, a); err != nil {
				h.log.Warn("answer not cached", "query_id", q.ID, "err", err)
			}
		}
		return a, 0, nil
	case <-dctx.Done():
		if ctx.Err() != nil && !errors.Is(dctx.Err(), context.DeadlineExceeded) {
			return wire.Answer{}, 0, ctx.Err()
		}
		return h.offline(subject, fmt.Sprintf("no answer from ops within %v", time.UnixMilli(q.DeadlineMS).Sub(now).Round(time.Millisecond)))
	}
}

func querySubject(q wire.Query) string {
	switch {
	case q.Meter != "":
		return "meter:" + string(q.Meter)
	case q.Account != "":
		return "account:" + q.Account
	}
	return "terminal:" + string(q.Terminal)
}

// offline returns the cached answer for subject with its age, and an ErrOffline error.
func (h *Handheld) offline(subject, reason string) (wire.Answer, time.Duration, error) {
	var c cachedAnswer
	err := h.box.db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(prefixAnswer + subject)
		if err != nil {
			return err
		}
		return json.Unmarshal([]byte(v), &c)
	})
	if err != nil {
		return wire.Answer{}, 0, fmt.Errorf("%w: %s; nothing cached for %s", ErrOffline, reason, subject)
	}
	return c.Answer, h.now().Sub(time.UnixMilli(c.AtMS)), fmt.Errorf("%w: %s", ErrOffline, reason)
}

// cacheAnswer keeps an answer under its subject and under each customer's account and meters,
// so an offline query by any of them finds it.
func (h *Handheld) cacheAnswer(subject string, a wire.Answer) error {
	at := h.now().UnixMilli()
	return h.box.db.Update(func(tx *buntdb.Tx) error {
		set := func(s string, a wire.Answer) error {
			b, _ := json.Marshal(cachedAnswer{AtMS: at, Answer: a})
			_, _, err := tx.Set(prefixAnswer+s, string(b), nil)
			return err
		}
		if err := set(subject, a); err != nil {
			return err
		}
		for _, c := range a.Customers {
			one := a
			one.Customers = []wire.CustomerInfo{c}
			if err := set("account:"+c.Account, one); err != nil {
				return err
			}
			for _, m := range c.Meters {
				if err := set("meter:"+string(m), one); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// onAnswer hands an answer from ops to the query waiting for it.
func (h *Handheld) onAnswer(_ context.Context, m bus.Message) error {
	var a wire.Answer
	if err := json.Unmarshal(m.Payload, &a); err != nil || a.V != wire.Version || a.ID == "" {
		h.log.Warn("answer dropped", "topic", m.Topic, "err", err)
		return nil
	}
	h.mu.Lock()
	ch := h.answers[a.ID]
	h.mu.Unlock()
	if ch == nil {
		h.log.Debug("answer after its deadline", "query_id", a.ID)
		return nil
	}
	select {
	case ch <- a:
	default:
	}
	return nil
}

// onGroups takes the groups ops sent.
func (h *Handheld) onGroups(_ context.Context, m bus.Message) error {
	var gs wire.Groups
	if err := json.Unmarshal(m.Payload, &gs); err != nil {
		h.log.Warn("groups dropped", "topic", m.Topic, "err", err)
		return nil
	}
	if err := gs.Validate(); err != nil {
		h.log.Warn("groups dropped", "topic", m.Topic, "err", err)
		return nil
	}
	if err := h.SetGroups(gs.Groups); errors.Is(err, ErrInvalid) {
		h.log.Warn("groups dropped", "topic", m.Topic, "err", err)
		return nil
	} else if err != nil {
		return fmt.Errorf("store groups from ops: %w", err)
	}
	h.log.Info("groups from ops", "groups", len(gs.Groups))
	return nil
}
