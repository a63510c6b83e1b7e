package hhcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client talks to a handheld's control API.
type client struct {
	base string // http://host:port
	addr string // as the user gave it
	http *http.Client
}

func newClient(addr string) (*client, error) {
	if addr == "" {
		return nil, errors.New("no handheld address: pass --handheld ADDR or set METERLINK_HANDHELD")
	}
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http") {
		return nil, fmt.Errorf("handheld address %q: want host:port, e.g. 127.0.0.1:8081", addr)
	}
	return &client{base: strings.TrimRight(base, "/"), addr: addr, http: &http.Client{}}, nil
}

// apiError is an error the handheld reported, with its HTTP status.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return e.Msg }

// do sends a request and decodes the JSON reply into out (unless nil). timeout 0 means 30s.
func (c *client) do(ctx context.Context, method, path string, body, out any, timeout time.Duration) error {
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("handheld at %s did not answer within %v", c.addr, timeout)
		}
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("no handheld at %s (is `meterlink handheld` or the lab running? set --handheld or METERLINK_HANDHELD): %w", c.addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read the handheld's reply: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("handheld answered %s", resp.Status)
		}
		return &apiError{Status: resp.StatusCode, Msg: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the handheld's reply to %s %s: %w", method, path, err)
	}
	return nil
}

func (c *client) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out, 0)
}
