package dlt645

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus in testdata/fuzz")

func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := Decode(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("Decode error %v with n = %d", err, n)
			}
		} else {
			if n < MinFrameLen || n > len(b) {
				t.Fatalf("Decode consumed %d of %d bytes", n, len(b))
			}
			enc := fr.Append(nil)
			if !bytes.Equal(enc, b[n-len(enc):n]) {
				t.Fatalf("re-encoded % X, input frame % X", enc, b[n-len(enc):n])
			}
			fr2, n2, err := Decode(enc)
			if err != nil || n2 != len(enc) {
				t.Fatalf("Decode(Append(f)) = %d, %v", n2, err)
			}
			if diff := cmp.Diff(fr, fr2); diff != "" {
				t.Fatalf("decode→encode→decode changed the frame (-first +second):\n%s", diff)
			}
		}
		// The stream reader must terminate and find at most one frame per
		// MinFrameLen bytes.
		r := NewReader(bytes.NewReader(b))
		frames := 0
		for {
			if _, err := r.ReadFrame(); err != nil {
				break
			}
			frames++
			if frames > len(b)/MinFrameLen {
				t.Fatalf("Reader found %d frames in %d bytes", frames, len(b))
			}
		}
		if err == nil && frames == 0 {
			t.Fatalf("Reader missed the frame Decode found in % X", b)
		}
	})
}

// seedCorpus returns the seeds: every [V] and [C] vector, the pitfalls
// and a few broken frames.
func seedCorpus(t *testing.T) map[string][]byte {
	seeds := map[string][]byte{
		"pitfall-reversed-di":     hx(t, "P 11 04 35 36 33 33 0D 16"),
		"pitfall-reversed-reply":  hx(t, "P 91 08 35 36 33 33 33 33 33 33 5D 16"),
		"pitfall-1997-with-0x11":  hx(t, "68 67 45 23 01 00 00 68 11 02 44 E9 E0 16"),
		"pitfall-v13-cs-e8":       hx(t, "68 01 72 00 72 00 00 68 91 08 33 33 34 33 33 33 33 33 E8 16"),
		"broken-truncated":        hx(t, "FE FE 68 61 01 00 00 00 00 68 91 08 33 33"),
		"broken-garbage-then-v13": hx(t, "00 68 16 68 01 72 00 72 00 00 68 91 08 33 33 34 33 33 33 33 33 E7 16"),
	}
	slug := func(s string) string {
		words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
			return (r < 'a' || r > 'z') && (r < '0' || r > '9')
		})
		return strings.Join(words, "-")
	}
	for _, v := range vectors {
		name := slug(v.name)
		if v.req != "" {
			seeds[name+"-req"] = hx(t, v.req)
		}
		if v.reply != "" {
			seeds[name+"-reply"] = hx(t, v.reply)
		}
	}
	return seeds
}

// TestFuzzSeeds checks that testdata/fuzz/FuzzDecode holds every vector;
// run with -update to rewrite it.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for name, b := range seedCorpus(t) {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		path := filepath.Join(dir, name)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("seed %s is missing or stale (run go test ./dlt645 -run TestFuzzSeeds -update): %v", path, err)
		}
	}
}
