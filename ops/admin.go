package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/meterlink/meterlink/cmdline"
)

// adminVerbs are the provisioning tasks `meterlink ops VERB` runs against a running ops over
// its HTTP API, for operators who work from a shell.
var adminVerbs = map[string]string{
	"provision": "provision FILE.json   apply a dataset (districts, terminals, meters, accounts) from JSON",
	"import":    "import KIND FILE.csv  bulk-import districts|terminals|meters|accounts from CSV (all or nothing)",
	"pda":       "pda add ID | pda revoke ID | pda list   provision (prints the SID once), revoke or list PDAs",
	"bill":      "bill ACCOUNT [-from DATE -to DATE]   an account's bill with line items",
	"alerts":    "alerts [-district D] [-meter M]   validation findings, newest first",
}

// Admin runs `meterlink ops VERB ...` against the ops API at -api (METERLINK_API).
func Admin(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	verb := args[0]
	var help strings.Builder
	for _, v := range []string{"provision", "import", "pda", "bill", "alerts"} {
		help.WriteString("  meterlink ops " + adminVerbs[v] + "\n")
	}
	fs := cmdline.NewFlagSet("ops "+verb, "Provisioning from the shell, through a running ops' HTTP API:\n"+help.String(), stderr)
	api := fs.String("api", "http://127.0.0.1:8080", "base URL of the ops HTTP API")
	from := fs.String("from", "", "bill: first day, YYYY-MM-DD (default: this month)")
	to := fs.String("to", "", "bill: day after the last, YYYY-MM-DD")
	district := fs.String("district", "", "alerts: only this district")
	meter := fs.String("meter", "", "alerts: only this meter")
	// Flags may come before or after the task's arguments (pda list -api URL).
	var rest []string
	err := cmdline.Parse(fs, args[1:], getenv)
	for err == nil && fs.NArg() > 0 {
		rest = append(rest, fs.Arg(0))
		err = fs.Parse(fs.Args()[1:])
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if u, err := url.Parse(*api); err != nil || u.Host == "" {
		return fmt.Errorf("api %q: want http://host:port", *api)
	}
	c := &adminClient{base: strings.TrimSuffix(*api, "/"), out: stdout, http: &http.Client{Timeout: 30 * time.Second}}
	switch verb {
	case "provision":
		if len(rest) != 1 {
			return errors.New("provision: name one JSON file")
		}
		return c.provision(ctx, rest[0])
	case "import":
		if len(rest) != 2 {
			return errors.New("import: give the kind (districts, terminals, meters, accounts) and a CSV file")
		}
		b, err := os.ReadFile(rest[1])
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		return c.do(ctx, http.MethodPost, "/api/v1/import/"+url.PathEscape(rest[0]), "text/csv", b)
	case "pda":
		switch {
		case len(rest) == 1 && rest[0] == "list":
			return c.do(ctx, http.MethodGet, "/api/v1/pdas", "", nil)
		case len(rest) == 2 && rest[0] == "add":
			b, _ := json.Marshal(map[string]string{"id": rest[1]})
			return c.do(ctx, http.MethodPost, "/api/v1/pdas", "application/json", b)
		case len(rest) == 2 && rest[0] == "revoke":
			return c.do(ctx, http.MethodPost, "/api/v1/pdas/"+url.PathEscape(rest[1])+"/revoke", "application/json", []byte("{}"))
		}
		return errors.New("pda: add ID, revoke ID or list")
	case "bill":
		if len(rest) != 1 {
			return errors.New("bill: name one account")
		}
		q := url.Values{}
		if *from != "" {
			q.Set("from", *from)
		}
		if *to != "" {
			q.Set("to", *to)
		}
		p := "/api/v1/accounts/" + url.PathEscape(rest[0]) + "/bill"
		if len(q) > 0 {
			p += "?" + q.Encode()
		}
		return c.do(ctx, http.MethodGet, p, "", nil)
	case "alerts":
		q := url.Values{}
		if *district != "" {
			q.Set("district", *district)
		}
		if *meter != "" {
			q.Set("meter", *meter)
		}
		p := "/api/v1/alerts"
		if len(q) > 0 {
			p += "?" + q.Encode()
		}
		return c.do(ctx, http.MethodGet, p, "", nil)
	}
	return fmt.Errorf("ops: unknown task %q", verb)
}

type adminClient struct {
	base string
	out  io.Writer
	http *http.Client
}

// do sends one request and prints the JSON answer; an error status becomes an error that
// carries the API's message.
func (c *adminClient) do(ctx context.Context, method, path, ctype string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("ops API %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, b, "", "  ") == nil {
		b = pretty.Bytes()
	}
	_, err = fmt.Fprintln(c.out, string(b))
	return err
}

// provision posts a dataset's entities in dependency order.
func (c *adminClient) provision(ctx context.Context, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	var ds struct {
		Districts []json.RawMessage `json:"districts"`
		Terminals []json.RawMessage `json:"terminals"`
		Accounts  []json.RawMessage `json:"accounts"`
		Meters    []json.RawMessage `json:"meters"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ds); err != nil {
		return fmt.Errorf("provision %s: %w", file, err)
	}
	for _, step := range []struct {
		path  string
		items []json.RawMessage
	}{{"/api/v1/districts", ds.Districts}, {"/api/v1/terminals", ds.Terminals}, {"/api/v1/accounts", ds.Accounts}, {"/api/v1/meters", ds.Meters}} {
		for i, it := range step.items {
			if err := c.do(ctx, http.MethodPost, step.path, "application/json", it); err != nil {
				return fmt.Errorf("provision %s, item %d: %w", strings.TrimPrefix(step.path, "/api/v1/"), i, err)
			}
		}
	}
	return nil
}
