package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/tidwall/buntdb"
)

// Store keys. A client id is written with its length, so that the keys of one client form a
// prefix no other client id can share.
const (
	keyClient   = "cl/"  // cl/<len>:<client id> → storage.Client
	keySub      = "sub/" // sub/<len>:<client id>/<filter> → storage.Subscription
	keyInflight = "ifm/" // ifm/<len>:<client id>/<packet id, 5 digits> → storage.Message
	keyRetained = "ret/" // ret/<topic> → storage.Message
)

func clientPart(id string) string { return strconv.Itoa(len(id)) + ":" + id }

// storeHook persists what a broker restart must not lose, in one buntdb file: persistent
// sessions (clients with CleanSession=false, or an MQTT 5 session expiry), their granted
// subscriptions and their in-flight QoS 1/2 messages, and retained messages. Clean sessions are
// never written. Every commit is fsynced (buntdb SyncPolicy Always, DESIGN §8).
//
// It follows mochi's hooks/storage/badger, with these differences: it stores only granted
// subscriptions (bolt and badger also store refused ones, with QoS 0x80, which a restart would
// then subscribe), it skips the transient PUBACK entries of inbound QoS 1 messages (two fsyncs
// per message for nothing a restart could use), and it removes everything of a client whose
// session ends.
type storeHook struct {
	mqtt.HookBase
	log  *slog.Logger
	errs *atomic.Uint64

	mu sync.RWMutex // guards db against use after Stop
	db *buntdb.DB
}

// Interface guard.
var _ mqtt.Hook = (*storeHook)(nil)

func openStore(path string, log *slog.Logger, errs *atomic.Uint64) (*storeHook, error) {
	db, err := buntdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	var bc buntdb.Config
	if err := db.ReadConfig(&bc); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	bc.SyncPolicy = buntdb.Always // a message acknowledged upstream must survive power loss
	if err := db.SetConfig(bc); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &storeHook{log: log.With("component", "store"), errs: errs, db: db}, nil
}

// ID names the hook in mochi's logs.
func (h *storeHook) ID() string { return "meterlink-buntdb" }

// Provides lists the hook methods mochi calls.
func (h *storeHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage, mqtt.OnWillSent, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnClientExpired, mqtt.OnRetainedExpired,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages,
		mqtt.StoredSysInfo:
		return true
	}
	return false
}

// Stop closes the store.
func (h *storeHook) Stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.db == nil {
		return nil
	}
	err := h.db.Close()
	h.db = nil
	return err
}

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion >= 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// update runs fn in a write transaction and logs and counts a failure: mochi's storage hook
// methods return nothing.
func (h *storeHook) update(op string, fn func(tx *buntdb.Tx) error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.db == nil {
		return // stopped: mochi's event loop can still tick once during Close
	}
	if err := h.db.Update(fn); err != nil {
		h.errs.Add(1)
		h.log.Error("store write failed", "op", op, "err", err)
	}
}

func set(tx *buntdb.Tx, key string, v storage.Serializable) error {
	b, err := v.MarshalBinary()
	if err != nil {
		return err
	}
	_, _, err = tx.Set(key, string(b), nil)
	return err
}

func del(tx *buntdb.Tx, key string) error {
	if _, err := tx.Delete(key); err != nil && !errors.Is(err, buntdb.ErrNotFound) {
		return err
	}
	return nil
}

// deleteClient removes the session record, subscriptions and in-flight messages of a client id.
func (h *storeHook) deleteClient(id string) {
	cp := clientPart(id)
	h.update("delete client", func(tx *buntdb.Tx) error {
		keys := []string{keyClient + cp}
		for _, prefix := range []string{keySub + cp + "/", keyInflight + cp + "/"} {
			err := tx.AscendGreaterOrEqual("", prefix, func(k, _ string) bool {
				if !strings.HasPrefix(k, prefix) {
					return false
				}
				keys = append(keys, k)
				return true
			})
			if err != nil {
				return err
			}
		}
		for _, k := range keys {
			if err := del(tx, k); err != nil {
				return err
			}
		}
		return nil
	})
}

