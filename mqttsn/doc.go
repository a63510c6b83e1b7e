// Package mqttsn implements MQTT-SN v1.2 for MeterLink: a packet codec
// ([Decode], [Append]), a client for collection terminals ([Client]), a
// transport-agnostic gateway core for the handheld ([Gateway]) and the
// serial radio framing ([NewSerialConn]). Client and gateway run over any
// [net.PacketConn]: UDP for interoperability, or a [SerialConn] on the
// transparent radio, whose addresses are [NodeAddr]s. The subpackage
// radiosim degrades a PacketConn for tests. Standard library only.
//
// It follows the MQTT-SN v1.2 specification as summarised in the shared
// docs/mqtt-sn.md and avoids every item of its pitfalls checklist: both
// length forms (never the short form at 256 bytes or more), QoS −1 (0b11),
// MsgId 0 at QoS 0 and −1, reserved codes rejected, per-client topic tables
// keyed on (type, id), PUBACK "invalid topic id" even at QoS 0 without
// ending the session or forwarding, one outstanding transaction per
// client in both directions, DUP with the same MsgId on retransmission,
// deduplication of QoS 1, Will never on DISCONNECT, sleeping clients with
// PINGRESP after the last acknowledgement, DISCONNECT to unknown senders,
// encapsulated replies to the same WirelessNodeId, and keep-alive
// tolerance (+10 % over a minute, +50 % up to it).
//
// # Wiring
//
// Terminal: open the transport (net.ListenPacket("udp", ...) or
// NewSerialConn(port, node)), then NewClient(conn, gatewayAddr, cfg),
// Connect, Subscribe to the command topics, and Publish readings at QoS 1
// on predefined topics. On an error wrapping [ErrConnectionLost], call
// Connect again (with back-off). For battery operation use Sleep and Wake.
//
// Handheld: NewGateway(conn, cfg) with OnPublish storing to disk and
// forwarding to the bus, Predefined returning each terminal's predefined
// ids, WillPublish and OnDelivered wired to the bus; run Run(ctx) in the
// part's errgroup and close conn after it returns. Send commands with
// [Gateway.Publish]; call [Gateway.Disconnect] for each client when the
// broker connection drops.
//
// # Decisions the spec leaves open
//
//   - The gateway is aggregating: it owns liveness, Wills and the downlink
//     buffer, and the handheld keeps its one broker connection alive
//     itself, so sleep times may exceed the keep-alive.
//   - A CONNECT from asleep or awake starts a new connection honouring its
//     flags (Will prompt if Will=1; CleanSession clears the topic table,
//     subscriptions and Will). Downlinks queued by [Gateway.Publish]
//     survive reconnects and sleep; normal ids are re-registered first.
//   - Buffered QoS 1 downlinks are kept until the client's PUBACK; one
//     left unacknowledged when an awake client stops answering is resent
//     with DUP at the next wake-up. At most MaxBuffered wait per client;
//     beyond that Publish fails with [ErrBufferFull] (new messages are
//     refused, queued ones are kept).
//   - Duplicates are recognised by MsgId, topic and payload together, so
//     that copies made by the link (DUP=0) are caught, and a peer that
//     restarts its MsgId counter does not lose fresh messages.
//   - Normal topic ids are allocated per client and never reused for
//     another name, across clean sessions too.
//   - QoS −1 publications from a sender without a session resolve
//     predefined ids through Predefined("") and reach OnPublish with an
//     empty client id. SEARCHGW is answered to the searcher.
//   - The gateway accepts QoS 2 publications (PUBREC, PUBREL, PUBCOMP);
//     the client publishes and subscribes at QoS −1, 0 and 1 only.
package mqttsn
