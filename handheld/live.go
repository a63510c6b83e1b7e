package handheld

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/meterlink/meterlink/wire"
)

// Live reads the live values of a terminal's channels (channel 0: all) with the terminal's
// live operation, without making a record: what the reader watches while commissioning. It
// waits for the terminal's answer until ctx is done.
func (h *Handheld) Live(ctx context.Context, terminal string, channel uint8) (wire.LiveView, error) {
	if !wire.ValidID(terminal) {
		return wire.LiveView{}, inputErrorf("terminal %q is not a valid id", terminal)
	}
	if channel > 16 {
		return wire.LiveView{}, inputErrorf("channel %d: want 1..16 (0: all)", channel)
	}
	h.mu.Lock()
	h.liveSeq++
	id := fmt.Sprintf("%s-live-%d", h.cfg.ID, h.liveSeq)
	h.mu.Unlock()
	cmd := wire.Command{ID: id, Terminal: wire.TerminalID(terminal), Op: OpLive}
	if channel != 0 {
		cmd.Args, _ = json.Marshal(map[string]uint8{"ch": channel})
	}
	ack, err := h.SendCommand(ctx, cmd)
	if err != nil {
		return wire.LiveView{}, err
	}
	if ack.Code != wire.AckOK {
		return wire.LiveView{}, fmt.Errorf("live view of %s: %w (code %d): %s", terminal, ErrTerminalRefused, ack.Code, ack.Detail)
	}
	v := wire.LiveView{Terminal: wire.TerminalID(terminal), Channel: channel, TimeMS: h.now().UnixMilli()}
	if err := json.Unmarshal(ack.Result, &v.Channels); err != nil {
		return wire.LiveView{}, fmt.Errorf("live view of %s: the terminal's answer: %w", terminal, err)
	}
	return v, nil
}

// LiveMeter reads the live values of one meter, found on its terminal's channel through the
// groups.
func (h *Handheld) LiveMeter(ctx context.Context, meter string) (wire.LiveView, error) {
	t, ch, err := h.groups.meter(meter)
	if err != nil {
		return wire.LiveView{}, err
	}
	return h.Live(ctx, string(t.ID), ch)
}