func (h *storeHook) putClient(cl *mqtt.Client) {
	props := cl.Properties.Props.Copy(false)
	c := &storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			AuthenticationMethod:      props.AuthenticationMethod,
			AuthenticationData:        props.AuthenticationData,
			RequestProblemInfo:        props.RequestProblemInfo,
			RequestProblemInfoFlag:    props.RequestProblemInfoFlag,
			RequestResponseInfo:       props.RequestResponseInfo,
			ReceiveMaximum:            props.ReceiveMaximum,
			TopicAliasMaximum:         props.TopicAliasMaximum,
			User:                      props.User,
			MaximumPacketSize:         props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	}
	h.update("put client", func(tx *buntdb.Tx) error { return set(tx, keyClient+clientPart(cl.ID), c) })
}

// OnSessionEstablished records a persistent session; a clean session replaces (deletes) any
// persistent one the client id had.
func (h *storeHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if !persistent(cl) {
		h.deleteClient(cl.ID)
		return
	}
	h.putClient(cl)
}

// OnWillSent records that a persistent session's will has been used.
func (h *storeHook) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	if persistent(cl) {
		h.putClient(cl)
	}
}

// OnDisconnect deletes a session that ends with its connection.
func (h *storeHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if !expire || errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		return
	}
	h.deleteClient(cl.ID)
}

// OnClientExpired deletes an expired session.
func (h *storeHook) OnClientExpired(cl *mqtt.Client) { h.deleteClient(cl.ID) }

// OnSubscribed records the granted subscriptions of a persistent session.
func (h *storeHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !persistent(cl) {
		return
	}
	h.update("put subscriptions", func(tx *buntdb.Tx) error {
		for i, f := range pk.Filters {
			if i >= len(codes) || codes[i] > 2 {
				continue // refused: never restore it
			}
			s := &storage.Subscription{
				ID:                keySub + clientPart(cl.ID) + "/" + f.Filter,
				T:                 storage.SubscriptionKey,
				Client:            cl.ID,
				Qos:               codes[i],
				Filter:            f.Filter,
				Identifier:        f.Identifier,
				NoLocal:           f.NoLocal,
				RetainHandling:    f.RetainHandling,
				RetainAsPublished: f.RetainAsPublished,
			}
			if err := set(tx, s.ID, s); err != nil {
				return err
			}
		}
		return nil
	})
}

// OnUnsubscribed deletes subscriptions of a persistent session.
func (h *storeHook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		return
	}
	h.update("delete subscriptions", func(tx *buntdb.Tx) error {
		for _, f := range pk.Filters {
			if err := del(tx, keySub+clientPart(cl.ID)+"/"+f.Filter); err != nil {
				return err
			}
		}
		return nil
	})
}

func inflightKey(clientID string, packetID uint16) string {
	return fmt.Sprintf("%s%s/%05d", keyInflight, clientPart(clientID), packetID)
}

func message(key, kind, client string, pk packets.Packet, sent int64) *storage.Message {
	props := pk.Properties.Copy(false)
	return &storage.Message{
		ID:          key,
		T:           kind,
		Client:      client,
		Origin:      pk.Origin,
		FixedHeader: pk.FixedHeader,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		Created:     pk.Created,
		Sent:        sent,
		PacketID:    pk.PacketID, // mochi's bolt hook leaves it out; a restored message then has id 0
		Properties: storage.MessageProperties{
			PayloadFormat:          props.PayloadFormat,
			PayloadFormatFlag:      props.PayloadFormatFlag,
			MessageExpiryInterval:  props.MessageExpiryInterval,
			ContentType:            props.ContentType,
			ResponseTopic:          props.ResponseTopic,
			CorrelationData:        props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier,
			TopicAlias:             props.TopicAlias,
			User:                   props.User,
		},
	}
}

// OnQosPublish records an in-flight message of a persistent session: one sent to it and not yet
// acknowledged, or queued while it is offline.
func (h *storeHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	if !persistent(cl) || pk.FixedHeader.Type == packets.Puback {
		// A PUBACK entry is mochi's note that it is answering an inbound QoS 1 publish; it is
		// deleted a moment later and a restart could do nothing with it.
		return
	}
	k := inflightKey(cl.ID, pk.PacketID)
	m := message(k, storage.InflightKey, cl.ID, pk, sent)
	h.update("put inflight", func(tx *buntdb.Tx) error { return set(tx, k, m) })
}

