// Package media serves the Media pipeline's pages at /media: a signed-in
// user uploads a video (a raw-body POST that streams to storage, with its
// own size limit and deadline), follows each rendition's progress without
// reloading, retries a failed rendition, and plays the result with hls.js.
// Playlists are served by the edge, rewritten so every segment is fetched
// through a signed blob URL; the domain is internal/media.
package media

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/a-h/templ"

	"jetfleet/internal/blob"
	domain "jetfleet/internal/media"
	"jetfleet/web/session"
)

// UploadPath is the upload route, the one page route that takes a large
// body (the edge's form limit exempts it).
const UploadPath = "/media/upload"

// Deps are what the pages use.
type Deps struct {
	Items *domain.Service
	Blobs blob.Store
	Log   *slog.Logger
	// MaxUploadBytes bounds one upload; default 2 GiB.
	MaxUploadBytes int64
	// UploadWithin bounds how long one upload may take; default 30 min.
	UploadWithin time.Duration
	// Wrap puts the body into the site layout.
	Wrap func(templ.Component) templ.Component
}

// Pages serves /media.
type Pages struct{ d Deps }

// New wires the pages.
func New(d Deps) *Pages {
	if d.MaxUploadBytes <= 0 {
		d.MaxUploadBytes = 2 << 30
	}
	if d.UploadWithin <= 0 {
		d.UploadWithin = 30 * time.Minute
	}
	return &Pages{d: d}
}

// Routes registers the pages; protect is the site's sign-in gate.
func (p *Pages) Routes(mux *http.ServeMux, protect func(http.Handler) http.Handler) {
	mux.Handle("GET /media", protect(http.HandlerFunc(p.show)))
	mux.Handle("GET /media/items", protect(http.HandlerFunc(p.items)))
	mux.Handle("POST "+UploadPath, protect(http.HandlerFunc(p.upload)))
	mux.Handle("POST /media/{id}/retry", protect(http.HandlerFunc(p.retry)))
	mux.Handle("GET /media/{id}/master.m3u8", protect(http.HandlerFunc(p.master)))
	mux.Handle("GET /media/{id}/{rendition}/index.m3u8", protect(http.HandlerFunc(p.variant)))
}

func (p *Pages) list(w http.ResponseWriter, r *http.Request) ([]domain.Item, bool) {
	u, _ := session.UserFrom(r.Context())
	items, err := p.d.Items.List(r.Context(), u.ID)
	if err != nil {
		p.d.Log.Error("media: list uploads", "err", err)
		http.Error(w, "We could not read your uploads just now; try again in a moment.", http.StatusServiceUnavailable)
		return nil, false
	}
	return items, true
}

