// Package serialtest gives tests a real serial line: a pair of pseudo-terminals joined by
// socat as a null modem, what a transparent radio or an RS485 adapter looks like to the code.
package serialtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Pair starts socat as a null modem and returns the paths of its two ends. It skips the test,
// with a message saying how to install socat, when socat is missing, and under -short. socat is
// killed in t.Cleanup, registered first so it runs after the cleanups of whatever uses the ends.
func Pair(t testing.TB) (a, b string) {
	t.Helper()
	if testing.Short() {
		t.Skip("serial line test skipped under -short")
	}
	socat, err := exec.LookPath("socat")
	if err != nil {
		t.Skip("socat not on PATH; install it (apt-get install -y socat) to run serial line tests")
	}
	dir := t.TempDir()
	a, b = filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cmd := exec.Command(socat, "-d", "-d", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start socat: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	end := time.Now().Add(10 * time.Second)
	for {
		_, ea := os.Stat(a)
		_, eb := os.Stat(b)
		if ea == nil && eb == nil {
			return a, b
		}
		if time.Now().After(end) {
			t.Fatalf("socat did not create %s and %s within 10s", a, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Open opens one end of a pair for reading and writing (never as the controlling terminal)
// and closes it in t.Cleanup.
func Open(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