// OnQosComplete deletes an acknowledged in-flight message.
func (h *storeHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		return
	}
	k := inflightKey(cl.ID, pk.PacketID)
	h.update("delete inflight", func(tx *buntdb.Tx) error { return del(tx, k) })
}

// OnQosDropped deletes an in-flight message mochi gave up on.
func (h *storeHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if !persistent(cl) {
		return
	}
	k := inflightKey(cl.ID, pk.PacketID)
	h.update("delete inflight", func(tx *buntdb.Tx) error { return del(tx, k) })
}

// OnRetainMessage records or (r == -1, an empty retained payload) deletes a retained message.
func (h *storeHook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	k := keyRetained + pk.TopicName
	if r == -1 {
		h.update("delete retained", func(tx *buntdb.Tx) error { return del(tx, k) })
		return
	}
	m := message(k, storage.RetainedKey, cl.ID, pk, 0)
	m.PacketID = 0
	h.update("put retained", func(tx *buntdb.Tx) error { return set(tx, k, m) })
}

// OnRetainedExpired deletes an expired retained message.
func (h *storeHook) OnRetainedExpired(topicName string) {
	h.update("delete retained", func(tx *buntdb.Tx) error { return del(tx, keyRetained+topicName) })
}

// load decodes every value under prefix; a value that does not decode is logged and skipped,
// so one bad record cannot keep the broker from starting.
func load[T any, PT interface {
	*T
	storage.Serializable
}](h *storeHook, prefix string) ([]T, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.db == nil {
		return nil, storage.ErrDBFileNotOpen
	}
	var out []T
	err := h.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", prefix, func(k, v string) bool {
			if !strings.HasPrefix(k, prefix) {
				return false
			}
			var x T
			if err := PT(&x).UnmarshalBinary([]byte(v)); err != nil {
				h.errs.Add(1)
				h.log.Error("store record skipped", "key", k, "err", err)
				return true
			}
			out = append(out, x)
			return true
		})
	})
	return out, err
}

// StoredClients returns the persistent sessions.
func (h *storeHook) StoredClients() ([]storage.Client, error) {
	return load[storage.Client](h, keyClient)
}

// StoredSubscriptions returns the subscriptions of the persistent sessions.
func (h *storeHook) StoredSubscriptions() ([]storage.Subscription, error) {
	return load[storage.Subscription](h, keySub)
}

// StoredInflightMessages returns the in-flight messages of the persistent sessions.
func (h *storeHook) StoredInflightMessages() ([]storage.Message, error) {
	return load[storage.Message](h, keyInflight)
}

// StoredRetainedMessages returns the retained messages.
func (h *storeHook) StoredRetainedMessages() ([]storage.Message, error) {
	return load[storage.Message](h, keyRetained)
}

// StoredSysInfo returns the counts of what the store restores, so that mochi's gauges of
// in-flight and retained messages and of subscriptions start from them and not from zero.
func (h *storeHook) StoredSysInfo() (storage.SystemInfo, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.db == nil {
		return storage.SystemInfo{}, storage.ErrDBFileNotOpen
	}
	count := func(tx *buntdb.Tx, prefix string) (n int64, err error) {
		err = tx.AscendGreaterOrEqual("", prefix, func(k, _ string) bool {
			if !strings.HasPrefix(k, prefix) {
				return false
			}
			n++
			return true
		})
		return n, err
	}
	var si storage.SystemInfo
	si.Version = mqtt.Version // mochi ignores a record without one
	err := h.db.View(func(tx *buntdb.Tx) (err error) {
		if si.Inflight, err = count(tx, keyInflight); err != nil {
			return err
		}
		if si.Retained, err = count(tx, keyRetained); err != nil {
			return err
		}
		si.Subscriptions, err = count(tx, keySub)
		return err
	})
	return si, err
}