func (p *Pages) show(w http.ResponseWriter, r *http.Request) {
	items, ok := p.list(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	p.d.Wrap(pageBody(pageData{Items: items, MaxMB: p.d.MaxUploadBytes >> 20, Notice: r.URL.Query().Get("notice")})).Render(r.Context(), w)
}

// items renders the list alone, for the page's script to refresh progress.
func (p *Pages) items(w http.ResponseWriter, r *http.Request) {
	items, ok := p.list(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	itemList(items).Render(r.Context(), w)
}

// upload stores the request body as a video. The body is the file itself
// (not multipart), named by the X-File-Name header; it streams to a
// temporary file while hashed, so memory stays flat.
func (p *Pages) upload(w http.ResponseWriter, r *http.Request) {
	if ct := strings.ToLower(r.Header.Get("Content-Type")); strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/") {
		// A form posted without the page's script: the file is not in it.
		http.Error(w, "Uploading sends the file from the page's script; enable JavaScript for this site and try again.", http.StatusUnsupportedMediaType)
		return
	}
	if r.ContentLength > p.d.MaxUploadBytes {
		http.Error(w, fmt.Sprintf("This file is %d MB; uploads take at most %d MB.", r.ContentLength>>20, p.d.MaxUploadBytes>>20), http.StatusRequestEntityTooLarge)
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(p.d.UploadWithin))
	ctx, cancel := context.WithTimeout(r.Context(), p.d.UploadWithin)
	defer cancel()
	name := strings.TrimSpace(r.Header.Get("X-File-Name"))
	if n, err := url.PathUnescape(name); err == nil {
		name = n
	}
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	if name == "." || name == "/" || name == "" {
		name = "upload"
	}
	if len(name) > 200 {
		name = name[:200]
	}
	u, _ := session.UserFrom(ctx)
	body := http.MaxBytesReader(w, r.Body, p.d.MaxUploadBytes)
	it, created, err := p.d.Items.Upload(ctx, u.ID, name, body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		http.Error(w, fmt.Sprintf("This file is larger than %d MB, the most an upload takes.", p.d.MaxUploadBytes>>20), http.StatusRequestEntityTooLarge)
		return
	case errors.Is(err, domain.ErrEmpty):
		http.Error(w, "The file is empty; choose a video file.", http.StatusBadRequest)
		return
	case err != nil && ctx.Err() != nil:
		http.Error(w, "The upload took too long or was interrupted; try again.", http.StatusRequestTimeout)
		return
	case err != nil:
		p.d.Log.Error("media: upload", "err", err)
		http.Error(w, "We could not store your file just now; try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	p.d.Log.Info("media uploaded", "item", it.ID, "size", it.Size, "new", created)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if created {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "Uploaded %s; its renditions are on their way.\n", it.Name)
		return
	}
	fmt.Fprintf(w, "You uploaded this file before (as %s): it is the same video, not transcoded again.\n", it.Name)
}

func (p *Pages) retry(w http.ResponseWriter, r *http.Request) {
	u, _ := session.UserFrom(r.Context())
	id, rendition := r.PathValue("id"), r.PostFormValue("rendition")
	err := p.d.Items.Retry(r.Context(), u.ID, id, rendition)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		http.Error(w, "You have no such upload.", http.StatusNotFound)
		return
	case errors.Is(err, domain.ErrNotRetryable):
		http.Error(w, "Only a failed rendition can be retried; this one has not failed.", http.StatusConflict)
		return
	case err != nil:
		p.d.Log.Error("media: retry", "item", id, "rendition", rendition, "err", err)
		http.Error(w, "We could not queue the retry just now; try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	http.Redirect(w, r, "/media?notice="+url.QueryEscape(rendition+" queued again"), http.StatusSeeOther)
}

// playlistTTL is how long a playlist's signed segment URLs stay valid:
// long enough to watch a long recording without reloading.
const playlistTTL = 6 * time.Hour

// master serves an item's master playlist with variant paths pointing at
// the edge's variant route.
func (p *Pages) master(w http.ResponseWriter, r *http.Request) {
	it, ok := p.readyItem(w, r)
	if !ok {
		return
	}
	p.servePlaylist(w, r, domain.MasterKey(it.Owner, it.ID), func(line string) (string, error) {
		return "/media/" + it.ID + "/" + line, nil // "480p/index.m3u8"
	})
}

// variant serves one rendition's playlist with every segment as a signed
// blob URL.
func (p *Pages) variant(w http.ResponseWriter, r *http.Request) {
	it, ok := p.readyItem(w, r)
	if !ok {
		return
	}
	rendition := r.PathValue("rendition")
	if it.Rendition(rendition) == nil {
		http.Error(w, "This video has no such rendition.", http.StatusNotFound)
		return
	}
	prefix := domain.RenditionPrefix(it.Owner, it.ID, rendition)
	p.servePlaylist(w, r, prefix+domain.PlaylistName, func(line string) (string, error) {
		return p.d.Blobs.URL(r.Context(), prefix+path.Base(line), playlistTTL)
	})
}

func (p *Pages) readyItem(w http.ResponseWriter, r *http.Request) (domain.Item, bool) {
	u, _ := session.UserFrom(r.Context())
	it, err := p.d.Items.Get(r.Context(), u.ID, r.PathValue("id"))
	switch {
	case errors.Is(err, domain.ErrNotFound):
		http.Error(w, "You have no such upload.", http.StatusNotFound)
		return it, false
	case err != nil:
		p.d.Log.Error("media: read item", "err", err)
		http.Error(w, "We could not read this upload just now; try again in a moment.", http.StatusServiceUnavailable)
		return it, false
	case it.State != domain.StateReady:
		http.Error(w, "This video is not ready to play yet.", http.StatusConflict)
		return it, false
	}
	return it, true
}

// servePlaylist copies a stored playlist, replacing every URI line (the
// lines not starting with '#') by what rewrite returns.
func (p *Pages) servePlaylist(w http.ResponseWriter, r *http.Request, key string, rewrite func(string) (string, error)) {
	rc, _, err := p.d.Blobs.Get(r.Context(), key)
	if err != nil {
		p.d.Log.Error("media: read playlist", "key", key, "err", err)
		http.Error(w, "This playlist is unavailable just now; try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	defer rc.Close()
	var b strings.Builder
	sc := bufio.NewScanner(io.LimitReader(rc, 8<<20))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			if line, err = rewrite(line); err != nil {
				p.d.Log.Error("media: sign segment URL", "key", key, "err", err)
				http.Error(w, "This playlist is unavailable just now; try again in a moment.", http.StatusServiceUnavailable)
				return
			}
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		http.Error(w, "This playlist is unavailable just now; try again in a moment.", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "private, no-store") // it embeds signed URLs
	io.WriteString(w, b.String())
}
