package topic

import (
	"fmt"
	"strings"
)

// Markdown renders the registry as the body of topics.md, the published contract of the
// topic tree. A test keeps the file and this function in step.
func Markdown() string {
	var b strings.Builder
	b.WriteString(`# MeterLink topics

The contract of MeterLink's topic tree: every topic, who publishes it, who subscribes, QoS,
retain, payload and an example. It is generated from the topic registry (package ` + "`topic`" + `,
` + "`topic.All()`" + `); ` + "`go test ./topic`" + ` fails when this file and the registry disagree, and
` + "`go test ./topic -update`" + ` rewrites it. The broker's ACL is built from the same registry: a
client may publish only where its role is the publisher and subscribe only where it is a
subscriber; ` + "`{pda}`" + ` and ` + "`{hh}`" + ` must equal the client's own id, and PDAs may use exact topics only.

Roles: terminal (MQTT-SN on the radio), handheld (on the PDA's local listener), bridge (the
pda-bridge's own client on that listener), pda (the pda-bridge upstream), ops, viewer
(dashboards, read-only).

`)
	for _, layer := range []struct {
		l     Layer
		title string
		intro string
	}{
		{LayerRadio, "Radio (MQTT-SN v1.2, terminal ↔ handheld)",
			"Predefined topic ids are per terminal: id 1 on terminal T0001 means `t/T0001/rd`. Names are short to save airtime."},
		{LayerLocal, "Local (MQTT, handheld ↔ PDA local listener)",
			"The handheld reaches ops only through its PDA."},
		{LayerUpstream, "Upstream (MQTT, PDA ↔ ops through the ops broker)",
			"Only SECLINK/1 handshakes and sealed records travel here (security.md): the broker never sees plaintext, and a PDA may use only its own four topics."},
		{LayerOps, "Ops events (MQTT, for dashboards)",
			"Read-only to viewers. Watch them with `mosquitto_sub -h 127.0.0.1 -p 1883 -t 'meterlink/v1/ops/#' -v`."},
	} {
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", layer.title, layer.intro)
		b.WriteString("| topic | publisher | subscribers | QoS | retain | payload | id |\n|---|---|---|---|---|---|---|\n")
		var specs []Spec
		for _, s := range registry {
			if s.Layer == layer.l {
				specs = append(specs, s)
			}
		}
		for _, s := range specs {
			subs := make([]string, len(s.Subscribers))
			for i, r := range s.Subscribers {
				subs[i] = string(r)
			}
			id := ""
			if s.PredefinedID != 0 {
				id = fmt.Sprint(s.PredefinedID)
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %d | %v | %s | %s |\n",
				s.Pattern, s.Publisher, strings.Join(subs, ", "), s.QoS, s.Retained, s.Payload, id)
		}
		b.WriteString("\n")
		for _, s := range specs {
			fmt.Fprintf(&b, "### `%s` (%s)\n\n%s\n\nExample:\n\n```\n%s\n```\n\n", s.Pattern, s.Name, s.Doc, s.Example)
		}
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}
