package api

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/meterlink/meterlink/ops/internal/store"
	"github.com/meterlink/meterlink/wire"
)

// PDAs is what the PDA endpoints need from ops' secure channel (security.md §3, §10).
type PDAs interface {
	OpsPublicKey() (opskey byte, public [32]byte) // what a new PDA pins
	RevokePDA(id string) error                    // store, sessions and broker at once
}

// sid0Expires is how long an unused SID₀ stays valid (security.md §8 SID0_EXPIRES).
const sid0Expires = 14 * 24 * time.Hour

// PDAs are listed and shown without their secrets: store.PDA never serialises a SID. The
// fields show the state (enrolled, locked, revoked), the SID epoch, whether S_pda is bound,
// and the last handshake and rotation.

func (a *API) listPDAs(w http.ResponseWriter, r *http.Request) error {
	return list(a, w, r, "pdas", nil,
		func(ds store.Dataset) []store.PDA { return ds.PDAs },
		func(store.PDA, map[string]string) bool { return true })
}

func (a *API) getPDA(w http.ResponseWriter, r *http.Request) error {
	return one(a, w, r, "pda", func(ds store.Dataset) []store.PDA { return ds.PDAs },
		func(p store.PDA) string { return string(p.ID) })
}

// NewPDA is the body of POST /api/v1/pdas.
type NewPDA struct {
	ID wire.PDAID `json:"id"`
}

// ProvisionedPDA is the answer to POST /api/v1/pdas: the only time SID₀ is shown, with what
// the PDA pins (security.md §3). Deliver it out of band; it is single use and expires.
type ProvisionedPDA struct {
	store.PDA
	SID          string `json:"sid"`                      // SID₀, 64 hex digits (secret)
	OpsKey       int    `json:"opskey,omitempty"`         // the id of ops' static key
	OpsPublicKey string `json:"ops_public_key,omitempty"` // S_ops public, 64 hex digits
	ExpiresMS    int64  `json:"sid_expires_ms"`           // SID₀ is refused after this unless used
}

func (a *API) postPDA(w http.ResponseWriter, r *http.Request) error {
	if err := onlyParams(r); err != nil {
		return err
	}
	var req NewPDA
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if !wire.ValidID(string(req.ID)) {
		return &store.FieldError{Fields: map[string]string{"id": fmt.Sprintf("%q is not a valid id (1-64 letters, digits, '-', '_', '.')", req.ID)}}
	}
	sid := make([]byte, store.SIDSize)
	if _, err := io.ReadFull(a.rand, sid); err != nil {
		return fmt.Errorf("generate sid: %w", err)
	}
	defer clear(sid)
	now := a.now()
	p := store.PDA{ID: req.ID, SID: sid, State: store.PDAEnrolled, CreatedMS: now.UnixMilli()}
	if err := a.st.Put(store.Dataset{PDAs: []store.PDA{p}}, false); err != nil {
		return unprefix(err, "pdas[0].")
	}
	a.log.Info("pda provisioned", "pda", p.ID)
	out := ProvisionedPDA{PDA: p, SID: hex.EncodeToString(sid), ExpiresMS: now.Add(sid0Expires).UnixMilli()}
	if a.pdas != nil {
		id, pub := a.pdas.OpsPublicKey()
		out.OpsKey, out.OpsPublicKey = int(id), hex.EncodeToString(pub[:])
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", r.URL.Path+"/"+string(p.ID))
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) revokePDA(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := onlyParams(r); err != nil {
		return err
	}
	if a.pdas != nil {
		err = a.pdas.RevokePDA(id)
	} else {
		_, err = a.st.SetPDAState(wire.PDAID(id), store.PDARevoked)
	}
	if err != nil {
		return err
	}
	rows, err := a.st.Load()
	if err != nil {
		return err
	}
	for _, p := range rows.PDAs {
		if string(p.ID) == id {
			a.log.Info("pda revoked", "pda", p.ID)
			writeJSON(w, http.StatusOK, p)
			return nil
		}
	}
	return fmt.Errorf("pda %s: %w", id, store.ErrNotFound)
}
