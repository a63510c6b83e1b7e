// Package dashboard is ops' web dashboard: plain HTML, CSS and JavaScript embedded in the
// binary (no build step), served at / and /ui/. The page polls ops' JSON API every few
// seconds: districts, terminals, live readings, alerts, accounts with balance and bill,
// and PDAs.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var files embed.FS

// Handler serves the dashboard: / is the page, /ui/{file} its assets.
func Handler() http.Handler {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	assets := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'")
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		assets.ServeHTTP(w, r)
	})
}
